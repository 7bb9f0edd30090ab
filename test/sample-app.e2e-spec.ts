import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { io as connectIo, type Socket as IoSocket } from 'socket.io-client';
import { GENERATED_SECRET_ENV, loadConfig } from '../sample-app/src/config.js';
import { sessionCookie, sessionSetCookie } from './support/app.js';
import { bootSampleApp } from './support/sample-app.js';

/**
 * The sample app's route table (DESIGN.md), in-process, on the memory store and in the stateless
 * sealed-cookie mode (SESSION_STORE=cookie). What needs server state is marked per mode.
 */
describe.each(['memory', 'cookie'] as const)('Sample app (e2e, SESSION_STORE=%s)', (mode) => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  /** Listing sessions needs server state: sealed cookies cannot be enumerated. */
  const itWithServerState = mode === 'memory' ? it : it.skip;

  beforeAll(async () => {
    ({ app, http } = await bootSampleApp({ SESSION_STORE: mode }));
  });
  afterAll(async () => app.close());

  function login(username: string, password: string, agent = 'jest-agent') {
    return http.post('/auth/login').set('User-Agent', agent).send({ username, password });
  }

  it('GET / serves the page and sets no cookie for a visitor', async () => {
    const res = await http.get('/').expect(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.text).toContain('<form');
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  it('POST /create_session/:name, GET /whoami, POST /delete_session', async () => {
    const created = await http.post('/create_session/bob').expect(200);
    expect(created.text).toBe('Created session for bob');
    const cookie = sessionCookie(created)!;
    expect(cookie).toBeDefined();
    const who = await http.get('/whoami').set('Cookie', cookie).expect(200);
    expect(who.body).toEqual({ username: 'bob' });
    await http.get('/whoami').expect(401);
    const deleted = await http.post('/delete_session').set('Cookie', cookie).expect(200);
    expect(deleted.text).toBe('Deleted session');
    expect(sessionSetCookie(deleted)).toMatch(/^sid=; Max-Age=0/);
    await http.get('/whoami').set('Cookie', cookie).expect(401);
  });

  it('refuses state-changing requests from other sites, not from curl or its own page (CSRF-1)', async () => {
    const created = await http.post('/create_session/bob').expect(200);
    const cookie = sessionCookie(created)!;
    await http
      .post('/delete_session')
      .set('Cookie', cookie)
      .set('Origin', 'https://evil.example')
      .expect(403);
    await http
      .post('/auth/logout')
      .set('Cookie', cookie)
      .set('Sec-Fetch-Site', 'cross-site')
      .expect(403);
    await http.get('/whoami').set('Cookie', cookie).expect(200);
    await http
      .post('/delete_session')
      .set('Cookie', cookie)
      .set('Sec-Fetch-Site', 'same-origin')
      .expect(200);
  });

  it('POST /create_session/:name creates { username: name } and nothing of the earlier session', async () => {
    const admin = await login('admin', 'admin-secret').expect(200);
    const created = await http
      .post('/create_session/mallory')
      .set('Cookie', sessionCookie(admin)!)
      .expect(200);
    const cookie = sessionCookie(created)!;
    const who = await http.get('/whoami').set('Cookie', cookie).expect(200);
    expect(who.body).toEqual({ username: 'mallory' });
    await http.get('/admin').set('Cookie', cookie).expect(403);
    await http.get('/admin').set('Cookie', sessionCookie(admin)!).expect(401);
  });

  it('GET /session_test counts per session', async () => {
    const first = await http.get('/session_test').expect(200);
    expect(first.body).toEqual({ test_counter: 1 });
    // Like a browser: keep whatever cookie the last response set (sealed mode re-seals on writes).
    let cookie = sessionCookie(first)!;
    for (const n of [2, 3]) {
      const res = await http.get('/session_test').set('Cookie', cookie).expect(200);
      expect(res.body).toEqual({ test_counter: n });
      cookie = sessionCookie(res) ?? cookie;
    }
    const fresh = await http.get('/session_test').expect(200);
    expect(fresh.body).toEqual({ test_counter: 1 });
  });

  it('POST /auth/login checks hashed passwords, regenerates the id, 401 on bad credentials', async () => {
    await login('alice', 'wrong').expect(401);
    await login('nobody', 'wonderland').expect(401);
    await http.post('/auth/login').send({ username: 'alice' }).expect(401);
    await http.post('/auth/login').send({}).expect(401);
    const pre = await http.get('/session_test').expect(200);
    const planted = sessionCookie(pre)!;
    const res = await http
      .post('/auth/login')
      .set('Cookie', planted)
      .send({ username: 'alice', password: 'wonderland' })
      .expect(200);
    expect(res.body).toEqual({ username: 'alice', role: 'user' });
    const cookie = sessionCookie(res)!;
    expect(cookie).not.toBe(planted);
    const who = await http.get('/whoami').set('Cookie', cookie).expect(200);
    expect(who.body).toMatchObject({ userId: '1', username: 'alice', role: 'user' });
    // The id planted before login is dead after it (fixation).
    await http.get('/whoami').set('Cookie', planted).expect(401);
  });

  it('GET /admin: 401 anonymous, 403 for a user, 200 for an admin', async () => {
    await http.get('/admin').expect(401);
    const alice = sessionCookie(await login('alice', 'wonderland'))!;
    await http.get('/admin').set('Cookie', alice).expect(403);
    const admin = sessionCookie(await login('admin', 'admin-secret'))!;
    await http.get('/admin').set('Cookie', admin).expect(200);
  });

  itWithServerState(
    'GET/DELETE /auth/sessions list the sessions without ids and log out the others',
    async () => {
      const phone = sessionCookie(await login('admin', 'admin-secret', 'phone'))!;
      const laptop = sessionCookie(await login('admin', 'admin-secret', 'laptop'))!;
      const list = await http.get('/auth/sessions').set('Cookie', laptop).expect(200);
      const mine = list.body.filter((s: { userAgent: string }) =>
        ['phone', 'laptop'].includes(s.userAgent),
      );
      expect(mine).toHaveLength(2);
      expect(mine.find((s: { userAgent: string }) => s.userAgent === 'laptop').current).toBe(true);
      expect(mine.find((s: { userAgent: string }) => s.userAgent === 'phone').current).toBe(false);
      for (const s of list.body) {
        expect(Object.keys(s).sort()).toEqual([
          'createdAt',
          'current',
          'lastActiveAt',
          'userAgent',
        ]);
      }
      const token = laptop.split('=')[1].split('.')[0];
      expect(JSON.stringify(list.body)).not.toContain(token);
      await http.get('/auth/sessions').expect(401);

      const out = await http.delete('/auth/sessions').set('Cookie', laptop).expect(200);
      expect(out.body.loggedOut).toBeGreaterThanOrEqual(1);
      await http.get('/whoami').set('Cookie', phone).expect(401);
      await http.get('/whoami').set('Cookie', laptop).expect(200);
    },
  );

  it('POST /graphql: whoami and addToCart with the session, UNAUTHENTICATED without, a failed mutation saves nothing', async () => {
    const gql = (query: string, cookie?: string) => {
      const req = http.post('/graphql').send({ query });
      return cookie ? req.set('Cookie', cookie) : req;
    };
    const anonymous = await gql('{ whoami { username } }').expect(200);
    expect(anonymous.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');

    const cookie = sessionCookie(await login('alice', 'wonderland').expect(200))!;
    const me = await gql('{ whoami { username role cart } }', cookie).expect(200);
    expect(me.body.data.whoami).toEqual({ username: 'alice', role: 'user', cart: [] });

    const added = await gql('mutation { addToCart(item: "apple") }', cookie).expect(200);
    expect(added.body.data.addToCart).toEqual(['apple']);
    // Sealed cookies carry the session: the write came back as a new cookie.
    const current = sessionCookie(added) ?? cookie;
    const failed = await gql('mutation { addToCart(item: " ") }', current).expect(200);
    expect(failed.body.errors).toHaveLength(1);
    expect(sessionCookie(failed)).toBeUndefined();
    await http
      .get('/cart')
      .set('Cookie', current)
      .expect(200, { items: ['apple'] });
  });

  it('POST /auth/logout ends the session', async () => {
    const cookie = sessionCookie(await login('alice', 'wonderland'))!;
    await http.post('/auth/logout').set('Cookie', cookie).expect(200);
    await http.get('/whoami').set('Cookie', cookie).expect(401);
  });

  it('POST /cart/items and GET /cart keep a cart', async () => {
    await http.post('/cart/items').send({}).expect(400);
    const first = await http.post('/cart/items').send({ item: 'apple' }).expect(200);
    let cookie = sessionCookie(first)!;
    const second = await http.post('/cart/items').set('Cookie', cookie).send({ item: 'pear' });
    cookie = sessionCookie(second) ?? cookie;
    const cart = await http.get('/cart').set('Cookie', cookie).expect(200);
    expect(cart.body).toEqual({ items: ['apple', 'pear'] });
    const empty = await http.get('/cart').expect(200);
    expect(empty.body).toEqual({ items: [] });
  });

  it('GET /health reports the store', async () => {
    const res = await http.get('/health').expect(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.store.store).toBe('memory');
  });

  it('GET /health tells a visitor nothing about how many sessions exist', async () => {
    const before = await http.get('/health').expect(200);
    for (let i = 0; i < 3; i++) await http.post('/create_session/counted').expect(200);
    const after = await http.get('/health').expect(200);
    expect(after.body).toEqual(before.body);
    expect(Object.keys(after.body.store).sort()).toEqual(['ok', 'store']);
    expect(JSON.stringify(after.body)).not.toMatch(/\d/);
  });

  it('POST /create_session/<script>… answers the name as text/plain with nosniff: reflected markup never runs', async () => {
    const name = '<script>alert(1)</script>';
    const res = await http.post(`/create_session/${encodeURIComponent(name)}`).expect(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.text).toBe(`Created session for ${name}`);
    const deleted = await http.post('/delete_session').set('Cookie', sessionCookie(res)!);
    expect(deleted.headers['content-type']).toBe('text/plain; charset=utf-8');
    for (const path of ['/', '/whoami', '/session_test', '/health', '/no-such-route']) {
      const any = await http.get(path);
      expect(any.headers['x-content-type-options']).toBe('nosniff');
    }
  });

  it('DELETE /auth/sessions logs out the other sessions in both modes', async () => {
    const phone = sessionCookie(await login('alice', 'wonderland', 'phone'))!;
    await new Promise((resolve) => setTimeout(resolve, 5));
    const laptop = sessionCookie(await login('alice', 'wonderland', 'laptop'))!;
    await http.delete('/auth/sessions').set('Cookie', laptop).expect(200);
    await http.get('/whoami').set('Cookie', phone).expect(401);
    await http.get('/whoami').set('Cookie', laptop).expect(200);
  });

  if (mode === 'cookie') {
    it('GET /auth/sessions answers 501: sealed sessions cannot be listed', async () => {
      const cookie = sessionCookie(await login('alice', 'wonderland'))!;
      await http.get('/auth/sessions').set('Cookie', cookie).expect(501);
    });
  }
});

describe('Sample app without SESSION_SECRET (e2e)', () => {
  it('generates a random development secret per start, with a warning: a cookie of one start is worthless on another', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const first = await bootSampleApp({ SESSION_SECRET: '' });
    const second = await bootSampleApp({ SESSION_SECRET: '' });
    try {
      expect(warn.mock.calls.map(([message]) => String(message))).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/SESSION_SECRET is not set: using a random/),
        ]),
      );
      const created = await first.http.post('/create_session/dev').expect(200);
      const cookie = sessionCookie(created)!;
      await first.http.get('/whoami').set('Cookie', cookie).expect(200);
      await second.http.get('/whoami').set('Cookie', cookie).expect(401);
    } finally {
      warn.mockRestore();
      await first.app.close();
      await second.app.close();
    }
  });

  it('shares the generated secret with the workers of the same start (they inherit its environment), and never in production', () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      const env: NodeJS.ProcessEnv = { NODE_ENV: 'development' };
      const primary = loadConfig(env);
      expect(primary.secret).toHaveLength(43);
      expect(env[GENERATED_SECRET_ENV]).toBe(primary.secret);
      const worker = loadConfig({ ...env });
      expect(worker.secret).toBe(primary.secret);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(loadConfig({ NODE_ENV: 'development' }).secret).not.toBe(primary.secret);
      expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/SESSION_SECRET is required/);
    } finally {
      warn.mockRestore();
    }
  });
});

