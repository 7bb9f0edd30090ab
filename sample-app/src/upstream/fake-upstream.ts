import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The demo credentials the fake upstream accepts (and the sample app logs in with by default). */
export const FAKE_UPSTREAM_DEMO_CREDENTIALS = {
  username: 'demo-service',
  password: 'demo-upstream-password',
} as const;

/** The name of the fake upstream's session cookie. */
export const FAKE_UPSTREAM_COOKIE = 'upstream_sid';

/** Options of {@link FakeUpstream}. */
export interface FakeUpstreamOptions {
  /** Port to listen on; `0` picks a free one. @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** How long a login stays valid, in milliseconds. @default 5000 */
  sessionTtlMs?: number;
  /** The accepted user name. @default FAKE_UPSTREAM_DEMO_CREDENTIALS.username */
  username?: string;
  /** The accepted password. @default FAKE_UPSTREAM_DEMO_CREDENTIALS.password */
  password?: string;
  /** Listen with `exclusive: true` (a cluster worker's own server, not shared with the primary). */
  exclusive?: boolean;
}

/** Counters the fake upstream serves at `GET /stats`. */
export interface FakeUpstreamStats {
  /** Successful logins so far. */
  logins: number;
  /** Refused logins (bad credentials, or logins disabled). */
  failedLogins: number;
  /** Logins received and not answered yet. */
  loginsInProgress: number;
  /** Requests answered with data. */
  dataRequests: number;
  /** Requests refused for want of a valid session (401 or redirect to /login). */
  rejectedRequests: number;
  /** Sessions not expired yet. */
  activeSessions: number;
}

function equalText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

