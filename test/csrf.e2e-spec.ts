import { describe, expect, it } from '@jest/globals';
import { Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import {
  AllowCrossSite,
  Session,
  SessionCsrfGuard,
  MemorySessionStore,
  type SessionModuleOptions,
} from '../src/index.js';
import { guardedAppPerTest, sessionCookie } from './support/app.js';
import { overriding } from './support/stores.js';

interface Data {
  n?: number;
  userId?: string;
}

@Controller('csrf')
class CsrfController {
  @Get('token')
  token(@Session() session: Session<Data>) {
    return { token: session.createCsrfToken() };
  }

  @Get('token-via-request')
  tokenViaRequest(@Req() req: { session: { load(): Promise<{ createCsrfToken(): string }> } }) {
    return req.session.load().then((session) => ({ token: session.createCsrfToken() }));
  }

  @Post('write')
  @HttpCode(200)
  write(@Session() session: Session<Data>) {
    session.data.n = (session.data.n ?? 0) + 1;
    return { n: session.data.n };
  }

  @Post('login')
  @HttpCode(200)
  async login(@Session() session: Session<Data>) {
    await session.regenerate();
    session.data.userId = 'ann';
    return { token: session.createCsrfToken() };
  }

  /** A change of user without regenerate(): the id rotates on save, and the token must follow. */
  @Post('switch-user')
  @HttpCode(200)
  switchUser(@Session() session: Session<Data>) {
    session.data.userId = 'bea';
    return { token: session.createCsrfToken() };
  }

  @Post('logout')
  @HttpCode(200)
  async logout(@Session() session: Session<Data>) {
    await session.destroy();
    return 'bye';
  }

  /** Logs out by removing the user key, keeping the session: a change of user too. */
  @Post('forget-user')
  @HttpCode(200)
  forgetUser(@Session() session: Session<Data>) {
    session.unset('userId');
    return { token: session.createCsrfToken() };
  }

  /** Takes its time and never touches the session. */
  @Post('slow')
  @HttpCode(200)
  async slow() {
    await sleep(400);
    return 'done';
  }

  @Post('ping')
  @HttpCode(200)
  ping() {
    return 'pong';
  }

  @Post('hook')
  @HttpCode(200)
  @AllowCrossSite()
  hook() {
    return 'accepted';
  }
}

describe('SessionCsrfGuard and session.createCsrfToken() (e2e)', () => {
  const bootApp = guardedAppPerTest(CsrfController, SessionCsrfGuard);
  const boot = async (options: Partial<SessionModuleOptions> = {}) =>
    request((await bootApp(options)).getHttpServer());

  /** A new visitor asks for a token: the session is created for it. */
  async function visit(http: ReturnType<typeof request>) {
    const res = await http.get('/csrf/token').expect(200);
    const cookie = sessionCookie(res);
    expect(cookie).toBeDefined();
    return { cookie: cookie!, token: res.body.token as string };
  }

  // Sealed mode with a revocation store, so that destroy() reaches copies of the cookie.
  const MODES: Array<[string, () => Partial<SessionModuleOptions>]> = [
    ['store', () => ({})],
    ['sealed', () => ({ mode: 'sealed', revocationStore: new MemorySessionStore() })],
  ];

  describe.each(MODES)('%s mode', (_name, options) => {
    it('accepts a state-changing request only with a token of its own session (CSRF-2)', async () => {
      const http = await boot(options());
      const { cookie, token } = await visit(http);
      expect(token).toMatch(/^[\w-]{22}\.[\w-]{43}$/);

      await http.post('/csrf/write').set('Cookie', cookie).expect(403);
      await http.post('/csrf/write').set('Cookie', cookie).set('X-CSRF-Token', 'x').expect(403);
      const ok = await http
        .post('/csrf/write')
        .set('Cookie', cookie)
        .set('X-CSRF-Token', token)
        .expect(200);
      expect(ok.body).toEqual({ n: 1 });

      // The token of another session, or a token without the session cookie, is refused.
      const other = await visit(http);
      const refused = await http
        .post('/csrf/write')
        .set('Cookie', cookie)
        .set('X-CSRF-Token', other.token)
        .expect(403);
      expect(refused.body).toMatchObject({
        statusCode: 403,
        message: 'Missing or invalid CSRF token',
      });
      await http.post('/csrf/write').set('X-CSRF-Token', token).expect(403);

      // Safe methods and exempt routes need no token.
      await http.get('/csrf/token').set('Cookie', cookie).expect(200);
      await http.post('/csrf/hook').expect(200);
    });

    it('voids every token issued before a regenerate (login) or a destroy (logout) (CSRF-2)', async () => {
      const http = await boot(options());
      const anonymous = await visit(http);
      const login = await http
        .post('/csrf/login')
        .set('Cookie', anonymous.cookie)
        .set('X-CSRF-Token', anonymous.token)
        .expect(200);
      const cookie = sessionCookie(login)!;
      const fresh = login.body.token as string;

      // The pre-login token, with the logged-in session: refused. The token from login: accepted.
      await http
        .post('/csrf/write')
        .set('Cookie', cookie)
        .set('X-CSRF-Token', anonymous.token)
        .expect(403);
      await http.post('/csrf/write').set('Cookie', cookie).set('X-CSRF-Token', fresh).expect(200);

      await http.post('/csrf/logout').set('Cookie', cookie).set('X-CSRF-Token', fresh).expect(200);
      // A copy of the logged-out cookie, with a token that was valid for it: refused.
      await http.post('/csrf/write').set('Cookie', cookie).set('X-CSRF-Token', fresh).expect(403);
    });

    it('binds the token to the id a change of user rotates to, set or removed (LC-2, CSRF-2)', async () => {
      const http = await boot(options());
      const { cookie, token } = await visit(http);
      const switched = await http
        .post('/csrf/switch-user')
        .set('Cookie', cookie)
        .set('X-CSRF-Token', token)
        .expect(200);
      const next = sessionCookie(switched)!;
      expect(next).not.toBe(cookie);
      await http
        .post('/csrf/write')
        .set('Cookie', next)
        .set('X-CSRF-Token', switched.body.token as string)
        .expect(200);
      await http.post('/csrf/write').set('Cookie', next).set('X-CSRF-Token', token).expect(403);

      // Removing the user key keeps the session but is a change of user: a new id again.
      const forgot = await http
        .post('/csrf/forget-user')
        .set('Cookie', next)
        .set('X-CSRF-Token', switched.body.token as string)
        .expect(200);
      const anonymous = sessionCookie(forgot)!;
      expect(anonymous).not.toBe(next);
      await http
        .post('/csrf/write')
        .set('Cookie', anonymous)
        .set('X-CSRF-Token', switched.body.token as string)
        .expect(403);
      await http
        .post('/csrf/write')
        .set('Cookie', anonymous)
        .set('X-CSRF-Token', forgot.body.token as string)
        .expect(200);
    });
  });

  it('reads the token from X-XSRF-TOKEN and from the _csrf field of a form (CSRF-2)', async () => {
    const http = await boot();
    const { cookie, token } = await visit(http);
    await http.post('/csrf/write').set('Cookie', cookie).set('X-XSRF-TOKEN', token).expect(200);
    const form = await http
      .post('/csrf/write')
      .set('Cookie', cookie)
      .type('form')
      .send({ _csrf: token, n: '7' })
      .expect(200);
    expect(form.body).toEqual({ n: 2 });
    await http
      .post('/csrf/write')
      .set('Cookie', cookie)
      .type('form')
      .send({ _csrf: 'no' })
      .expect(403);
    await http
      .post('/csrf/write')
      .set('Cookie', cookie)
      .send({ _csrf: ['x'] })
      .expect(403);
  });

  it('keeps every token of the session valid, and each one different (CSRF-2)', async () => {
    const http = await boot();
    const { cookie, token } = await visit(http);
    const again = (await http.get('/csrf/token-via-request').set('Cookie', cookie).expect(200)).body
      .token as string;
    expect(again).not.toBe(token);
    for (const t of [token, again]) {
      await http.post('/csrf/write').set('Cookie', cookie).set('X-CSRF-Token', t).expect(200);
    }
  });

  it('checks routes whose handler never takes the session', async () => {
    const http = await boot();
    const { cookie, token } = await visit(http);
    await http.post('/csrf/ping').set('Cookie', cookie).set('X-CSRF-Token', token).expect(200);
    await http.post('/csrf/ping').set('Cookie', cookie).set('X-CSRF-Token', 'bad').expect(403);
    // An empty header does not hide the token in the body.
    await http
      .post('/csrf/ping')
      .set('Cookie', cookie)
      .set('X-CSRF-Token', '')
      .send({ _csrf: token })
      .expect(200);
  });

  it('does not hold the session lock through a handler that never uses the session', async () => {
    // Under 'serialize' the guard locks to load; the slow handler (400 ms) must not keep the lock,
    // or the second request would wait past lockTimeout (150 ms) and get 409.
    const http = await boot({ concurrency: 'serialize', lockTimeout: '150ms' });
    const { cookie, token } = await visit(http);
    const post = () => http.post('/csrf/slow').set('Cookie', cookie).set('X-CSRF-Token', token);
    const statuses = (await Promise.all([post(), post()])).map((res) => res.status);
    expect(statuses).toEqual([200, 200]);
  });

  it('answers 503, not 403, when the store cannot load the session (FAIL-1)', async () => {
    const backing = new MemorySessionStore();
    let down = false;
    const store = overriding(backing, {
      load: (key) => (down ? Promise.reject(new Error('ECONNREFUSED')) : backing.load(key)),
    });
    const http = await boot({ store });
    const { cookie, token } = await visit(http);
    down = true;
    await http.post('/csrf/write').set('Cookie', cookie).set('X-CSRF-Token', token).expect(503);
    down = false;
    await http.post('/csrf/write').set('Cookie', cookie).set('X-CSRF-Token', token).expect(200);
    await backing.close();
  });
});
