import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type {
  SharedCredentialStore,
  SharedSessionClientOptions,
  SharedSessionLoginContext,
} from './index.js';
import {
  MemorySharedCredentialStore,
  SharedSessionClient,
  SharedSessionConfigError,
  SharedSessionUnavailableException,
  isSessionExpiredByDefault,
  loginBackoffDelay,
  resolveUpstreamUrl,
} from './index.js';
import { capturingLogger } from '../../test/support/logger.js';

const USER = 'svc-account';
const PASSWORD = 'hunter2-Sup3r-Secret-Pa55word';

type ExpiryKind = 401 | 419 | 'redirect' | 'redirect-absolute';

/** A real upstream on an ephemeral port: cookie or token sessions, counters, switches. */
interface TestUpstream {
  url: string;
  logins: number;
  loginAttempts: number;
  /** Every session id and token handed out: none may ever show up in a log line or an error. */
  issued: string[];
  /** Method and path of every request except logins. */
  requests: string[];
  acceptLogins: boolean;
  loginDelayMs: number;
  expiry: ExpiryKind;
  expireAll(): void;
  close(): Promise<void>;
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, value] = part.trim().split('=');
    if (key === name) return value;
  }
  return undefined;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function startUpstream(): Promise<TestUpstream> {
  const sessions = new Set<string>();
  const upstream: TestUpstream = {
    url: '',
    logins: 0,
    loginAttempts: 0,
    issued: [],
    requests: [],
    acceptLogins: true,
    loginDelayMs: 0,
    expiry: 401,
    expireAll: () => sessions.clear(),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const authenticated = (req: IncomingMessage): boolean => {
    const sid = readCookie(req, 'sid');
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    return (!!sid && sessions.has(sid)) || (!!bearer && sessions.has(bearer));
  };
  const reject = (res: ServerResponse, path: string): void => {
    if (upstream.expiry === 'redirect') {
      res.writeHead(302, { location: `/login?next=${encodeURIComponent(path)}` }).end();
    } else if (upstream.expiry === 'redirect-absolute') {
      res.writeHead(303, { location: `${upstream.url}/login/` }).end();
    } else {
      json(res, upstream.expiry, { error: 'session expired' });
    }
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'POST' && (path === '/login' || path === '/token-login')) {
        upstream.loginAttempts++;
        const body = await readJson(req);
        if (upstream.loginDelayMs) await new Promise((r) => setTimeout(r, upstream.loginDelayMs));
        if (!upstream.acceptLogins || body.username !== USER || body.password !== PASSWORD) {
          return json(res, 401, { error: 'bad credentials' });
        }
        const secret = randomBytes(18).toString('base64url');
        sessions.add(secret);
        upstream.issued.push(secret);
        upstream.logins++;
        if (path === '/token-login') return json(res, 200, { token: secret });
        return json(res, 200, { ok: true }, { 'set-cookie': `sid=${secret}; Path=/; HttpOnly` });
      }
      upstream.requests.push(`${req.method} ${path}`);
      if (path === '/drop') return req.socket.destroy();
      if (path === '/slow') {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1_500);
          res.on('close', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        if (res.destroyed) return;
        return json(res, 200, { slow: true });
      }
      if (!authenticated(req)) return reject(res, path);
      if (path === '/elsewhere') return res.writeHead(302, { location: '/somewhere-else' }).end();
      if (path === '/orders' && req.method === 'POST') {
        return json(res, 201, { created: await readJson(req) });
      }
      if (path === '/echo-headers') return json(res, 200, { headers: req.headers });
      return json(res, 200, { ok: true, path });
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

/** `store` with its `set` replaced: a late, failing or legacy store over a working one. */
function withSet(
  store: SharedCredentialStore,
  set: SharedCredentialStore['set'],
): SharedCredentialStore {
  return {
    get: (name) => store.get(name),
    acquireLock: (name, owner, ttl) => store.acquireLock(name, owner, ttl),
    releaseLock: (name, owner) => store.releaseLock(name, owner),
    set,
  };
}

const cookieLogin = async (ctx: SharedSessionLoginContext): Promise<void> => {
  const res = await ctx.post('/login', { username: USER, password: PASSWORD });
  await res.body?.cancel();
  if (!res.ok) throw new Error(`login refused (${res.status}) for ${USER}:${PASSWORD}`);
};

async function expectUnavailable(
  promise: Promise<unknown>,
  reason: string,
): Promise<SharedSessionUnavailableException> {
  const error = await promise.then(
    () => {
      throw new Error('expected a SharedSessionUnavailableException');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SharedSessionUnavailableException);
  const unavailable = error as SharedSessionUnavailableException;
  expect(unavailable.reason).toBe(reason);
  expect(unavailable.getStatus()).toBe(503);
  expect(unavailable.message).toContain('Upstream "legacy"');
  return unavailable;
}

describe('SharedSessionClient', () => {
  let upstream: TestUpstream;
  let logger: ReturnType<typeof capturingLogger>;
  const clients: SharedSessionClient[] = [];

  const client = (overrides: Partial<SharedSessionClientOptions> = {}): SharedSessionClient => {
    const created = new SharedSessionClient({
      name: 'legacy',
      baseUrl: upstream.url,
      login: cookieLogin,
      logger,
      loginTimeout: 2_000,
      loginBackoff: { initial: 200, max: 1_000 },
      ...overrides,
    });
    clients.push(created);
    return created;
  };

  beforeEach(async () => {
    upstream = await startUpstream();
    logger = capturingLogger();
  });

  afterEach(async () => {
    for (const created of clients.splice(0)) created.close();
    await upstream.close();
  });

  describe('logging in and reusing one credential', () => {
    it('logs in on the first request, then sends the same cookie with every request', async () => {
      const legacy = client();
      for (let i = 0; i < 5; i++) {
        const res = await legacy.get('/data', { query: { i } });
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ ok: true, path: '/data' });
      }
      expect(upstream.logins).toBe(1);
      expect(legacy.generation).toBe(1);
      expect(upstream.requests).toHaveLength(5);
    });

    it('sends a token returned by login as a bearer header and shares it through the store', async () => {
      const store = new MemorySharedCredentialStore();
      const tokenLogin = async (ctx: SharedSessionLoginContext) => {
        const res = await ctx.post('/token-login', { username: USER, password: PASSWORD });
        if (!res.ok) throw new Error('refused');
        return { token: ((await res.json()) as { token: string }).token };
      };
      const a = client({ store, login: tokenLogin });
      const b = client({ store, login: tokenLogin });
      expect((await a.get('/data')).status).toBe(200);
      const echoed = (await (await b.get('/echo-headers')).json()) as {
        headers: Record<string, string>;
      };
      expect(echoed.headers.authorization).toBe(`Bearer ${upstream.issued[0]}`);
      expect(upstream.logins).toBe(1);
    });

    it('fires exactly one login for 100 concurrent requests right after the session expired', async () => {
      const legacy = client();
      expect((await legacy.get('/data')).status).toBe(200);
      upstream.expireAll();
      upstream.loginDelayMs = 50;

      const responses = await Promise.all(Array.from({ length: 100 }, () => legacy.get('/data')));

      expect(responses.map((r) => r.status)).toEqual(Array(100).fill(200));
      expect(upstream.logins).toBe(2);
      expect(upstream.loginAttempts).toBe(2);
      expect(legacy.generation).toBe(2);
    });

    it('retries a request that failed on an older generation with the newer one, without logging in', async () => {
      // Two clients on one store stand for two processes.
      const store = new MemorySharedCredentialStore();
      const a = client({ store });
      const b = client({ store });
      expect((await a.get('/data')).status).toBe(200);
      expect((await b.get('/data')).status).toBe(200);
      expect(upstream.logins).toBe(1);
      expect(b.generation).toBe(1);

      upstream.expireAll();
      expect((await a.get('/data')).status).toBe(200); // fails on G1, store holds G1: logs in
      expect(upstream.logins).toBe(2);

      // b still holds G1: its 401 finds G2 in the store, so it adopts G2 and retries.
      expect((await b.get('/data')).status).toBe(200);
      expect(upstream.logins).toBe(2);
      expect(b.generation).toBe(2);
      expect(b.loginCount).toBe(0);
      expect(await store.get('legacy')).toMatchObject({ generation: 2, failures: 0 });
    });

    it('makes concurrent clients on one store wait for the one login in progress and use it', async () => {
      const store = new MemorySharedCredentialStore();
      const group = [client({ store }), client({ store }), client({ store }), client({ store })];
      await group[0].get('/data');
      upstream.expireAll();
      upstream.loginDelayMs = 150;

      const responses = await Promise.all(
        group.flatMap((c) => Array.from({ length: 25 }, () => c.get('/data'))),
      );

      expect(responses.every((r) => r.status === 200)).toBe(true);
      expect(upstream.loginAttempts).toBe(2);
      expect(group.map((c) => c.generation)).toEqual([2, 2, 2, 2]);
    });
  });

  describe('detecting an expired session', () => {
    it.each([
      [419 as ExpiryKind, 'status 419'],
      ['redirect' as ExpiryKind, 'a relative redirect to the login page'],
      ['redirect-absolute' as ExpiryKind, 'an absolute 303 to the login page with a slash'],
    ])('treats %s (%s) as expired: one login, then the data', async (kind) => {
      const legacy = client();
      await legacy.get('/data');
      upstream.expiry = kind;
      upstream.expireAll();

      const res = await legacy.get('/data');

      expect(res.status).toBe(200);
      expect(upstream.logins).toBe(2);
    });

    it('returns a redirect elsewhere as it is, without following it or logging in', async () => {
      const legacy = client();
      const res = await legacy.get('/elsewhere');
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/somewhere-else');
      expect(upstream.requests).toEqual(['GET /elsewhere']);
      expect(upstream.logins).toBe(1);
    });

    it('does not treat a redirect to the login page as expiry when loginUrl is false', async () => {
      const legacy = client({ loginUrl: false });
      await legacy.get('/data');
      upstream.expiry = 'redirect';
      upstream.expireAll();
      const res = await legacy.get('/data');
      expect(res.status).toBe(302);
      expect(upstream.logins).toBe(1);
    });

    it('uses a custom isExpired, which sees the default answer and the request', async () => {
      const seen: string[] = [];
      const legacy = client({
        isExpired: async (res, info) => {
          seen.push(`${info.method} ${info.url.pathname} ${info.defaultExpired}`);
          const body = (await res.clone().json()) as { error?: string };
          return body.error === 'session expired';
        },
      });
      await legacy.get('/data');
      upstream.expireAll();
      const res = await legacy.get('/data');
      expect(await res.json()).toEqual({ ok: true, path: '/data' });
      expect(seen).toEqual(['GET /data false', 'GET /data true', 'GET /data false']);
      expect(upstream.logins).toBe(2);
    });

    it('applies the default rule by status, origin and path of the Location', () => {
      const request = new URL('https://up.example/app/data');
      const login = new URL('https://up.example/app/login');
      const res = (status: number, location?: string) => ({
        status,
        headers: new Headers(location ? { location } : {}),
      });
      expect(isSessionExpiredByDefault(res(401), request, login)).toBe(true);
      expect(isSessionExpiredByDefault(res(419), request, login)).toBe(true);
      expect(isSessionExpiredByDefault(res(403), request, login)).toBe(false);
      expect(isSessionExpiredByDefault(res(302, 'login?next=x'), request, login)).toBe(true);
      expect(isSessionExpiredByDefault(res(307, '/app/login/'), request, login)).toBe(true);
      expect(
        isSessionExpiredByDefault(res(302, 'https://evil.example/app/login'), request, login),
      ).toBe(false);
      expect(isSessionExpiredByDefault(res(302, '/app/logout'), request, login)).toBe(false);
      expect(isSessionExpiredByDefault(res(302), request, login)).toBe(false);
      expect(isSessionExpiredByDefault(res(302, '/app/login'), request, null)).toBe(false);
    });

    it('resolves paths under the base URL path', () => {
      expect(resolveUpstreamUrl(new URL('https://h/app'), '/data').href).toBe('https://h/app/data');
      expect(resolveUpstreamUrl(new URL('https://h/app/'), 'data?x=1').href).toBe(
        'https://h/app/data?x=1',
      );
      expect(resolveUpstreamUrl(new URL('https://h/app/'), 'https://h/x').href).toBe('https://h/x');
    });
  });

  describe('retrying only what is safe to repeat', () => {
    it('does not send an expired POST again, but renews the session so the next call works', async () => {
      const legacy = client();
      await legacy.get('/data');
      upstream.expireAll();

      await expectUnavailable(legacy.post('/orders', { sku: 'A1' }), 'not-retried');
      expect(upstream.requests.filter((r) => r === 'POST /orders')).toHaveLength(1);
      expect(upstream.logins).toBe(2);

      const res = await legacy.post('/orders', { sku: 'A1' });
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({ created: { sku: 'A1' } });
      expect(upstream.requests.filter((r) => r === 'POST /orders')).toHaveLength(2);
    });

    it('sends an expired POST again after the login when the caller opts in', async () => {
      const legacy = client();
      await legacy.get('/data');
      upstream.expireAll();
      const res = await legacy.post('/orders', { sku: 'B2' }, { retryNonIdempotent: true });
      expect(res.status).toBe(201);
      expect(upstream.requests.filter((r) => r === 'POST /orders')).toHaveLength(2);
    });

    it('retries an idempotent request after network errors a bounded number of times', async () => {
      const legacy = client({ retries: 2 });
      const error = await expectUnavailable(legacy.get('/drop'), 'request-failed');
      expect(error.message).toMatch(/GET failed on 3 attempts/);
      expect(upstream.requests.filter((r) => r === 'GET /drop')).toHaveLength(3);
    });

    it('never re-sends a POST after a network error', async () => {
      const legacy = client({ retries: 2 });
      await expectUnavailable(legacy.post('/drop', { a: 1 }), 'request-failed');
      expect(upstream.requests.filter((r) => r === 'POST /drop')).toHaveLength(1);
    });

    it('bounds each attempt by the timeout', async () => {
      const legacy = client({ retries: 1, timeout: 150 });
      const started = Date.now();
      const error = await expectUnavailable(legacy.get('/slow'), 'request-failed');
      expect(error.message).toContain('timed out after 150 ms');
      expect(Date.now() - started).toBeLessThan(1_200);
      expect(upstream.requests.filter((r) => r === 'GET /slow')).toHaveLength(2);
    });

    it('gives up with 503 when the upstream keeps rejecting fresh credentials', async () => {
      const legacy = client({ retries: 2, isExpired: (res) => res.status === 200 });
      await expectUnavailable(legacy.get('/data'), 'session-rejected');
      expect(upstream.requests).toHaveLength(3);
      expect(upstream.logins).toBe(3);
    });
  });

  describe('failed logins', () => {
    it('answers 503, backs off exponentially without calling the upstream, then recovers', async () => {
      const legacy = client({ loginBackoff: { initial: 200, max: 1_000, factor: 2 } });
      upstream.acceptLogins = false;

      const first = await expectUnavailable(legacy.get('/data'), 'login-failed');
      expect(first.retryAfterMs).toBe(200);
      expect(upstream.loginAttempts).toBe(1);

      // Within the backoff nobody logs in: the caller gets 503 at once.
      const during = await expectUnavailable(legacy.get('/data'), 'login-backoff');
      expect(during.retryAfterMs).toBeGreaterThan(0);
      expect(during.retryAfterMs).toBeLessThanOrEqual(200);
      expect(upstream.loginAttempts).toBe(1);

      await new Promise((r) => setTimeout(r, 220));
      const second = await expectUnavailable(legacy.get('/data'), 'login-failed');
      expect(second.retryAfterMs).toBe(400);
      expect(upstream.loginAttempts).toBe(2);

      upstream.acceptLogins = true;
      await new Promise((r) => setTimeout(r, 420));
      const res = await legacy.get('/data');
      expect(res.status).toBe(200);
      expect(upstream.loginAttempts).toBe(3);
      expect(await legacy.store.get('legacy')).toMatchObject({ generation: 1, failures: 0 });
    });

    it('shares the backoff with every process on the store: none of them logs in meanwhile', async () => {
      const store = new MemorySharedCredentialStore();
      const first = client({ store, loginBackoff: { initial: 1_000, max: 1_000 } });
      const second = client({ store, loginBackoff: { initial: 1_000, max: 1_000 } });
      upstream.acceptLogins = false;
      await expectUnavailable(first.get('/data'), 'login-failed');
      upstream.acceptLogins = true;
      const refused = await expectUnavailable(second.get('/data'), 'login-backoff');
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(upstream.loginAttempts).toBe(1);
    });

    it('computes the backoff as initial × factor^(failures − 1), capped', () => {
      const backoff = { initial: 1_000, max: 30_000, factor: 2 };
      expect([1, 2, 3, 4, 5, 6, 7].map((n) => loginBackoffDelay(n, backoff))).toEqual([
        1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
      ]);
      expect(loginBackoffDelay(1_000, backoff)).toBe(30_000);
    });

    it('fails the login when it yields neither cookies nor a token', async () => {
      const legacy = client({ login: async () => undefined });
      await expectUnavailable(legacy.get('/data'), 'login-failed');
      expect(logger.lines.join('\n')).toContain('neither cookies nor a token');
    });

    it('bounds a login that hangs by loginTimeout', async () => {
      const legacy = client({ login: () => new Promise(() => undefined), loginTimeout: 200 });
      const started = Date.now();
      await expectUnavailable(legacy.get('/data'), 'login-failed');
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(logger.lines.join('\n')).toContain('timed out after 200 ms');
    });
  });

  describe('the login lock', () => {
    it('waits out a lock left by a crashed holder, then logs in once', async () => {
      const store = new MemorySharedCredentialStore();
      const legacy = client({ store, loginTimeout: 3_000 });
      await legacy.get('/data');
      upstream.expireAll();
      expect(await store.acquireLock('legacy', 'crashed-process', 600)).toBe(true);

      const started = Date.now();
      const responses = await Promise.all(Array.from({ length: 20 }, () => legacy.get('/data')));
      const elapsed = Date.now() - started;

      expect(responses.every((r) => r.status === 200)).toBe(true);
      expect(upstream.logins).toBe(2);
      expect(elapsed).toBeGreaterThanOrEqual(550);
      expect(elapsed).toBeLessThan(2_000);
    });

    it('answers 503 when another holder keeps the lock past lockTtl', async () => {
      const store = new MemorySharedCredentialStore();
      await store.acquireLock('legacy', 'slow-process', 10_000);
      const legacy = client({ store, loginTimeout: 300, lockTtl: 500 });
      const started = Date.now();
      await expectUnavailable(legacy.get('/data'), 'login-timeout');
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(upstream.loginAttempts).toBe(0);
    });

    it('never lets a holder that outlived its lock overwrite the login of the next holder', async () => {
      const shared = new MemorySharedCredentialStore();
      // The first process's store answers its final write late: its lock has expired by then.
      // Margins of 300 ms on both sides: the lock (500 ms) has expired when the next one asks
      // (800 ms), and the next login is written long before the late write (1 000 ms).
      const late = withSet(shared, async (name, record, owner) => {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        return shared.set(name, record, owner);
      });
      const slow = client({ store: late, loginTimeout: 300, lockTtl: 500 });
      const next = client({ store: shared, loginTimeout: 300, lockTtl: 500 });

      const first = slow.get('/data');
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect((await next.get('/data')).status).toBe(200);
      const taken = await shared.get('legacy');
      expect(taken?.generation).toBe(1);

      // The late holder's write is refused; it adopts the stored login instead of replacing it.
      expect((await first).status).toBe(200);
      expect(await shared.get('legacy')).toEqual(taken);
      expect(slow.generation).toBe(1);
      expect(upstream.logins).toBe(2);
      expect(logger.lines.some((line) => /lock of upstream "legacy" expired/.test(line))).toBe(
        true,
      );
    });

    it('takes a store whose set() says nothing as having written, and says so once', async () => {
      const shared = new MemorySharedCredentialStore();
      const legacyStore = withSet(shared, async (name, record, owner) => {
        await shared.set(name, record, owner);
        return undefined as unknown as boolean;
      });
      const legacy = client({ store: legacyStore });
      expect((await legacy.get('/data')).status).toBe(200);
      upstream.expireAll();
      expect((await legacy.get('/data')).status).toBe(200);
      expect(upstream.logins).toBe(2);
      expect(logger.lines.filter((line) => line.includes('without saying whether'))).toHaveLength(
        1,
      );
    });

    it('releases its lock after a login, success or failure', async () => {
      const store = new MemorySharedCredentialStore();
      const legacy = client({ store });
      await legacy.get('/data');
      expect(await store.acquireLock('legacy', 'probe', 1_000)).toBe(true);
      await store.releaseLock('legacy', 'probe');
      upstream.acceptLogins = false;
      upstream.expireAll();
      await expectUnavailable(legacy.get('/data'), 'login-failed');
      expect(await store.acquireLock('legacy', 'probe', 1_000)).toBe(true);
    });

    it('answers 503 within storeTimeout when the store does not answer', async () => {
      const hanging: SharedCredentialStore = {
        get: () => new Promise(() => undefined),
        set: async () => true,
        acquireLock: async () => true,
        releaseLock: async () => true,
      };
      const legacy = client({ store: hanging, storeTimeout: 150 });
      const started = Date.now();
      await expectUnavailable(legacy.get('/data'), 'store-unavailable');
      expect(Date.now() - started).toBeLessThan(1_000);
    });
  });

  describe('credentials stay secret', () => {
    it('keeps passwords, cookies and tokens out of log lines and errors', async () => {
      const errors: unknown[] = [];
      const capture = (p: Promise<unknown>) => p.catch((e: unknown) => errors.push(e));
      const legacy = client({ retries: 1 });

      await legacy.get('/data'); // logs a success line
      upstream.expireAll();
      upstream.acceptLogins = false;
      await capture(legacy.get('/data')); // login fails with the password in its message
      await capture(legacy.get('/data')); // backoff
      upstream.acceptLogins = true;
      await new Promise((r) => setTimeout(r, 220));
      await legacy.get('/data');
      upstream.expireAll();
      await capture(legacy.post('/orders', { sku: 'x' })); // not retried
      const rejecting = client({ name: 'legacy', isExpired: () => true, retries: 1 });
      await capture(rejecting.get('/data'));
      const throwing = client({
        login: async () => {
          throw new Error(`cannot log in as ${USER} with ${PASSWORD}`);
        },
      });
      await capture(throwing.get('/data'));
      // A store whose error quotes the record it was given, credential and all.
      const shared = new MemorySharedCredentialStore();
      const leaky = client({
        name: 'leaky',
        store: withSet(shared, async (_name, record) => {
          throw Object.assign(new Error(`cannot store ${JSON.stringify(record)}`), {
            code: 'EQUOTA',
          });
        }),
      });
      await capture(leaky.get('/data'));

      expect(errors).toHaveLength(6);
      expect(upstream.issued.length).toBeGreaterThanOrEqual(2);
      const secrets = [PASSWORD, ...upstream.issued];
      const texts = [
        ...logger.lines,
        ...errors.flatMap((e) => {
          const ex = e as SharedSessionUnavailableException;
          return [ex.message, String(ex.stack), JSON.stringify(ex.getResponse()), String(ex.cause)];
        }),
      ];
      expect(logger.lines.some((line) => line.includes('Logged in to upstream "legacy"'))).toBe(
        true,
      );
      expect(
        logger.lines.some((line) => line.includes('(login threw Error; last login response: 401)')),
      ).toBe(true);
      expect(
        logger.lines.some((line) =>
          line.includes('failed to save the credential for upstream "leaky": Error (EQUOTA)'),
        ),
      ).toBe(true);
      for (const text of texts) {
        for (const secret of secrets) expect(text).not.toContain(secret);
      }
    });

    it('refuses a base URL with credentials without echoing them', () => {
      expect(
        () =>
          new SharedSessionClient({
            name: 'legacy',
            baseUrl: `http://u:${PASSWORD}@h/`,
            login: cookieLogin,
          }),
      ).toThrow(SharedSessionConfigError);
      try {
        new SharedSessionClient({
          name: 'legacy',
          baseUrl: `http://u:${PASSWORD}@h/`,
          login: cookieLogin,
        });
      } catch (error) {
        expect((error as Error).message).not.toContain(PASSWORD);
      }
    });

    it('never sends the credential to another origin', async () => {
      const legacy = client();
      await expect(legacy.get('http://127.0.0.2:1/steal')).rejects.toThrow(
        SharedSessionConfigError,
      );
      expect(upstream.loginAttempts).toBe(0);
    });
  });

  describe('configuration and shutdown', () => {
    it.each([
      [{ lockTtl: 1_000, loginTimeout: 1_000 }, /lockTtl must be longer than loginTimeout/],
      [{ baseUrl: 'ftp://h/' }, /baseUrl must be an absolute http/],
      [{ retries: -1 }, /retries/],
      [{ timeout: 'soon' }, /timeout/],
      [{ name: 'has space' }, /name must be/],
      [{ login: 'nope' as never }, /login must be/],
    ])('rejects %j', (overrides, message) => {
      expect(
        () =>
          new SharedSessionClient({
            name: 'legacy',
            baseUrl: 'http://h/',
            login: cookieLogin,
            ...overrides,
          }),
      ).toThrow(message);
    });

    it('fails calls with 503 once closed, including waits in progress', async () => {
      const store = new MemorySharedCredentialStore();
      await store.acquireLock('legacy', 'someone-else', 10_000);
      const legacy = client({ store, loginTimeout: 5_000 });
      const waiting = legacy.get('/data');
      await new Promise((r) => setTimeout(r, 50));
      legacy.close();
      await expectUnavailable(waiting, 'closed');
      await expectUnavailable(legacy.get('/data'), 'closed');
    });

    it('throws invalid caller headers at the caller instead of retrying them', async () => {
      const legacy = client();
      const error = await legacy
        .get('/data', { headers: { 'x-secret': `${PASSWORD}\ninjected` } })
        .catch((e: unknown) => e as Error);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toBe(
        'SharedSessionClient: invalid request header name or value',
      );
      expect(upstream.loginAttempts).toBe(0);
    });

    it('does not count a login cut short by shutdown as a failed login', async () => {
      const store = new MemorySharedCredentialStore();
      upstream.loginDelayMs = 500;
      const legacy = client({ store });
      const pending = legacy.get('/data');
      await new Promise((r) => setTimeout(r, 100));
      legacy.close();
      await expectUnavailable(pending, 'closed');
      expect(await store.get('legacy')).toBeNull();
      expect(await store.acquireLock('legacy', 'next', 1_000)).toBe(true);
    });

    it('rejects with the caller signal reason when the caller aborts', async () => {
      const legacy = client();
      await legacy.get('/data');
      const controller = new AbortController();
      const pending = legacy.get('/slow', { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('caller gave up')), 50);
      await expect(pending).rejects.toThrow('caller gave up');
    });
  });
});
