import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { SessionService, type SessionModuleOptions } from '../src/index.js';
import { TEST_SECRET, createFixtureApp, sessionCookie } from './support/app.js';
import { storesUnderTest } from './support/stores.js';

// SessionService.fromCookieHeader / fromRequest / withCookieHeader: a Cookie header that came in
// some other way than a request the module serves (a WebSocket handshake, SSE, a raw upgrade).
const { stores, dropSchema } = await storesUnderTest('cookie_header');
afterAll(dropSchema);

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function boot(options: Partial<SessionModuleOptions>) {
  app = await createFixtureApp({ secret: TEST_SECRET, ...options });
  return { http: request(app.getHttpServer()), service: app.get(SessionService) };
}

/** The whole Cookie header of a response's cookies (a sealed session may span several). */
function cookieHeader(res: request.Response): string {
  const lines = (res.headers['set-cookie'] as unknown as string[] | undefined) ?? [];
  return lines.map((line) => line.split(';')[0]).join('; ');
}

for (const store of stores.filter((s) => s.name !== 'postgres')) {
  store.describe(`SessionService and a Cookie header (${store.name} store)`, () => {
    it('resolves a header to the live session, verified as a request would be', async () => {
      const { http, service } = await boot({ store: store.create() });
      const login = await http.post('/login').send({ userId: 'ws-user' }).expect(200);
      const cookie = sessionCookie(login)!;

      const session = await service.fromCookieHeader(`theme=dark; ${cookie}`);
      expect(session.isNew).toBe(false);
      expect(session.id).toBe(login.body.id);
      expect(session.data).toEqual({ userId: 'ws-user' });

      const viaRequest = await service.fromRequest({ headers: { cookie } });
      expect(viaRequest.id).toBe(login.body.id);
    });

    it('gives a new, empty session for no header, a forged cookie or an ended session (CK-1)', async () => {
      const { http, service } = await boot({ store: store.create() });
      expect((await service.fromCookieHeader(undefined)).isNew).toBe(true);
      expect((await service.fromCookieHeader('')).isNew).toBe(true);
      expect((await service.fromCookieHeader('sid=forged.value; sid=%%%')).isNew).toBe(true);

      const login = await http.post('/login').send({ userId: 'gone' }).expect(200);
      const cookie = sessionCookie(login)!;
      const [name, value] = cookie.split('=');
      expect((await service.fromCookieHeader(`${name}=${value.slice(0, -2)}xx`)).isNew).toBe(true);
      await service.invalidate(login.body.id as string);
      expect((await service.fromCookieHeader(cookie)).isNew).toBe(true);
    });

    it('runs withCookieHeader like a request: commit on success, roll back on throw', async () => {
      const { http, service } = await boot({ store: store.create() });
      const login = await http.post('/login').send({ userId: 'socket' }).expect(200);
      const cookie = sessionCookie(login)!;

      const seen = await service.withCookieHeader<string, { userId?: string; room?: string }>(
        [cookie],
        (session) => {
          session.data.room = 'lobby';
          return session.data.userId!;
        },
      );
      expect(seen).toBe('socket');
      expect((await service.get(login.body.id as string))?.data).toEqual({
        userId: 'socket',
        room: 'lobby',
      });

      await expect(
        service.withCookieHeader<void, { room?: string }>(cookie, (session) => {
          session.data.room = 'lost';
          throw new Error('handler failed');
        }),
      ).rejects.toThrow('handler failed');
      expect((await service.get(login.body.id as string))?.data.room).toBe('lobby');
      // The request path sees the same session the header resolved.
      await http
        .get('/read')
        .set('Cookie', cookie)
        .expect(200, { data: { userId: 'socket', room: 'lobby' }, isNew: false });
    });

    it('refuses a change that needs a new cookie, since nothing can carry it', async () => {
      const { http, service } = await boot({ store: store.create() });
      await expect(
        service.withCookieHeader(undefined, (session) => {
          session.data.first = 'write';
        }),
      ).rejects.toMatchObject({ code: 'SESSION_NO_TRANSPORT' });

      const cookie = sessionCookie(await http.post('/login').send({ userId: 'r' }).expect(200))!;
      await expect(
        service.withCookieHeader(cookie, (session) => session.regenerate()),
      ).rejects.toMatchObject({ code: 'SESSION_NO_TRANSPORT' });
      // A change of user is a new id too (LC-2).
      await expect(
        service.withCookieHeader<void, { userId?: string }>(cookie, (session) => {
          session.data.userId = 'someone-else';
        }),
      ).rejects.toMatchObject({ code: 'SESSION_NO_TRANSPORT' });
      // Nothing of the refused changes stands: the old cookie still works, as the same user.
      await http
        .get('/read')
        .set('Cookie', cookie)
        .expect(200, { data: { userId: 'r' }, isNew: false });
    });
  });
}

describe('SessionService and a Cookie header (sealed mode)', () => {
  it('opens a sealed cookie (chunks included), refuses forged and revoked ones', async () => {
    const revocationStore = stores[0].create();
    const { http, service } = await boot({ mode: 'sealed', revocationStore, cookieChunks: 4 });
    const login = await http.post('/login').send({ userId: 'sealed-ws' }).expect(200);
    const header = cookieHeader(login);

    const session = await service.fromCookieHeader(header);
    expect(session.isNew).toBe(false);
    expect(session.data).toEqual({ userId: 'sealed-ws' });
    expect((await service.fromCookieHeader(`${header}x`)).isNew).toBe(true);

    // A sealed session is changed only by a new cookie: no response, no change.
    await expect(
      service.withCookieHeader(header, (s) => {
        s.data.more = 1;
      }),
    ).rejects.toMatchObject({ code: 'SESSION_NO_TRANSPORT' });
    // Reading is fine.
    await expect(service.withCookieHeader(header, (s) => s.data.userId)).resolves.toBe('sealed-ws');

    await service.invalidateAllForUser('sealed-ws');
    expect((await service.fromCookieHeader(header)).isNew).toBe(true);
  });
});