async function readBody(req: IncomingMessage, limit = 16_384): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseCredentials(req: IncomingMessage, text: string): Record<string, unknown> {
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | string[]> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * A tiny stand-in for a legacy service behind a login, for the sample app and the tests. Plain
 * `node:http`, no framework:
 *
 * - `POST /login` with JSON or form `{ username, password }`: the demo credentials get a cookie
 *   session (`upstream_sid`) valid for `sessionTtlMs`; anything else gets 401 (503 while logins are
 *   disabled);
 * - `GET /data`: JSON when the session is valid, 401 otherwise;
 * - `GET /report`: JSON when the session is valid, otherwise a 302 to `/login?next=/report` (the
 *   "redirect to the login page" kind of expiry);
 * - `GET /stats`: the counters ({@link FakeUpstreamStats}), no session needed.
 *
 * Tests drive it through its methods: {@link expireAll}, {@link setAcceptLogins}, {@link setLoginDelay}.
 */
export class FakeUpstream {
  private readonly server: Server;
  private readonly sessions = new Map<string, number>();
  private readonly options: Required<Omit<FakeUpstreamOptions, 'exclusive'>> & {
    exclusive: boolean;
  };
  private counters = {
    logins: 0,
    failedLogins: 0,
    loginsInProgress: 0,
    dataRequests: 0,
    rejectedRequests: 0,
  };
  private acceptLogins = true;
  private loginDelayMs = 0;
  private address: string | null = null;

  constructor(options: FakeUpstreamOptions = {}) {
    this.options = {
      port: options.port ?? 0,
      host: options.host ?? '127.0.0.1',
      sessionTtlMs: options.sessionTtlMs ?? 5_000,
      username: options.username ?? FAKE_UPSTREAM_DEMO_CREDENTIALS.username,
      password: options.password ?? FAKE_UPSTREAM_DEMO_CREDENTIALS.password,
      exclusive: options.exclusive ?? false,
    };
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 5_000;
  }

  /** Starts listening; resolves the base URL, such as `http://127.0.0.1:43121`. */
  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(
        { port: this.options.port, host: this.options.host, exclusive: this.options.exclusive },
        () => {
          this.server.off('error', reject);
          resolve();
        },
      );
    });
    const { port } = this.server.address() as AddressInfo;
    this.address = `http://${this.options.host}:${port}`;
    return this.address;
  }

  /** The base URL once started. */
  get url(): string {
    if (!this.address) throw new Error('FakeUpstream is not started');
    return this.address;
  }

  /** The counters served at `GET /stats`. */
  stats(): FakeUpstreamStats {
    this.prune();
    return { ...this.counters, activeSessions: this.sessions.size };
  }

  /** Ends every session now, as if they had all expired. */
  expireAll(): void {
    this.sessions.clear();
  }

  /** `false`: every login is refused with 503 until set back to `true`. */
  setAcceptLogins(accept: boolean): void {
    this.acceptLogins = accept;
  }

  /** Makes each login take this long before answering (to hold a login in progress). */
  setLoginDelay(ms: number): void {
    this.loginDelayMs = ms;
  }

  /** Stops listening and drops open connections. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private valid(req: IncomingMessage): boolean {
    const sid = readCookie(req, FAKE_UPSTREAM_COOKIE);
    if (!sid) return false;
    const expiresAt = this.sessions.get(sid);
    if (expiresAt === undefined) return false;
    if (expiresAt <= Date.now()) {
      this.sessions.delete(sid);
      return false;
    }
    return true;
  }

  private prune(): void {
    const now = Date.now();
    for (const [sid, expiresAt] of this.sessions) if (expiresAt <= now) this.sessions.delete(sid);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { pathname } = new URL(req.url ?? '/', 'http://fake-upstream');
    const route = `${req.method} ${pathname}`;
    if (route === 'POST /login') return this.login(req, res);
    if (route === 'GET /stats') return sendJson(res, 200, this.stats());
    if (route === 'GET /data' || route === 'GET /report') {
      if (this.valid(req)) {
        this.counters.dataRequests++;
        return sendJson(res, 200, {
          items: ['alpha', 'beta', 'gamma'],
          servedAt: new Date().toISOString(),
        });
      }
      this.counters.rejectedRequests++;
      if (pathname === '/report') {
        res.writeHead(302, {
          location: `/login?next=${encodeURIComponent(pathname)}`,
          'content-length': 0,
        });
        res.end();
        return;
      }
      return sendJson(res, 401, { error: 'not logged in' });
    }
    sendJson(res, 404, { error: 'not found' });
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.loginsInProgress++;
    try {
      const body = parseCredentials(req, await readBody(req));
      if (this.loginDelayMs > 0) {
        // Ends early when the caller goes away, so that a closed server leaves no timer behind.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.loginDelayMs);
          res.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
        });
        if (res.destroyed) return;
      }
      if (!this.acceptLogins) {
        this.counters.failedLogins++;
        return sendJson(res, 503, { error: 'logins are disabled' });
      }
      const ok =
        typeof body.username === 'string' &&
        typeof body.password === 'string' &&
        equalText(body.username, this.options.username) &&
        equalText(body.password, this.options.password);
      if (!ok) {
        this.counters.failedLogins++;
        return sendJson(res, 401, { error: 'bad credentials' });
      }
      const sid = randomBytes(24).toString('base64url');
      this.prune();
      this.sessions.set(sid, Date.now() + this.options.sessionTtlMs);
      this.counters.logins++;
      sendJson(
        res,
        200,
        { ok: true },
        {
          'set-cookie': `${FAKE_UPSTREAM_COOKIE}=${sid}; Path=/; HttpOnly; SameSite=Lax`,
        },
      );
    } finally {
      this.counters.loginsInProgress--;
    }
  }
}

/**
 * Starts a fake upstream (for a cluster primary that shares one with its workers through
 * `UPSTREAM_URL`).
 * @example const fake = await startFakeUpstream({ port: 3001 }); process.env.UPSTREAM_URL = fake.url;
 */
export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const fake = new FakeUpstream(options);
  await fake.start();
  return fake;
}
