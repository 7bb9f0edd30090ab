import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  jest,
} from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { SessionTokenSigner } from '../src/transport/session-token.js';
import { createFixtureApp, sessionCookie, sessionSetCookie } from './support/app.js';
import { advanceClock, fakeClock } from './support/clock.js';
import { CountingStore } from './support/counting-store.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const advance = advanceClock;

describe('Timeouts (e2e, fake clock)', () => {
  let app: INestApplication;
  let store: CountingStore;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    store = new CountingStore();
    app = await createFixtureApp({ store, cookie: { maxAge: '14d' } });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });
  beforeEach(() => fakeClock(new Date('2026-01-01T00:00:00Z')));
  afterEach(() => {
    jest.useRealTimers();
  });

  async function login(): Promise<string> {
    const res = await http.post('/login').send({ userId: 'clock' }).expect(200);
    return sessionCookie(res)!;
  }

  it('ends a session idle for longer than idleTimeout, and deletes its record (TO-1)', async () => {
    const cookie = await login();
    advance(29 * MINUTE);
    await http.get('/guarded').set('Cookie', cookie).expect(200);
    advance(31 * MINUTE);
    await http.get('/guarded').set('Cookie', cookie).expect(401);
    const key = SessionTokenSigner.storageKey(cookie.split('=')[1].split('.')[0]);
    jest.useRealTimers();
    expect(await store.load(key)).toBeNull();
  });

  it('ends a session at absoluteTimeout however active it is (TO-2)', async () => {
    const cookie = await login();
    for (let elapsed = 0; elapsed < 12 * HOUR - 20 * MINUTE; elapsed += 20 * MINUTE) {
      advance(20 * MINUTE);
      await http.get('/guarded').set('Cookie', cookie).expect(200);
    }
    advance(20 * MINUTE);
    await http.get('/guarded').set('Cookie', cookie).expect(401);
  });

  it('records activity at most once per touchAfter, with a timestamp-only write (TO-5)', async () => {
    const cookie = await login();
    store.reset();
    for (let i = 0; i < 5; i++) {
      advance(10_000);
      await http.get('/guarded').set('Cookie', cookie).expect(200);
    }
    expect(store.calls.touch).toBeUndefined();
    advance(15_000);
    await http.get('/guarded').set('Cookie', cookie).expect(200);
    expect(store.calls.touch).toBe(1);
    expect(store.calls.save).toBeUndefined();
    // The idle clock restarted at the touch: 29 more minutes are fine.
    advance(29 * MINUTE);
    await http.get('/guarded').set('Cookie', cookie).expect(200);
  });

  it('never lets the cookie outlive the absolute lifetime (CK-9)', async () => {
    const res = await http.post('/login').send({ userId: 'cap' }).expect(200);
    // maxAge is 14 days, the absolute lifetime 12 hours.
    expect(sessionSetCookie(res)).toMatch(/Max-Age=43200(;|$)/);
    advance(20 * MINUTE);
    const touched = await http.post('/touch').set('Cookie', sessionCookie(res)!).expect(200);
    expect(sessionSetCookie(touched)).toMatch(/Max-Age=42000(;|$)/);
  });

  it('checks expiry on every read with its own rules, even when the store still holds the data (TO-3)', async () => {
    const shared = new CountingStore();
    const lenient = await createFixtureApp({ store: shared, idleTimeout: '2h' });
    const res = await request(lenient.getHttpServer()).post('/login').send({ userId: 'to3' });
    const cookie = sessionCookie(res)!;
    await lenient.close();
    const strict = await createFixtureApp({ store: shared, idleTimeout: '30m' });
    advance(40 * MINUTE);
    shared.reset();
    await request(strict.getHttpServer()).get('/guarded').set('Cookie', cookie).expect(401);
    expect(shared.calls).toEqual({ load: 1, destroy: 1 });
    expect(shared.size).toBe(0);
    await strict.close();
    await shared.close();
  });
});

const SECOND = 1_000;

for (const mode of ['store', 'sealed'] as const) {
  describe(`A session's own idle timeout (e2e, ${mode} mode, fake clock)`, () => {
    let app: INestApplication;
    let http: ReturnType<typeof request>;

    beforeAll(async () => {
      app = await createFixtureApp({ mode, idleTimeout: '30m' });
      http = request(app.getHttpServer());
    });
    afterAll(() => app.close());
    beforeEach(() => fakeClock(new Date('2026-01-01T00:00:00Z')));
    afterEach(() => {
      jest.useRealTimers();
    });

    /** Logs in and gives the session a 10-second idle timeout; the last cookie set. */
    async function shortSession(): Promise<string> {
      const login = await http.post('/login').send({ userId: 'kiosk' }).expect(200);
      const res = await http
        .post('/idle')
        .set('Cookie', sessionCookie(login)!)
        .send({ timeout: '10s' })
        .expect(200);
      expect(res.body.expiresAt).toBe(Date.now() + 10 * SECOND);
      return sessionCookie(res) ?? sessionCookie(login)!;
    }

    it('ends the session after its own idle timeout, not the module one (TO-6)', async () => {
      const cookie = await shortSession();
      advance(11 * SECOND);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
    });

    it('keeps an active session alive, recording activity at least every half of it (TO-6)', async () => {
      let cookie = await shortSession();
      for (let i = 0; i < 4; i++) {
        advance(6 * SECOND);
        const res = await http.get('/guarded').set('Cookie', cookie).expect(200);
        cookie = sessionCookie(res) ?? cookie;
      }
      advance(11 * SECOND);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
    });

    // Sealed mode has no server copy to merge into: the last cookie set wins, for this as for any key.
    const storeOnly = mode === 'store' ? it : () => undefined;
    storeOnly(
      'keeps it when a request that loaded the session earlier writes afterwards (TO-6)',
      async () => {
        const login = await http.post('/login').send({ userId: 'kiosk' }).expect(200);
        let cookie = sessionCookie(login)!;
        // Loads now, writes 20 ms later: after the idle timeout was set by the next request.
        const stale = http
          .post('/slow-set')
          .set('Cookie', cookie)
          .send({ late: true })
          .then((r) => r);
        const set = await http.post('/idle').set('Cookie', cookie).send({ timeout: '10s' });
        cookie = sessionCookie(set) ?? cookie;
        const late = await stale;
        expect(late.status).toBe(200);
        cookie = sessionCookie(late) ?? cookie;
        const read = await http.get('/read').set('Cookie', cookie).expect(200);
        expect(read.body.data).toEqual({ userId: 'kiosk', late: true });
        advance(11 * SECOND);
        await http.get('/guarded').set('Cookie', cookie).expect(401);
      },
    );

    it('is not part of the data the application sees', async () => {
      const cookie = await shortSession();
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual({ userId: 'kiosk' });
      if (mode === 'store') {
        const mine = await http.get('/mine').set('Cookie', cookie).expect(200);
        expect(JSON.stringify(mine.body)).not.toContain('idleTimeout');
      }
    });

    it('refuses an idle timeout longer than the module one with a 400, never a 500', async () => {
      const login = await http.post('/login').send({ userId: 'kiosk' }).expect(200);
      await http
        .post('/idle')
        .set('Cookie', sessionCookie(login)!)
        .send({ timeout: '31m' })
        .expect(400);
    });
  });
}
