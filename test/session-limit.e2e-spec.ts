import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  MemorySessionStore,
  SessionConfigError,
  SessionService,
  type SessionEvent,
  type SessionModuleOptions,
  type SessionStore,
} from '../src/index.js';
import { createFixtureApp, sessionCookie } from './support/app.js';
import { storesUnderTest } from './support/stores.js';

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

    it('lets concurrent logins of one user settle on exactly the limit (REV-3)', async () => {
      const { user, whoami, service, http } = await boot({ maxSessionsPerUser: 2 });
      const responses = await Promise.all(
        Array.from({ length: 6 }, () => http.post('/login').send({ userId: user })),
      );
      expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      // Every login saw the same order, so together they kept the same two sessions.
      expect(await service.listForUser(user)).toHaveLength(2);
      const statuses = await Promise.all(responses.map((r) => whoami(sessionCookie(r)!)));
      expect(statuses.filter((status) => status === 200)).toHaveLength(2);
      await service.invalidateAllForUser(user);
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
      SessionConfigError,
    );
    await expect(
      createFixtureApp({
        maxSessionsPerUser: 3,
        maxSessionsPolicy: 'newest' as 'reject-new',
      }),
    ).rejects.toThrow(/'maxSessionsPolicy' must be 'evict-oldest' or 'reject-new'/);
  });
});
