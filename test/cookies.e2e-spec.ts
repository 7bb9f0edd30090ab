import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import fc from 'fast-check';
import request from 'supertest';
import { SessionService } from '../src/session.service.js';
import { SessionTokenSigner } from '../src/transport/session-token.js';
import {
  OLD_SECRET,
  TEST_ADAPTER,
  TEST_SECRET,
  createFixtureApp,
  sessionCookie,
  sessionSetCookie,
} from './support/app.js';
import { CountingStore } from './support/counting-store.js';

describe('Session cookies and tokens (e2e)', () => {
  let app: INestApplication;
  let store: CountingStore;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    store = new CountingStore();
    app = await createFixtureApp({ store });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });

  async function login(userId = 'u1'): Promise<string> {
    const res = await http.post('/login').send({ userId }).expect(200);
    return sessionCookie(res)!;
  }

  it('sets HttpOnly, SameSite=Lax, Path=/, no Domain, no Max-Age and Cache-Control: no-store (CK-1, CK-5, CK-12)', async () => {
    const res = await http.post('/set').send({ name: 'ann' }).expect(200);
    const line = sessionSetCookie(res)!;
    expect(line).toMatch(
      /^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/,
    );
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('puts nothing but a random token and its signature in the cookie (TOK-8, IN-4)', async () => {
    const res = await http
      .post('/set')
      .send({ name: 'ann\r\nSet-Cookie: evil=1; x', userId: 'alice@example.com' })
      .expect(200);
    const lines = res.headers['set-cookie'] as unknown as string[];
    expect(lines).toHaveLength(1);
    const value = sessionCookie(res)!.split('=')[1];
    // Exactly a 32-byte token and a 32-byte MAC in base64url: no room for any of the data.
    expect(value).toMatch(/^[\w-]{43}\.[\w-]{43}$/);
    expect(Buffer.from(value.split('.')[0], 'base64url')).toHaveLength(32);
  });

  it('keeps no token or cookie text in the store (TOK-2)', async () => {
    const cookie = await login('tok2');
    const token = cookie.split('=')[1].split('.')[0];
    const key = SessionTokenSigner.storageKey(token);
    const record = await store.load(key);
    expect(record).not.toBeNull();
    expect(JSON.stringify(record)).not.toContain(token);
    expect(await store.load(token)).toBeNull();
  });

  it('does not accept the stored key (hash) as a cookie (TOK-3)', async () => {
    const cookie = await login('tok3');
    const key = SessionTokenSigner.storageKey(cookie.split('=')[1].split('.')[0]);
    const forged = new SessionTokenSigner([TEST_SECRET], 'sid').sign(key);
    await http.get('/guarded').set('Cookie', `sid=${forged}`).expect(401);
  });

  it('reads the token only from the cookie, never from the query string (TOK-9)', async () => {
    const cookie = await login('tok9');
    await http.get(`/guarded?sid=${encodeURIComponent(cookie.split('=')[1])}`).expect(401);
  });

  it('never adopts an unknown id: a validly signed unknown token gets a fresh one (TOK-6, TOK-7)', async () => {
    const signer = new SessionTokenSigner([TEST_SECRET], 'sid');
    const chosen = SessionTokenSigner.mint();
    const before = store.size;
    const read = await http
      .get('/read')
      .set('Cookie', `sid=${signer.sign(chosen)}`)
      .expect(200);
    expect(read.body.isNew).toBe(true);
    expect(store.size).toBe(before);
    const res = await http
      .post('/set')
      .set('Cookie', `sid=${signer.sign(chosen)}`)
      .send({ a: 1 });
    expect(sessionCookie(res)).not.toContain(chosen);
    expect(await store.load(SessionTokenSigner.storageKey(chosen))).toBeNull();
  });

  it('treats tampered, truncated, oversized and garbage cookies as anonymous, never 500 (SC-3, SC-7, IN-1)', async () => {
    const cookie = await login('bad');
    const value = cookie.split('=')[1];
    const bad = [
      value.slice(0, -1),
      value.slice(0, 43),
      value + 'A',
      `${value.slice(0, 43)}.${'A'.repeat(43)}`,
      value.replace('.', ''),
      'x'.repeat(5000),
      '%00',
      '../../etc/passwd',
      '*',
      'a:b',
      '"unterminated',
      'ä',
      '',
    ];
    for (const v of bad) {
      store.reset();
      const res = await http.get('/guarded').set('Cookie', `sid=${v}`);
      expect(res.status).toBe(401);
      expect(store.calls.load).toBeUndefined();
    }
  });

  it('answers random Cookie headers without a 500 (fast-check)', async () => {
    const cookie = await login('fuzz');
    const value = cookie.split('=')[1];
    const header = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ maxLength: 100 }).map((s) => `sid=${s}`),
      fc
        .tuple(fc.nat(value.length - 1), fc.string({ minLength: 1, maxLength: 1 }))
        .map(([i, c]) => `sid=${value.slice(0, i)}${c}${value.slice(i + 1)}`),
      fc
        .array(fc.constantFrom('sid=', value, ';', ' ', '=', '"', 'a', ','), { maxLength: 12 })
        .map((a) => a.join('')),
    );
    await fc.assert(
      fc.asyncProperty(header, async (h) => {
        // Node refuses to send some characters in headers; those never reach a server either.
        if (/[^\t\x20-\x7e\x80-\xff]/.test(h)) return;
        const res = await http.get('/guarded').set('Cookie', h);
        expect([200, 401]).toContain(res.status);
        const read = await http.get('/read').set('Cookie', h);
        expect(read.status).toBe(200);
      }),
      { numRuns: 150 },
    );
  });

  it('uses the genuine cookie when a forged one with the same name comes first (CK-15)', async () => {
    const cookie = await login('ck15');
    const forged = `sid=${SessionTokenSigner.mint()}.${'A'.repeat(43)}`;
    const res = await http.get('/guarded').set('Cookie', `${forged}; ${cookie}`).expect(200);
    expect(res.body.userId).toBe('ck15');
  });

  it('uses the genuine cookie behind any number of forged copies, and reaches the store only for signed ones (CK-15, cookie tossing)', async () => {
    const cookie = await login('tossed');
    const forged = Array.from(
      { length: 40 },
      () => `sid=${SessionTokenSigner.mint()}.${'A'.repeat(43)}`,
    ).join('; ');
    store.reset();
    const res = await http.get('/guarded').set('Cookie', `${forged}; ${cookie}`).expect(200);
    expect(res.body.userId).toBe('tossed');
    expect(store.calls.load).toBe(1);
    // Correctly signed copies whose sessions are gone are looked up, but only a few of them.
    const dead: string[] = [];
    for (let i = 0; i < 5; i++) {
      const gone = await login(`gone${i}`);
      await http.post('/destroy').set('Cookie', gone).expect(200);
      dead.push(gone);
    }
    store.reset();
    await http
      .get('/guarded')
      .set('Cookie', `${dead.slice(0, 2).join('; ')}; ${cookie}`)
      .expect(200);
    expect(store.calls.load).toBe(3);
    store.reset();
    await http.get('/guarded').set('Cookie', `${dead.join('; ')}; ${cookie}`);
    expect(store.calls.load).toBe(3);
  });

  it('re-issues a cookie signed with an old secret under the new one, and refuses it once the old secret is gone (KEY-3, KEY-4)', async () => {
    const shared = new CountingStore();
    const oldApp = await createFixtureApp({ store: shared, secret: OLD_SECRET });
    const login = await request(oldApp.getHttpServer()).post('/login').send({ userId: 'k' });
    const oldCookie = sessionCookie(login)!;
    await oldApp.close();

    const rotated = await createFixtureApp({ store: shared, secret: [TEST_SECRET, OLD_SECRET] });
    const res = await request(rotated.getHttpServer())
      .get('/guarded')
      .set('Cookie', oldCookie)
      .expect(200);
    const reissued = sessionCookie(res)!;
    expect(reissued).toBeDefined();
    expect(reissued.split('.')[0]).toBe(oldCookie.split('.')[0]);
    expect(
      new SessionTokenSigner([TEST_SECRET], 'sid').verify(reissued.split('=')[1]),
    ).toBeDefined();
    const again = await request(rotated.getHttpServer())
      .get('/guarded')
      .set('Cookie', reissued)
      .expect(200);
    expect(again.headers['set-cookie']).toBeUndefined();
    await rotated.close();

    const newOnly = await createFixtureApp({ store: shared, secret: TEST_SECRET });
    await request(newOnly.getHttpServer()).get('/guarded').set('Cookie', oldCookie).expect(401);
    await request(newOnly.getHttpServer()).get('/guarded').set('Cookie', reissued).expect(200);
    await newOnly.close();
    await shared.close();
  });

  it('clears a dead cookie when the session is used and found missing', async () => {
    const cookie = await login('dead');
    await http.post('/destroy').set('Cookie', cookie).expect(200);
    const res = await http.get('/read').set('Cookie', cookie).expect(200);
    expect(sessionSetCookie(res)).toMatch(/^sid=; Max-Age=0/);
  });

  describe('secure cookies over plain HTTP (CK-2)', () => {
    it('does not send a Secure cookie over plain HTTP, stores nothing, and warns', async () => {
      const secureStore = new CountingStore();
      const secureApp = await createFixtureApp({ store: secureStore, cookie: { secure: true } });
      const res = await request(secureApp.getHttpServer()).post('/set').send({ a: 1 }).expect(200);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(secureStore.size).toBe(0);
      await secureApp.close();
    });

    it('sends it behind a trusted proxy that says the request was HTTPS', async () => {
      const proxied = await createFixtureApp({ cookie: { secure: true }, trustProxy: true });
      const server = proxied.getHttpServer();
      const res = await request(server)
        .post('/set')
        .set('X-Forwarded-Proto', 'https')
        .send({ a: 1 });
      // secure: true defaults the name to the __Host- prefix (CK-4).
      expect(sessionSetCookie(res, '__Host-sid')).toMatch(/; Secure;/);
      const spoofed = await createFixtureApp({ cookie: { secure: true }, trustProxy: false });
      const res2 = await request(spoofed.getHttpServer())
        .post('/set')
        .set('X-Forwarded-Proto', 'https')
        .send({ a: 1 });
      expect(res2.headers['set-cookie']).toBeUndefined();
      await proxied.close();
      await spoofed.close();
    });

    it("sets Secure only on HTTPS requests with secure: 'auto'", async () => {
      const auto = await createFixtureApp({ cookie: { secure: 'auto' }, trustProxy: true });
      const server = auto.getHttpServer();
      const plain = await request(server).post('/set').send({ a: 1 });
      expect(sessionSetCookie(plain)).not.toMatch(/Secure/);
      const tls = await request(server)
        .post('/set')
        .set('X-Forwarded-Proto', 'https')
        .send({ a: 1 });
      expect(sessionSetCookie(tls)).toMatch(/Secure/);
      await auto.close();
    });
  });

  /** Writes `set` into the session of `cookie` past the session, as another program could. */
  async function writePastSession(cookie: string, set: Record<string, string>): Promise<string> {
    const key = SessionTokenSigner.storageKey(cookie.split('=')[1].split('.')[0]);
    const record = (await store.load(key))!;
    await store.save({
      kind: 'update',
      key,
      set,
      unset: [],
      userId: record.userId,
      createdAt: record.createdAt,
      lastActiveAt: Date.now(),
      expiresAt: record.expiresAt,
      absoluteExpiresAt: record.absoluteExpiresAt,
    });
    return key;
  }

  it('returns stored __proto__ data as plain data and pollutes nothing (IN-2)', async () => {
    const cookie = await login('proto');
    await writePastSession(cookie, {
      prefs: '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}},"ok":1}',
    });
    const res = await http.get('/guarded').set('Cookie', cookie).expect(200);
    expect(res.body.prefs).toEqual({ ok: 1 });
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    const set = await http
      .post('/set')
      .set('Cookie', cookie)
      .send(JSON.parse('{"__proto__":{"x":1}}'));
    expect(set.status).toBe(400);
    // Express parses the key and the session refuses it; Fastify's JSON parser refuses it first.
    expect(set.body.message).toMatch(
      TEST_ADAPTER === 'fastify' ? /not valid JSON/ : /cannot be a session key/,
    );
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('leaves stored __proto__, constructor and prototype keys out of the data SessionService lists, changing no prototype (IN-2)', async () => {
    const cookie = await login('proto-list');
    // Top-level keys the session refuses to write.
    const key = await writePastSession(
      cookie,
      Object.fromEntries([
        ['__proto__', '{"isAdmin":true}'],
        ['constructor', '{"isAdmin":true}'],
        ['prototype', '1'],
        ['ok', '1'],
      ]),
    );
    const sessions = app.get(SessionService);
    const infos = [(await sessions.get(key))!, ...(await sessions.listForUser('proto-list'))];
    expect(infos).toHaveLength(2);
    const forbidden = ['__proto__', 'constructor', 'prototype'];
    for (const info of infos) {
      expect(Object.getPrototypeOf(info.data)).toBe(Object.prototype);
      expect((info.data as Record<string, unknown>).isAdmin).toBeUndefined();
      expect(Object.keys(info.data).filter((k) => forbidden.includes(k))).toEqual([]);
      expect(info.data).toMatchObject({ ok: 1 });
    }
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});

describe('Private responses (e2e)', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('marks a response that read a logged-in session private, no-store, so the back button after logout shows nothing', async () => {
    app = await createFixtureApp();
    const http = request(app.getHttpServer());
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'cached' }))!;
    const page = await http.get('/guarded').set('Cookie', cookie).expect(200);
    expect(page.headers['cache-control']).toBe('private, no-store');
    expect(page.headers.vary).toMatch(/Cookie/);
    // The handler's own choice stands.
    const own = await http.get('/cacheable').set('Cookie', cookie).expect(200);
    expect(own.headers['cache-control']).toBe('private, max-age=60');
    // Nothing to hide: an anonymous session, a route that never reads the session.
    const anonymous = sessionCookie(await http.post('/set').send({ name: 'a' }))!;
    const read = await http.get('/read').set('Cookie', anonymous).expect(200);
    expect(read.headers['cache-control']).toBeUndefined();
    const plain = await http.get('/plain').set('Cookie', cookie).expect(200);
    expect(plain.headers['cache-control']).toBeUndefined();
  });

  it('leaves Cache-Control alone with cacheControl: false', async () => {
    app = await createFixtureApp({ cacheControl: false });
    const http = request(app.getHttpServer());
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'cached' }))!;
    const page = await http.get('/guarded').set('Cookie', cookie).expect(200);
    expect(page.headers['cache-control']).toBeUndefined();
  });
});

