import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemorySessionStore, type SessionModuleOptions, type SessionStore } from '../src/index.js';
import { SessionTokenSigner } from '../src/transport/session-token.js';
import { CartFixtureController } from './fixtures/cart.controller.js';
import { SessionGateway } from './fixtures/session.gateway.js';
import { locklessStore, storesUnderTest } from './support/stores.js';
import { createFixtureApp, sessionCookie } from './support/app.js';

const BURST = 50;
/** Every mode on every store: the same tests, a fresh store (own prefix / schema) per test. */
const { stores: STORES, dropSchema } = await storesUnderTest('conc');

let app: INestApplication | undefined;
let store: SessionStore;
afterEach(async () => {
  await app?.close();
  await store?.close?.();
  app = undefined;
});

for (const { name, describe: describeStore, create } of STORES) {
  describeStore(`Concurrent requests on one session (e2e, ${name} store)`, () => {
    async function boot(options: Partial<SessionModuleOptions> = {}) {
      store = create();
      app = await createFixtureApp({ store, ...options }, { controllers: [CartFixtureController] });
      const http = request(app.getHttpServer());
      const first = await http.post('/set').send({ name: 'shopper' }).expect(200);
      return { http, cookie: sessionCookie(first)! };
    }

    async function burst(http: ReturnType<typeof request>, cookie: string, route: string) {
      const responses = await Promise.all(
        Array.from({ length: BURST }, (_, i) =>
          http
            .post(route)
            .set('Cookie', cookie)
            .send({ item: `item-${i}` }),
        ),
      );
      const cart = await http.get('/cart').set('Cookie', cookie).expect(200);
      return { statuses: responses.map((r) => r.status), items: cart.body.items as string[] };
    }

    it('loses same-key updates without a lock: the failure the other modes prevent', async () => {
      const { http, cookie } = await boot();
      const { statuses, items } = await burst(http, cookie, '/cart/plain');
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(items.length).toBeLessThan(BURST);
    });

    it('keeps all 50 concurrent adds with @SessionLock()', async () => {
      const { http, cookie } = await boot();
      const { statuses, items } = await burst(http, cookie, '/cart/locked');
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(new Set(items).size).toBe(BURST);
    });

    it('keeps all 50 concurrent adds with @SessionLock() when eager: true read the session first (Passport)', async () => {
      const { http, cookie } = await boot({ eager: true });
      const { statuses, items } = await burst(http, cookie, '/cart/locked');
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(new Set(items).size).toBe(BURST);
    });

    it('keeps every value of 10 concurrent observable handlers under @SessionLock(), and frees the lock after', async () => {
      const { http, cookie } = await boot();
      const responses = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          http
            .post('/cart/stream')
            .set('Cookie', cookie)
            .send({ items: [`a${i}`, `b${i}`, `c${i}`] }),
        ),
      );
      expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
      const cart = await http.get('/cart').set('Cookie', cookie).expect(200);
      expect(new Set(cart.body.items).size).toBe(30);
      const started = Date.now();
      await http.post('/cart/locked').set('Cookie', cookie).send({ item: 'after' }).expect(200);
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it("keeps all 50 concurrent adds on every route with concurrency: 'serialize'", async () => {
      const { http, cookie } = await boot({ concurrency: 'serialize' });
      const { items } = await burst(http, cookie, '/cart/plain');
      expect(new Set(items).size).toBe(BURST);
    });

    it("detects instead of overwriting with concurrency: 'optimistic' (ST-3)", async () => {
      const { http, cookie } = await boot({ concurrency: 'optimistic' });
      const { statuses, items } = await burst(http, cookie, '/cart/plain');
      const ok = statuses.filter((s) => s === 200).length;
      expect(ok).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === 409).length).toBe(BURST - ok);
      expect(ok).toBeLessThan(BURST);
      // Every success is in the cart: no update was silently lost.
      expect(items).toHaveLength(ok);
    });

    it("still merges different keys under concurrency: 'optimistic'", async () => {
      const { http, cookie } = await boot({ concurrency: 'optimistic' });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          http
            .post('/slow-set')
            .set('Cookie', cookie)
            .send({ [`k${i}`]: i }),
        ),
      );
      expect(results.every((r) => r.status === 200)).toBe(true);
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(Object.keys(read.body.data)).toHaveLength(21);
    });

    it('answers 409 "busy" after lockTimeout instead of hanging', async () => {
      const { http, cookie } = await boot({ lockTimeout: 100 });
      const holder = http
        .post('/cart/hold?ms=400')
        .set('Cookie', cookie)
        .then((r) => r);
      await new Promise((resolve) => setTimeout(resolve, 30));
      const started = Date.now();
      const waiter = await http.post('/cart/locked').set('Cookie', cookie).send({ item: 'late' });
      expect(waiter.status).toBe(409);
      expect(waiter.body.message).toMatch(/busy/);
      expect(Date.now() - started).toBeLessThan(400);
      expect((await holder).status).toBe(200);
    });

    it('does not make requests of other sessions wait', async () => {
      const { http, cookie } = await boot();
      const other = sessionCookie(await http.post('/set').send({ name: 'other' }))!;
      const holder = http
        .post('/cart/hold?ms=500')
        .set('Cookie', cookie)
        .then((r) => r);
      await new Promise((resolve) => setTimeout(resolve, 30));
      const started = Date.now();
      await http.post('/cart/locked').set('Cookie', other).send({ item: 'x' }).expect(200);
      expect(Date.now() - started).toBeLessThan(300);
      await holder;
    });

    it('does not deadlock when a lock holder crashed: the lock expires', async () => {
      const { http, cookie } = await boot({ lockTtl: 200, lockTimeout: 2000 });
      const key = SessionTokenSigner.storageKey(cookie.split('=')[1].split('.')[0]);
      // A holder that took the lock and died (another instance, say).
      expect(await store.acquireLock!(key, 'crashed-instance', 200)).toBe(true);
      const started = Date.now();
      await http
        .post('/cart/locked')
        .set('Cookie', cookie)
        .send({ item: 'after-crash' })
        .expect(200);
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      const cart = await http.get('/cart').set('Cookie', cookie).expect(200);
      expect(cart.body.items).toEqual(['after-crash']);
    });

    it('answers 409 "busy", not 500, when a guarded route cannot get the lock', async () => {
      const { http, cookie } = await boot({ concurrency: 'serialize', lockTimeout: 100 });
      const holder = http
        .post('/cart/hold?ms=400')
        .set('Cookie', cookie)
        .then((r) => r);
      await new Promise((resolve) => setTimeout(resolve, 30));
      await http.get('/guarded').set('Cookie', cookie).expect(409);
      expect((await holder).status).toBe(200);
    });

    it('releases the lock when the guard refuses the request', async () => {
      const { http, cookie } = await boot({ concurrency: 'serialize', lockTimeout: 200 });
      // /admin loads the session (under the lock) and refuses it with 403.
      await http.get('/admin').set('Cookie', cookie).expect(403);
      await http.post('/cart/plain').set('Cookie', cookie).send({ item: 'a' }).expect(200);
    });
  });
}

