import type { SessionEvent } from './session-event.interface.js';
import type { SessionStore } from './session-store.interface.js';

/** A duration in milliseconds, or a string such as `'500ms'`, `'30s'`, `'30m'`, `'12h'`, `'14d'`. */
export type SessionDuration = number | string;

/** Attributes of the session cookie. */
export interface SessionCookieOptions {
  /**
   * Cookie name. Must be an RFC 6265 token. A `__Host-` name requires `secure: true`, `path: '/'`
   * and no `domain`; a `__Secure-` name requires `secure: true`.
   * @default '__Host-sid' when the cookie is Secure (`secure: true`, the default outside development)
   * and host-only on path '/'; '__Secure-sid' when Secure with a domain or another path; otherwise 'sid'
   */
  name?: string;
  /** @default true */
  httpOnly?: boolean;
  /**
   * `true` always sets `Secure` (and refuses to send the cookie over plain HTTP, with a warning);
   * `'auto'` sets it when the request arrived over HTTPS (see `trustProxy`); `false` never does.
   * @default true, except in local development and tests (NODE_ENV unset, 'development' or 'test'): false
   */
  secure?: boolean | 'auto';
  /** `'none'` requires `secure: true`. @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none';
  /** @default '/' */
  path?: string;
  /** Leave unset for a host-only cookie (recommended). @default undefined */
  domain?: string;
  /**
   * Lifetime of the cookie in the browser. Unset means a browser-session cookie. When set, the
   * cookie's `Max-Age` never goes past the session's absolute expiry or 400 days, and it slides
   * with activity.
   * @default undefined
   */
  maxAge?: SessionDuration;
  /** Adds `Partitioned` (CHIPS). Requires `secure: true`. @default false */
  partitioned?: boolean;
  /** Adds `Priority`. @default undefined */
  priority?: 'low' | 'medium' | 'high';
}

/**
 * What happens when requests of one session run at the same time.
 * - `'merge'`: every request writes only the keys it changed, so changes to different keys all
 *   survive; two requests changing the same key: the last one wins.
 * - `'serialize'`: requests of one session take turns (a lock held in the store, so across
 *   instances); same-key read-modify-write is safe. Costs a lock round trip per request.
 * - `'optimistic'`: like merge, but a request whose changed keys were changed by someone else since
 *   it loaded them fails with 409 instead of overwriting.
 */
export type SessionConcurrency = 'merge' | 'serialize' | 'optimistic';