describe.each(['memory', 'cookie'] as const)(
  'Sample app over socket.io (e2e, SESSION_STORE=%s)',
  (mode) => {
    let app: INestApplication;
    let base: string;
    const sockets: IoSocket[] = [];

    beforeAll(async () => {
      ({ app } = await bootSampleApp({ SESSION_STORE: mode }));
      await app.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.disconnect();
      await app.close();
    });

    async function open(cookie?: string): Promise<IoSocket> {
      const socket = connectIo(base, {
        transports: ['websocket'],
        extraHeaders: cookie ? { Cookie: cookie } : {},
        reconnection: false,
        forceNew: true,
      });
      sockets.push(socket);
      await new Promise((resolve, reject) => {
        socket.once('connect', () => resolve(undefined));
        socket.once('connect_error', reject);
      });
      return socket;
    }

    function ask(socket: IoSocket): Promise<{ event: string; data: unknown }> {
      return new Promise((resolve) => {
        socket.once('whoami', (data: unknown) => resolve({ event: 'whoami', data }));
        socket.once('exception', (data: unknown) => resolve({ event: 'exception', data }));
        socket.emit('whoami');
      });
    }

    it('answers whoami with the handshake cookie’s session, refuses without one, and a logout disconnects', async () => {
      const http = request(app.getHttpServer());
      const login = await http
        .post('/auth/login')
        .send({ username: 'alice', password: 'wonderland' });
      const cookie = sessionCookie(login)!;

      const anonymous = await open();
      expect(await ask(anonymous)).toMatchObject({
        event: 'exception',
        data: { status: 'error', reason: 'missing' },
      });

      const socket = await open(cookie);
      expect(await ask(socket)).toMatchObject({
        event: 'whoami',
        data: { username: 'alice', role: 'user' },
      });

      const closed = new Promise((resolve) => socket.once('disconnect', resolve));
      await http.post('/auth/logout').set('Cookie', cookie).expect(200);
      await closed;
      // The old cookie is dead for a new socket too.
      expect(await ask(await open(cookie))).toMatchObject({ event: 'exception' });
    });
  },
);
