import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import expressSession from 'express-session';
import request from 'supertest';
import {
  ExpressSessionStoreAdapter,
  MemorySessionStore,
  SessionConfigError,
  type SessionModuleOptions,
  type SessionStore,
} from '../src/index.js';
import { CartFixtureController } from './fixtures/cart.controller.js';
import { createFixtureApp, sessionCookie } from './support/app.js';
import { storesUnderTest } from './support/stores.js';

let app: INestApplication | undefined;
const opened: SessionStore[] = [];
afterEach(async () => {
  await app?.close();
  app = undefined;
  for (const store of opened.splice(0)) await store.close?.();
});

async function boot(options: Partial<SessionModuleOptions>) {
  for (const store of [options.store, options.revocationStore]) if (store) opened.push(store);
  app = await createFixtureApp(options);
  return request(app.getHttpServer());
}

describe('Revocation by flooding (sealed mode, e2e)', () => {
  it('a flood of anonymous create/delete pairs cannot push a revoked cookie out of a bounded revocation store (REV-5)', async () => {
    const revocationStore = new MemorySessionStore({ maxSessions: 10 });
    const http = await boot({ mode: 'sealed', revocationStore });
    const admin = sessionCookie(await http.post('/login').send({ userId: 'admin' }))!;
    await http.post('/destroy').set('Cookie', admin).expect(200);
    const other = sessionCookie(await http.post('/login').send({ userId: 'u2' }))!;
    await http.post('/logout-others').set('Cookie', other).expect(200);
    for (let i = 0; i < 300; i++) {
      const anonymous = sessionCookie(await http.post('/set').send({ name: `x${i}` }))!;
      await http.post('/destroy').set('Cookie', anonymous).expect(200);
    }
    await http.get('/guarded').set('Cookie', admin).expect(401);
    await http.get('/guarded').set('Cookie', other).expect(200);
    expect(revocationStore.size).toBeLessThanOrEqual(10);
  });

  it('a full revocation store fails closed: the logout answers 503 and no earlier revocation is forgotten (REV-5)', async () => {
    const revocationStore = new MemorySessionStore({ maxSessions: 3 });
    const http = await boot({ mode: 'sealed', revocationStore });
    const revoked: string[] = [];
    for (let i = 0; i < 3; i++) {
      const cookie = sessionCookie(await http.post('/login').send({ userId: `u${i}` }))!;
      await http.post('/destroy').set('Cookie', cookie).expect(200);
      revoked.push(cookie);
    }
    const fourth = sessionCookie(await http.post('/login').send({ userId: 'u3' }))!;
    const refused = await http.post('/destroy').set('Cookie', fourth).expect(503);
    expect(refused.headers['set-cookie']).toBeUndefined();
    for (const cookie of revoked) await http.get('/guarded').set('Cookie', cookie).expect(401);
    // The refused logout can be retried once the store has room; the session still works meanwhile.
    await http.get('/guarded').set('Cookie', fourth).expect(200);
  });
});

describe('Eviction by flooding (memory store, e2e)', () => {
  it('a flood of anonymous first visits cannot evict an idle logged-in session (ST-9)', async () => {
    const http = await boot({ store: new MemorySessionStore({ maxSessions: 50 }) });
    const user = sessionCookie(await http.post('/login').send({ userId: 'idle-user' }))!;
    for (let i = 0; i < 300; i++) await http.post('/set').send({ n: i }).expect(200);
    const res = await http.get('/guarded').set('Cookie', user).expect(200);
    expect(res.body.userId).toBe('idle-user');
  });
});

const { stores, dropSchema } = await storesUnderTest('flood');
afterAll(async () => {
  await dropSchema();
});

for (const { name, describe: describeStore, create } of stores) {
  describeStore(`Anonymous sessions expire sooner (${name}, e2e)`, () => {
    it('keeps a session without a user only for anonymousIdleTimeout, a logged-in one for idleTimeout', async () => {
      const store = create();
      const http = await boot({ store, idleTimeout: '30m', anonymousIdleTimeout: '2m' });
      const started = Date.now();
      const anonymous = await http.post('/set').send({ name: 'visitor' }).expect(200);
      const user = await http.post('/login').send({ userId: 'anon-idle' }).expect(200);
      const records = await store.listForUser('anon-idle');
      expect(records).toHaveLength(1);
      expect(records[0].expiresAt - started).toBeGreaterThan(29 * 60_000);
      const id = (await http.get('/id').set('Cookie', sessionCookie(anonymous)!)).body.id as string;
      const record = await store.load(id);
      expect(record!.expiresAt - started).toBeLessThanOrEqual(2 * 60_000 + 1000);
      expect(record!.expiresAt - started).toBeGreaterThan(60_000);
      await http.post('/destroy').set('Cookie', sessionCookie(user)!).expect(200);
    });
  });
}

describe('Configuration that cannot work fails at boot', () => {
  it('refuses @SessionLock() on a store without locks, with a message', async () => {
    const lockless = new ExpressSessionStoreAdapter(new expressSession.MemoryStore());
    const failed = createFixtureApp({ store: lockless }, { controllers: [CartFixtureController] });
    await expect(failed).rejects.toThrow(SessionConfigError);
    await expect(
      createFixtureApp({ store: lockless }, { controllers: [CartFixtureController] }),
    ).rejects.toThrow(/@SessionLock\(\) needs a store with acquireLock\/releaseLock/);
  });

  it('refuses an anonymousIdleTimeout longer than idleTimeout', async () => {
    await expect(
      createFixtureApp({ idleTimeout: '5m', anonymousIdleTimeout: '10m' }),
    ).rejects.toThrow(/'anonymousIdleTimeout' .* is longer than 'idleTimeout'/);
  });
});