describe.each(['store', 'sealed'] as const)(
  'req.session.cookie and req.sessionID, as express-session has them (e2e, %s mode)',
  (mode) => {
    let app: INestApplication;
    let http: ReturnType<typeof request>;
    beforeAll(async () => {
      app = await createFixtureApp({ mode });
      http = request(app.getHttpServer());
    });
    afterAll(() => app.close());

    it('shows a browser-session cookie with no lifetime, and the session id as req.sessionID', async () => {
      const cookie = sessionCookie(await http.post('/set').send({ name: 'c' }))!;
      const res = await http.get('/req-cookie').set('Cookie', cookie).expect(200);
      expect(res.body).toMatchObject({
        maxAge: null,
        expires: null,
        originalMaxAge: null,
        httpOnly: true,
        path: '/',
        sameSite: 'lax',
      });
      expect(res.body.sessionID).toBe(res.body.id);
      expect(res.body.json).toMatchObject({ originalMaxAge: null, expires: null, httpOnly: true });
    });

    it('makes the cookie persistent when a handler sets maxAge ("remember me"), and keeps that for the session', async () => {
      const login = await http.post('/remember').send({ maxAge: 3_600_000 }).expect(200);
      expect(sessionSetCookie(login)).toMatch(/; Max-Age=3600;/);
      const cookie = sessionCookie(login)!;
      const read = await http.get('/req-cookie').set('Cookie', cookie).expect(200);
      expect(read.body.originalMaxAge).toBe(3_600_000);
      expect(read.body.maxAge).toBeGreaterThan(3_590_000);
      expect(read.body.maxAge).toBeLessThanOrEqual(3_600_000);
      expect(new Date(read.body.expires).getTime()).toBeGreaterThan(Date.now() + 3_590_000);
      // A later write refreshes the cookie with the session's own lifetime.
      const write = await http.post('/req-write').set('Cookie', cookie).expect(200);
      expect(sessionSetCookie(write)).toMatch(/; Max-Age=3600;/);
    });

    it('turns it back into a browser-session cookie with maxAge = null, and takes expires as well', async () => {
      const cookie = sessionCookie(await http.post('/remember').send({ maxAge: 60_000 }))!;
      const back = await http.post('/remember').set('Cookie', cookie).send({ maxAge: null });
      expect(back.status).toBe(200);
      expect(sessionSetCookie(back)).not.toMatch(/Max-Age/);
      const later = new Date(Date.now() + 120_000).toISOString();
      const dated = await http.post('/remember').send({ expires: later }).expect(200);
      expect(sessionSetCookie(dated)).toMatch(/; Max-Age=(119|120);/);
    });

    it('refuses a maxAge that is not a duration with 400, and changes nothing', async () => {
      const res = await http.post('/remember').send({ maxAge: -5 });
      expect(res.status).toBe(400);
      expect(sessionSetCookie(res)).toBeUndefined();
    });
  },
);