/** Options of {@link SessionModule.forRoot}. */
export interface SessionModuleOptions {
  /**
   * Secret(s) for signing (or, in `'sealed'` mode, sealing) the session cookie: strings of at
   * least 32 characters, or Buffers of at least 32 random bytes. Keys are derived from them once, at
   * boot. With an array the first signs and all verify, so a new secret goes first and the old one
   * stays until its cookies are gone. Weak or placeholder secrets are refused outside development
   * (NODE_ENV set, and not 'development' or 'test'). `undefined` is accepted by the type so that `process.env.SESSION_SECRET` can be
   * passed as it is: a missing secret fails at boot with a message saying what to set.
   * @example process.env.SESSION_SECRET
   */
  secret: string | Buffer | readonly (string | Buffer)[] | undefined;
  /**
   * Where sessions live.
   * - `'store'`: the cookie carries a signed random token; the data lives in `store`.
   * - `'sealed'`: no server state: the whole session travels in the cookie, encrypted and
   *   authenticated (AES-256-GCM), at most 4096 bytes. Logout and "log out everywhere" only reach
   *   copies of the cookie when `revocationStore` is set; see the README.
   * @default 'store'
   */
  mode?: 'store' | 'sealed';
  /**
   * `'sealed'` mode only: how many cookies a sealed session may span. With more than 1, a session
   * that does not fit in one 4096-byte cookie is split over `name`, `name.1`, … and joined on read;
   * past the limit a write fails with `SessionCookieTooLargeError`. Browsers cap a site's cookies
   * (and servers their request headers, often at 8–16 KB): keep this small.
   * @default 1
   */
  cookieChunks?: number;
  /**
   * `'sealed'` mode only: how many sealed cookie values are remembered once opened (or sealed and sent), with
   * the session they hold, so that a browser sending the same cookie again costs a SHA-256 instead
   * of a decryption. A value is known by its SHA-256 (the values themselves are not kept); a cookie
   * that failed to open is never remembered. Expiry, the seal's date and the revocation list are
   * checked on every request all the same. Past the limit the oldest is forgotten; each entry holds
   * one session's data. 0 remembers none.
   * @default 1000
   */
  sealCache?: number;
  /**
   * Where sessions live in `'store'` mode.
   * @default new MemorySessionStore() (one process only; warns in production)
   */
  store?: SessionStore;
  /**
   * `'sealed'` mode only: a store (any SessionStore, e.g. Redis) for a deny list of ended sessions
   * and per-user "not before" times, so that a copied cookie stops working at logout and at
   * `invalidateAllForUser`. Checked on every request that uses the session; when it is down,
   * those requests fail closed (503).
   * @default undefined (no revocation: a copied cookie works until it expires)
   */
  revocationStore?: SessionStore;
  /** Cookie attributes. */
  cookie?: SessionCookieOptions;
  /** A session unused for this long ends. @default '30m' */
  idleTimeout?: SessionDuration;
  /**
   * The idle timeout of a session without a user (no `userKey` value): a cart, a first visit. It
   * is shorter than `idleTimeout` so that a flood of first visits costs little and expires fast
   * (stores keep a session only until it expires); a session that logs in gets `idleTimeout`.
   * Never longer than `idleTimeout`.
   * @default '10m' (or `idleTimeout` when that is shorter)
   */
  anonymousIdleTimeout?: SessionDuration;
  /** A session ends this long after it was created, however active. @default '12h' */
  absoluteTimeout?: SessionDuration;
  /**
   * Activity is recorded at most once per this interval (a timestamp-only write). Must be shorter
   * than `idleTimeout`.
   * @default '1m' (or half of `idleTimeout` when that is shorter)
   */
  touchAfter?: SessionDuration;
  /** Save (and send a cookie for) a new session even when nothing was written to it. @default false */
  saveUninitialized?: boolean;
  /** Save a handler's session changes even when it throws. @default false */
  commitOnError?: boolean;
  /**
   * Data key that names the session's user; it feeds the per-user index (list sessions, log out
   * everywhere). When it changes from one user to another, the session gets a new id and keeps only
   * what this request wrote. `'key.field'` reads a field of an object: `'passport.user'` for
   * Passport, whose serializer should then give the user's id (`done(null, user.id)`).
   * @default 'userId'
   * @example userKey: 'passport.user'
   */
  userKey?: string;
  /**
   * Concurrency mode for requests of one session. `@SessionLock()` serializes single routes in
   * any mode.
   * @default 'merge'
   */
  concurrency?: SessionConcurrency;
  /**
   * Longest wait for a session lock before answering 409 "session busy" (503 when this process's
   * acquire or release of that session's lock failed within `lockTtl` and a lease: the lock in the
   * way may be left over from the outage).
   * @default '5s'
   */
  lockTimeout?: SessionDuration;
  /** A lock expires after this long even if its holder never releases it (crash). @default '30s' */
  lockTtl?: SessionDuration;
  /** Largest serialized session in bytes; a bigger write fails with `SessionTooLargeError`. @default 65536 */
  maxSize?: number;
  /**
   * `'store'` mode: the most sessions one user (the `userKey` value) may hold at once (REV-3). When
   * a session becomes a user's (a login) and the user would hold more, `maxSessionsPolicy` decides.
   * Logins of one user take turns under a store lock, so the store needs `acquireLock` (every
   * built-in store has it).
   * @default undefined (no limit)
   */
  maxSessionsPerUser?: number;
  /**
   * - `'evict-oldest'`: the login goes through and the user's other sessions with the oldest
   *   recorded activity end, so that `maxSessionsPerUser` remain; their next request is anonymous.
   * - `'reject-new'`: the login is refused with 403 (`SessionLimitException`) and nothing is
   *   written; the user logs out elsewhere first.
   * @default 'evict-oldest'
   */
  maxSessionsPolicy?: 'evict-oldest' | 'reject-new';
  /**
   * How to tell that a request came over HTTPS (for `secure: 'auto'` and `secure: true`).
   * `true` trusts `X-Forwarded-Proto`; `false` looks only at the TLS socket; unset follows Express's
   * `trust proxy` setting (`req.secure`).
   * @default undefined
   */
  trustProxy?: boolean;
  /**
   * Send `Clear-Site-Data` with the response of `destroy()` (logout), so the browser also drops the
   * site's other cookies and its storage: `true` for `"cookies", "storage"`, or the list to clear.
   * @default false
   */
  clearSiteData?: boolean | readonly ('cookies' | 'storage' | 'cache')[];
  /**
   * Origins (`https://app.example.com`) other than this host from which `SessionOriginGuard` lets
   * state-changing requests through.
   * @default []
   */
  trustedOrigins?: readonly string[];
  /**
   * Let `SessionOriginGuard` pass state-changing requests that carry neither `Origin` nor
   * `Sec-Fetch-Site` (non-browser clients such as curl or another server).
   * @default false
   */
  allowMissingOrigin?: boolean;
  /**
   * Called with every session lifecycle and security event (created, regenerated, destroyed,
   * expired, revoked, invalid cookie), synchronously; what it throws is logged and ignored. Events
   * carry a keyed hash of the session id (`ref`), never a token or an id.
   * @example onEvent: (event) => metrics.increment(`session.${event.type}`)
   */
  onEvent?: (event: SessionEvent) => void;
  /**
   * Log the same events through Nest's logger (context `SessionModule`). `'security'`: revocations
   * at log level and forged or tampered cookies as warnings (at most one per 10 s); `true`: also
   * the lifecycle of every session (created, regenerated, destroyed, expired) at verbose level,
   * a line per visitor; `false`: nothing.
   * @default 'security'
   */
  logEvents?: boolean | 'security';
  /**
   * Load the session of every request that carries the session cookie before any middleware the
   * app registers with `app.use()` runs, as express-session does: for middleware that reads
   * `req.session` synchronously, such as Passport's `passport.session()`. Requests without the
   * cookie still cost nothing; requests with it cost one store read even on routes that never use
   * the session. A store that is down answers 503 there.
   * @default false
   */
  eager?: boolean;
  /**
   * The time source, in milliseconds since the epoch, used for every expiry decision (idle and
   * absolute timeouts, `touchAfter`, revocation). For tests that move time forward:
   * `SessionTestingModule` passes a controllable one. Lock timeouts always use real time.
   * @default Date.now
   */
  clock?: () => number;
  /**
   * Send `Cache-Control: private, no-store` on responses that read a session with a user, unless
   * the handler set its own `Cache-Control`: a browser's back button or a shared cache then cannot
   * show one user's page after logout or to another user (as Spring Security does by default).
   * Responses that set or clear the session cookie always get `no-store`.
   * @default true
   */
  cacheControl?: boolean;
}

/** What `forRootAsync`'s `useClass` / `useExisting` class provides. */
export interface SessionOptionsFactory {
  createSessionOptions(): SessionModuleOptions | Promise<SessionModuleOptions>;
}