describe('A lock wait after a store outage (e2e, memory store)', () => {
  it('answers 503, not 409 "busy", while the lock in the way may be left over from the outage', async () => {
    const memory = new MemorySessionStore();
    store = memory;
    const acquire = memory.acquireLock.bind(memory);
    let failNext = false;
    memory.acquireLock = async (key, owner, ttl) => {
      if (!failNext) return acquire(key, owner, ttl);
      failNext = false;
      // The caller sees a failure, and the store applies the call later (a client library's
      // resend once the node is back): a lock no request holds, after the cleanup ran.
      setTimeout(() => void acquire(key, owner, ttl), 300);
      throw new Error('connection lost');
    };
    app = await createFixtureApp(
      { store, lockTimeout: 300 },
      { controllers: [CartFixtureController] },
    );
    const http = request(app.getHttpServer());
    const cookie = sessionCookie(await http.post('/set').send({ name: 'shopper' }).expect(200))!;
    failNext = true;
    await http.post('/cart/locked').set('Cookie', cookie).send({ item: 'a' }).expect(503);
    await sleep(350);
    const waiter = await http.post('/cart/locked').set('Cookie', cookie).send({ item: 'b' });
    expect(waiter.status).toBe(503);
    // The left-over lock ends with its lease (1 s): the session is served again.
    await sleep(1_100);
    await http.post('/cart/locked').set('Cookie', cookie).send({ item: 'c' }).expect(200);
    const cart = await http.get('/cart').set('Cookie', cookie).expect(200);
    expect(cart.body.items).toEqual(['c']);
  });
  it('answers 503, not 409, for a write whose lock passed to another after a lock call on the session failed', async () => {
    const memory = new MemorySessionStore();
    store = memory;
    let acquireFails = false;
    let renewalsFail = false;
    const acquire = memory.acquireLock.bind(memory);
    const renew = memory.renewLock.bind(memory);
    memory.acquireLock = async (key, owner, ttl) => {
      if (acquireFails) throw new Error('connection lost');
      return acquire(key, owner, ttl);
    };
    memory.renewLock = async (key, owner, ttl) => {
      if (renewalsFail) throw new Error('connection lost');
      return renew(key, owner, ttl);
    };
    app = await createFixtureApp(
      { store, lockTimeout: 300 },
      { controllers: [CartFixtureController] },
    );
    const http = request(app.getHttpServer());
    const cookie = sessionCookie(await http.post('/set').send({ name: 'shopper' }).expect(200))!;
    const key = SessionTokenSigner.storageKey(cookie.split('=')[1].split('.')[0]);
    acquireFails = true;
    await http.post('/cart/locked').set('Cookie', cookie).send({ item: 'a' }).expect(503);
    acquireFails = false;
    renewalsFail = true;
    const holder = http
      .post('/cart/hold?ms=3000')
      .set('Cookie', cookie)
      .then((r) => r);
    // Once it holds the lock (a 1 ms probe fails), its lease (1 s) runs out unrenewed, and a lock
    // left over by the outage takes its place.
    let held = false;
    for (let waited = 0; !held && waited < 2_000; waited += 10) {
      await sleep(10);
      held = !(await memory.acquireLock(key, 'probe', 1));
    }
    expect(held).toBe(true);
    let taken = false;
    for (let waited = 0; !taken && waited < 2_500; waited += 50) {
      await sleep(50);
      taken = await memory.acquireLock(key, 'left-over', 5_000);
    }
    expect(taken).toBe(true);
    expect((await holder).status).toBe(503);
    await memory.releaseLock(key, 'left-over');
    renewalsFail = false;
    const cart = await http.get('/cart').set('Cookie', cookie).expect(200);
    expect(cart.body.items).toEqual([]);
  });
});

describe('Concurrency configuration', () => {
  it('refuses at boot a serialize mode the store cannot lock', async () => {
    const lockless = locklessStore();
    await expect(createFixtureApp({ store: lockless, concurrency: 'serialize' })).rejects.toThrow(
      /needs a store with acquireLock\/releaseLock/,
    );
  });

  it('refuses at boot @SessionLock() on a gateway message handler with a store that cannot lock', async () => {
    const lockless = locklessStore();
    await expect(
      createFixtureApp({ store: lockless }, { providers: [SessionGateway] }),
    ).rejects.toThrow(/@SessionLock\(\) needs a store with acquireLock/);
  });
});

afterAll(async () => {
  // The PostgreSQL stores above share one schema per run.
  await dropSchema();
});
