import { afterAll, afterEach, describe, expect, it, jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import expressSession from 'express-session';
import {
  ExpressSessionStoreAdapter,
  MemorySessionStore,
  SessionConfigError,
  SessionService,
  type SessionEvent,
  type SessionModuleOptions,
  type SessionStore,
} from '../src/index.js';
import { createFixtureApp, sessionCookie } from './support/app.js';
import { fakeClock } from './support/clock.js';
import { overriding, storesUnderTest } from './support/stores.js';

const { stores: STORES, dropSchema } = await storesUnderTest('limit');

let app: INestApplication | undefined;
let store: SessionStore | undefined;
afterEach(async () => {
  await app?.close();
  await store?.close?.();
  app = undefined;
  store = undefined;
});

afterAll(async () => {
  await dropSchema();
});

/** Waits past the millisecond, so that each login is strictly more recent than the previous. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 3));

for (const { name, describe: describeStore, create: makeStore } of STORES) {
  describeStore(`maxSessionsPerUser (e2e, ${name})`, () => {
    async function boot(options: Partial<SessionModuleOptions>) {
      store = makeStore();
      const events: SessionEvent[] = [];
      app = await createFixtureApp({ store, onEvent: (e) => events.push(e), ...options });
      const http = request(app.getHttpServer());
      const user = `limit-${randomBytes(6).toString('hex')}`;
      const login = async () => {
        await tick();
        const res = await http.post('/login').send({ userId: user });
        return { status: res.status, cookie: sessionCookie(res) };
      };
      const whoami = async (cookie: string) =>
        (await http.get('/guarded').set('Cookie', cookie)).status;
      return { http, user, login, whoami, events, service: app.get(SessionService) };
    }

    it("evicts the least recently active of a user's sessions past the limit (REV-3)", async () => {
      const { user, login, whoami, events, service, http } = await boot({ maxSessionsPerUser: 2 });
      const first = (await login()).cookie!;
      const second = (await login()).cookie!;
      // The first session is used after the second was created: the second is now the oldest.
      await tick();
      await http.post('/touch').set('Cookie', first).expect(200);
      const third = await login();
      expect(third.status).toBe(200);

      expect(await whoami(third.cookie!)).toBe(200);
      expect(await whoami(first)).toBe(200);
      expect(await whoami(second)).toBe(401);
      expect(await service.listForUser(user)).toHaveLength(2);
      expect(events.filter((e) => e.type === 'revoked')).toEqual([
        expect.objectContaining({ reason: 'evicted', userId: user }),
      ]);

      // Another user's sessions are not counted.
      const other = await http
        .post('/login')
        .send({ userId: `${user}-other` })
        .expect(200);
      expect(await whoami(sessionCookie(other)!)).toBe(200);
      expect(await whoami(first)).toBe(200);
      await service.invalidateAllForUser(user);
      await service.invalidateAllForUser(`${user}-other`);
    });

    it('keeps exactly the limit when logins race on two instances while older sessions are used (REV-3)', async () => {
      const { user, login, whoami, service, http } = await boot({ maxSessionsPerUser: 2 });
      // A second instance on the same store: logins of one user take turns through the store's lock.
      const second = await createFixtureApp({ store, maxSessionsPerUser: 2 });
      try {
        const other = request(second.getHttpServer());
        const older = [(await login()).cookie!, (await login()).cookie!];
        const logins = Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? http : other).post('/login').send({ userId: user }),
        );
        const touches = older.map((cookie) => other.post('/touch').set('Cookie', cookie));
        const responses = await Promise.all([...logins, ...touches]);
        expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));

        expect(await service.listForUser(user)).toHaveLength(2);
        const cookies = [...responses.slice(0, 6).map((r) => sessionCookie(r)!), ...older];
        const statuses = await Promise.all(cookies.map((cookie) => whoami(cookie)));
        expect(statuses.filter((status) => status === 200)).toHaveLength(2);
        // The last login to take its turn always stays.
        expect(statuses.slice(0, 6)).toContain(200);
      } finally {
        await service.invalidateAllForUser(user);
        // Closing an app closes its store, which both instances share here: close it last.
        await second.close();
      }
    });

    it('refuses a login past the limit with 403, writing nothing, under reject-new (REV-3)', async () => {
      const { user, login, whoami, service, http } = await boot({
        maxSessionsPerUser: 1,
        maxSessionsPolicy: 'reject-new',
      });
      const first = (await login()).cookie!;
      const refused = await http.post('/login').send({ userId: user }).expect(403);
      expect(refused.body.message).toMatch(/most sessions allowed/);
      expect(sessionCookie(refused)).toBeUndefined();
      expect(await whoami(first)).toBe(200);
      expect(await service.listForUser(user)).toHaveLength(1);

      // Once the user logs out there, a login goes through again.
      await http.post('/destroy').set('Cookie', first).expect(200);
      const again = await login();
      expect(again.status).toBe(200);
      expect(await whoami(again.cookie!)).toBe(200);
      await service.invalidateAllForUser(user);
    });
  });
}

describe('maxSessionsPerUser (e2e, memory)', () => {
  it('never evicts the session that logs in, even when another one looks more recent (REV-3)', async () => {
    store = new MemorySessionStore();
    app = await createFixtureApp({ store, maxSessionsPerUser: 1 });
    const http = request(app.getHttpServer());
    const start = Date.now();
    try {
      fakeClock(start);
      const phone = sessionCookie(await http.post('/login').send({ userId: 'skew' }))!;
      // Another instance's clock runs ahead: the phone's last activity is after this login's.
      fakeClock(start + 10_000);
      await http.post('/touch').set('Cookie', phone).expect(200);
      fakeClock(start + 1_000);
      const laptop = sessionCookie(await http.post('/login').send({ userId: 'skew' }).expect(200))!;
      await http.get('/guarded').set('Cookie', laptop).expect(200);
      await http.get('/guarded').set('Cookie', phone).expect(401);
    } finally {
      jest.useRealTimers();
    }
  });

  it('lets the login stand when the store fails while evicting (REV-3)', async () => {
    const backing = new MemorySessionStore();
    let failDestroy = false;
    store = overriding(backing, {
      destroy: (key) =>
        failDestroy ? Promise.reject(new Error('ECONNRESET')) : backing.destroy(key),
    });
    app = await createFixtureApp({ store, maxSessionsPerUser: 1 });
    const http = request(app.getHttpServer());
    const first = sessionCookie(await http.post('/login').send({ userId: 'flaky' }))!;
    failDestroy = true;
    const second = sessionCookie(await http.post('/login').send({ userId: 'flaky' }).expect(200))!;
    await http.get('/guarded').set('Cookie', second).expect(200);
    await http.get('/guarded').set('Cookie', first).expect(200); // not evicted: the store failed
    failDestroy = false;
    await tick();
    const third = sessionCookie(await http.post('/login').send({ userId: 'flaky' }).expect(200))!;
    expect(await app.get(SessionService).listForUser('flaky')).toHaveLength(1);
    await http.get('/guarded').set('Cookie', third).expect(200);
  });

  it('leaves the session as it was when a login is refused (REV-3)', async () => {
    store = new MemorySessionStore();
    app = await createFixtureApp({ store, maxSessionsPerUser: 1, maxSessionsPolicy: 'reject-new' });
    const http = request(app.getHttpServer());
    await http.post('/login').send({ userId: 'bob' }).expect(200);
    const alice = sessionCookie(await http.post('/login').send({ userId: 'alice' }))!;
    await http
      .post('/set')
      .set('Cookie', alice)
      .send({ cart: ['a'] })
      .expect(200);
    // Alice's browser tries to log in as Bob, who is at the limit: refused, Alice's session intact.
    const refused = await http.post('/login').set('Cookie', alice).send({ userId: 'bob' });
    expect(refused.status).toBe(403);
    expect(sessionCookie(refused)).toBeUndefined();
    const read = await http.get('/read').set('Cookie', alice).expect(200);
    expect(read.body.data).toEqual({ userId: 'alice', cart: ['a'] });
  });

  it('counts a session once it holds the user: a later write of the same user is no login', async () => {
    store = new MemorySessionStore();
    app = await createFixtureApp({ store, maxSessionsPerUser: 1, maxSessionsPolicy: 'reject-new' });
    const http = request(app.getHttpServer());
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'kept' }).expect(200))!;
    await http
      .post('/set')
      .set('Cookie', cookie)
      .send({ cart: ['a'] })
      .expect(200);
    await http.get('/guarded').set('Cookie', cookie).expect(200);
  });

  it('refuses a limit that cannot work, at boot', async () => {
    await expect(createFixtureApp({ maxSessionsPerUser: 0 })).rejects.toThrow(
      /'maxSessionsPerUser' must be a whole number, at least 1/,
    );
    await expect(createFixtureApp({ mode: 'sealed', maxSessionsPerUser: 3 })).rejects.toThrow(
      /'maxSessionsPerUser' needs mode: 'store'/,
    );
    await expect(
      createFixtureApp({ maxSessionsPerUser: 3, maxSessionsPolicy: 'newest' as 'reject-new' }),
    ).rejects.toThrow(/'maxSessionsPolicy' must be 'evict-oldest' or 'reject-new'/);
    await expect(createFixtureApp({ maxSessionsPolicy: 'reject-new' })).rejects.toThrow(
      /'maxSessionsPolicy' has no effect without 'maxSessionsPerUser'/,
    );
    const lockless = new ExpressSessionStoreAdapter(new expressSession.MemoryStore());
    await expect(createFixtureApp({ store: lockless, maxSessionsPerUser: 3 })).rejects.toThrow(
      SessionConfigError,
    );
  });
});
