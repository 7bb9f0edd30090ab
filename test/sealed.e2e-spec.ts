import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import fc from 'fast-check';
import request from 'supertest';
import { MemorySessionStore, SessionConfigError } from '../src/index.js';
import { SessionSealer } from '../src/transport/session-sealer.js';
import { fakeClock } from './support/clock.js';
import {
  OLD_SECRET,
  TEST_SECRET,
  createFixtureApp,
  sessionCookie,
  sessionSetCookie,
} from './support/app.js';

const valueOf = (cookie: string) => cookie.slice(cookie.indexOf('=') + 1);

describe('Sealed stateless sessions (e2e)', () => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    app = await createFixtureApp({ mode: 'sealed' });
    http = request(app.getHttpServer());
  });
  afterAll(async () => app.close());

  it('keeps the whole session in an encrypted cookie, with the same API', async () => {
    const res = await http
      .post('/set')
      .send({ name: 'ann', cart: ['a'] })
      .expect(200);
    const cookie = sessionCookie(res)!;
    // Neither raw JSON (the cookie is base64url) nor the JSON under that encoding. A short word
    // such as 'ann' can turn up in random ciphertext text, so the check is on the decoded bytes.
    const sealed = valueOf(cookie);
    expect(sealed).toMatch(/^[\w-]+$/);
    const bytes = Buffer.from(sealed, 'base64url').toString('latin1');
    expect(bytes).not.toContain('"ann"');
    expect(bytes).not.toContain('"cart"');
    const read = await http.get('/read').set('Cookie', cookie).expect(200);
    expect(read.body).toEqual({ data: { name: 'ann', cart: ['a'] }, isNew: false });
    expect(read.headers['set-cookie']).toBeUndefined();
    const updated = await http.post('/set').set('Cookie', cookie).send({ name: 'bea' }).expect(200);
    const next = sessionCookie(updated)!;
    const again = await http.get('/read').set('Cookie', next).expect(200);
    expect(again.body.data).toEqual({ name: 'bea', cart: ['a'] });
  });

  it('keeps data whose only key looks like a tag ($date, $$x) as it was written (ST-11)', async () => {
    for (const data of [{ $date: 'not a date' }, { $$x: 1 }, { $binary: { $date: 'x' } }]) {
      const cookie = sessionCookie(await http.post('/set').send(data).expect(200))!;
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body).toEqual({ data, isNew: false });
    }
  });

  it('guards, predicates, regenerate and destroy behave as in store mode', async () => {
    await http.get('/admin').expect(401);
    const user = sessionCookie(await http.post('/login').send({ userId: 'u', role: 'user' }))!;
    await http.get('/admin').set('Cookie', user).expect(403);
    const admin = await http
      .post('/login')
      .set('Cookie', user)
      .send({ userId: 'a', role: 'admin' });
    const adminCookie = sessionCookie(admin)!;
    await http.get('/admin').set('Cookie', adminCookie).expect(200);
    const gone = await http.post('/destroy').set('Cookie', adminCookie).expect(200);
    expect(sessionSetCookie(gone)).toMatch(/^sid=; Max-Age=0/);
  });

  it('seals with a fresh IV every time: the same session never gives the same cookie (EC-3)', async () => {
    const sealer = new SessionSealer([TEST_SECRET], 'sid');
    const session = {
      id: 'x',
      userId: null,
      createdAt: 1,
      lastActiveAt: 1,
      absoluteExpiresAt: 2,
      sealedAt: 1,
      data: {},
    };
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) seen.add(sealer.seal(session).slice(7, 23));
    expect(seen.size).toBe(10_000);
  });

  it('refuses a cookie moved to another name, a short tag, an unknown key id or format version (EC-2, EC-4, EC-5, KEY-2, SC-5)', async () => {
    const res = await http.post('/set').send({ name: 'ann' }).expect(200);
    const value = valueOf(sessionCookie(res)!);
    const moved = new SessionSealer([TEST_SECRET], 'other');
    expect(moved.open(value, Date.now())).toBeUndefined();
    const raw = Buffer.from(value, 'base64url');
    const sealer = new SessionSealer([TEST_SECRET], 'sid');
    expect(sealer.open(value, Date.now())).toBeDefined();
    for (const cut of [4, 8, 12]) {
      expect(
        sealer.open(raw.subarray(0, raw.length - cut).toString('base64url'), Date.now()),
      ).toBeUndefined();
    }
    const wrongKid = Buffer.from(raw);
    wrongKid[1] ^= 1;
    expect(sealer.open(wrongKid.toString('base64url'), Date.now())).toBeUndefined();
    const wrongVersion = Buffer.from(raw);
    wrongVersion[0] = 2;
    expect(sealer.open(wrongVersion.toString('base64url'), Date.now())).toBeUndefined();
  });

  it('turns every random or mutated cookie into an anonymous request, never a 500 (EC-8, SC-7)', async () => {
    const res = await http.post('/set').send({ name: 'fuzz' }).expect(200);
    const value = valueOf(sessionCookie(res)!);
    const sealer = new SessionSealer([TEST_SECRET], 'sid');
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: value.length - 1 }),
        fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'),
        (index, char) => {
          const mutated = value.slice(0, index) + char + value.slice(index + 1);
          if (
            mutated !== value &&
            Buffer.from(mutated, 'base64url').equals(Buffer.from(value, 'base64url')) === false
          ) {
            expect(sealer.open(mutated, Date.now())).toBeUndefined();
          }
        },
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => {
        expect(sealer.open(s, Date.now())).toBeUndefined();
      }),
      { numRuns: 2000 },
    );
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (s) => {
        if (/[^\t\x20-\x7e]/.test(s)) return;
        const r = await http.get('/guarded').set('Cookie', `sid=${s}`);
        expect(r.status).toBe(401);
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a write over 4096 bytes with a typed error and sends no cookie (CK-8)', async () => {
    const res = await http.post('/big').send({ size: 5000 }).expect(413);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('remembers a seal once it is sent, and never one refused as too large (CK-8, sealCache)', async () => {
    const remember = jest.spyOn(SessionSealer.prototype, 'remember');
    try {
      await http.post('/big').send({ size: 5000 }).expect(413);
      expect(remember).not.toHaveBeenCalled();
      await http
        .post('/big')
        .send({ size: 100 })
        .expect((r) => expect(r.status).toBeLessThan(300));
      expect(remember).toHaveBeenCalledTimes(1);
    } finally {
      remember.mockRestore();
    }
  });

  it('splits an oversized seal over numbered cookies when allowed, and joins them on read', async () => {
    const chunked = await createFixtureApp({ mode: 'sealed', cookieChunks: 3 });
    const h = request(chunked.getHttpServer());
    const res = await h.post('/big').send({ size: 4000 }).expect(200);
    const lines = res.headers['set-cookie'] as unknown as string[];
    expect(lines.map((l) => l.split('=')[0])).toEqual(['sid', 'sid.1']);
    expect(lines.every((l) => l.split(';')[0].length <= 4096)).toBe(true);
    const cookie = lines.map((l) => l.split(';')[0]).join('; ');
    const read = await h.get('/read').set('Cookie', cookie).expect(200);
    expect(read.body.data.name).toHaveLength(4000);
    // A part missing is an anonymous request, not an error.
    await h.get('/guarded').set('Cookie', lines[0].split(';')[0]).expect(401);
    // Shrinking back to one cookie expires the numbered one.
    const small = await h.post('/set').set('Cookie', cookie).send({ name: 'short' }).expect(200);
    const after = small.headers['set-cookie'] as unknown as string[];
    expect(after.find((l) => l.startsWith('sid.1='))).toMatch(/Max-Age=0/);
    // Past cookieChunks × 4096 bytes: refused, nothing sent.
    const huge = await h.post('/big').send({ size: 20_000 }).expect(413);
    expect(huge.headers['set-cookie']).toBeUndefined();
    await chunked.close();
  });

  it('re-seals a cookie opened by an old key under the new one, and drops removed keys (KEY-3, KEY-4)', async () => {
    const oldApp = await createFixtureApp({ mode: 'sealed', secret: OLD_SECRET });
    const login = await request(oldApp.getHttpServer()).post('/login').send({ userId: 'k' });
    const oldCookie = sessionCookie(login)!;
    await oldApp.close();
    const rotated = await createFixtureApp({ mode: 'sealed', secret: [TEST_SECRET, OLD_SECRET] });
    const res = await request(rotated.getHttpServer())
      .get('/guarded')
      .set('Cookie', oldCookie)
      .expect(200);
    const resealed = sessionCookie(res)!;
    expect(
      new SessionSealer([TEST_SECRET], 'sid').open(valueOf(resealed), Date.now()),
    ).toBeDefined();
    await rotated.close();
    await http.get('/guarded').set('Cookie', oldCookie).expect(401);
    await http.get('/guarded').set('Cookie', resealed).expect(200);
  });

  describe('expiry inside the seal (EC-6, TO-9)', () => {
    afterEach(() => {
      jest.useRealTimers();
    });

    it('ends idle and absolutely expired seals, whatever the cookie says', async () => {
      fakeClock();
      const cookie = sessionCookie(await http.post('/login').send({ userId: 'idle' }))!;
      jest.setSystemTime(Date.now() + 31 * 60_000);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
    });

    it('ends a seal that was opened on every request before, at the same time (sealCache)', async () => {
      fakeClock();
      const cookie = sessionCookie(await http.post('/login').send({ userId: 'often' }))!;
      for (let i = 0; i < 3; i++) {
        jest.setSystemTime(Date.now() + 50_000);
        await http.get('/guarded').set('Cookie', cookie).expect(200);
      }
      // 30 minutes after the last seal (the login), however often it was opened since.
      jest.setSystemTime(Date.now() + 30 * 60_000 - 150_000 + 1000);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
    });

    it('refuses seals dated more than 60 s in the future', () => {
      const sealer = new SessionSealer([TEST_SECRET], 'sid');
      const now = Date.now();
      const value = sealer.seal({
        id: 'f',
        userId: null,
        createdAt: now,
        lastActiveAt: now,
        absoluteExpiresAt: now + 1e6,
        sealedAt: now + 61_000,
        data: {},
      });
      expect(sealer.open(value, now)).toBeUndefined();
      expect(sealer.open(value, now + 2000)).toBeDefined();
    });
  });

  it('replays a copied cookie after logout when there is no revocation store (SC-9, documented)', async () => {
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'replay' }))!;
    await http.post('/destroy').set('Cookie', cookie).expect(200);
    await http.get('/guarded').set('Cookie', cookie).expect(200);
  });

  it('refuses a store in sealed mode at boot, pointing at revocationStore', async () => {
    await expect(
      createFixtureApp({ mode: 'sealed', store: new MemorySessionStore() }),
    ).rejects.toThrow(SessionConfigError);
  });
});

describe('Sealed sessions with revocation (e2e, REV-5)', () => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  let revocation: MemorySessionStore;

  beforeAll(async () => {
    revocation = new MemorySessionStore();
    app = await createFixtureApp({ mode: 'sealed', revocationStore: revocation });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await revocation.close();
  });

  it('kills a copied cookie at logout (LC-4)', async () => {
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'r1' }))!;
    await http.get('/guarded').set('Cookie', cookie).expect(200);
    await http.post('/destroy').set('Cookie', cookie).expect(200);
    await http.get('/guarded').set('Cookie', cookie).expect(401);
  });

  it('refuses a cookie opened many times before the logout, as the first time (LC-4, sealCache)', async () => {
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'r1b' }))!;
    for (let i = 0; i < 3; i++) await http.get('/guarded').set('Cookie', cookie).expect(200);
    await http.post('/destroy').set('Cookie', cookie).expect(200);
    for (let i = 0; i < 2; i++) await http.get('/guarded').set('Cookie', cookie).expect(401);
  });

  it('kills the old cookie at regenerate', async () => {
    const first = sessionCookie(await http.post('/set').send({ name: 'pre' }))!;
    const login = await http.post('/login').set('Cookie', first).send({ userId: 'r2' });
    await http.get('/guarded').set('Cookie', sessionCookie(login)!).expect(200);
    await http
      .get('/read')
      .set('Cookie', first)
      .expect(200)
      .expect((r) => expect(r.body.isNew).toBe(true));
  });

  it("keeps an anonymous session's deny-list entry only as long as a copy of its cookie could live", async () => {
    revocation.sweep();
    const before = revocation.size;
    for (let i = 0; i < 20; i++) {
      const cookie = sessionCookie(await http.post('/set').send({ name: `anon${i}` }))!;
      await http.post('/destroy').set('Cookie', cookie).expect(200);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
    }
    expect(revocation.size).toBe(before + 20);
    // anonymousIdleTimeout (10 minutes) later, a copy would have expired by itself: so have they.
    revocation.sweep(Date.now() + 10 * 60_000 + 1000);
    expect(revocation.size).toBeLessThanOrEqual(before);
  });

  it('logs a user out everywhere except the current session', async () => {
    const a = sessionCookie(await http.post('/login').send({ userId: 'r3' }))!;
    const b = sessionCookie(await http.post('/login').send({ userId: 'r3' }))!;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await http.post('/logout-others').set('Cookie', b).expect(200);
    await http.get('/guarded').set('Cookie', a).expect(401);
    await http.get('/guarded').set('Cookie', b).expect(200);
  });

  it('fails closed with 503 when the revocation store is down (FAIL-5)', async () => {
    const broken = new MemorySessionStore();
    broken.load = async () => {
      throw new Error('connection refused');
    };
    const down = await createFixtureApp({ mode: 'sealed', revocationStore: broken });
    const h = request(down.getHttpServer());
    const cookie = sessionCookie(await h.post('/set').send({ name: 'x' }))!;
    const res = await h.get('/guarded').set('Cookie', cookie).expect(503);
    expect(res.headers['set-cookie']).toBeUndefined();
    await h.get('/plain').set('Cookie', cookie).expect(200);
    await down.close();
    await broken.close();
  });
});
