import { SessionConfigError } from './session.errors.js';
import type { SessionEvent } from './core/session-events.js';
import type {
  SessionConcurrency,
  SessionCookieOptions,
  SessionModuleOptions,
} from './interfaces/session-options.interface.js';
import type { SessionStore } from './interfaces/session-store.interface.js';
import { parseDuration } from './utils/duration.js';
import { DEFAULT_SEAL_CACHE } from './transport/session-sealer.js';

/** The longest cookie lifetime browsers accept (RFC 6265bis): 400 days. */
export const MAX_COOKIE_AGE_MS = 400 * 86_400_000;
const MIN_SECRET_LENGTH = 32;
const PLACEHOLDER_SECRET = /change.?me|keyboard.?cat|secret|password|example|placeholder|default/i;
// RFC 6265 cookie-name: an RFC 7230 token.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 6265 path-value: any CHAR except CTLs and ';'. We also refuse spaces and ',' to keep headers unambiguous.
const COOKIE_PATH = /^\/[\x21-\x2b\x2d-\x3a\x3c-\x7e]*$/;
const COOKIE_DOMAIN =
  /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const KNOWN_OPTIONS = new Set([
  'secret',
  'mode',
  'cookieChunks',
  'sealCache',
  'store',
  'revocationStore',
  'cookie',
  'idleTimeout',
  'anonymousIdleTimeout',
  'absoluteTimeout',
  'touchAfter',
  'saveUninitialized',
  'commitOnError',
  'userKey',
  'maxSize',
  'maxSessionsPerUser',
  'maxSessionsPolicy',
  'trustProxy',
  'concurrency',
  'lockTimeout',
  'lockTtl',
  'onEvent',
  'logEvents',
  'trustedOrigins',
  'allowMissingOrigin',
  'clearSiteData',
  'cacheControl',
  'eager',
  'clock',
]);
const KNOWN_COOKIE_OPTIONS = new Set([
  'name',
  'httpOnly',
  'secure',
  'sameSite',
  'path',
  'domain',
  'maxAge',
  'partitioned',
  'priority',
]);

/** Cookie attributes after defaults and checks. */
export interface ResolvedCookieOptions {
  readonly name: string;
  readonly httpOnly: boolean;
  readonly secure: boolean | 'auto';
  readonly sameSite: 'lax' | 'strict' | 'none';
  readonly path: string;
  readonly domain: string | undefined;
  readonly maxAge: number | undefined;
  readonly partitioned: boolean;
  readonly priority: 'low' | 'medium' | 'high' | undefined;
}

/** Options after defaults, parsing and checks: what the runtime uses. */
export interface ResolvedSessionOptions {
  readonly secrets: readonly (string | Buffer)[];
  readonly mode: 'store' | 'sealed';
  readonly cookieChunks: number;
  /** Sealed mode: how many opened seals are remembered (0: none). */
  readonly sealCache: number;
  readonly store: SessionStore | undefined;
  readonly revocationStore: SessionStore | undefined;
  readonly cookie: ResolvedCookieOptions;
  readonly idleTimeout: number;
  /** The idle timeout of sessions without a user; at most `idleTimeout`. */
  readonly anonymousIdleTimeout: number;
  readonly absoluteTimeout: number;
  readonly touchAfter: number;
  readonly saveUninitialized: boolean;
  readonly commitOnError: boolean;
  /** The data key that names the session's user (the part of `userKey` before a dot). */
  readonly userKey: string;
  /** The field of that key's object that holds the user id (`passport.user`: `user`), if any. */
  readonly userField: string | undefined;
  readonly maxSize: number;
  /** The most sessions one user may hold (REV-3), or undefined for no limit. */
  readonly maxSessionsPerUser: number | undefined;
  readonly maxSessionsPolicy: 'evict-oldest' | 'reject-new';
  readonly trustProxy: boolean | undefined;
  readonly concurrency: SessionConcurrency;
  readonly lockTimeout: number;
  readonly lockTtl: number;
  /** The `Clear-Site-Data` header value sent on `destroy()`, if any. */
  readonly clearSiteData: string | undefined;
  readonly trustedOrigins: readonly string[];
  readonly allowMissingOrigin: boolean;
  readonly onEvent: ((event: SessionEvent) => void) | undefined;
  readonly logEvents: boolean | 'security';
  /** `Cache-Control: private, no-store` on responses that read a session with a user. */
  readonly cacheControl: boolean;
  /** Load the session before the app's own middleware, for requests with the cookie. */
  readonly eager: boolean;
  /** Milliseconds since the epoch, for expiry decisions. */
  readonly clock: () => number;
  readonly production: boolean;
  /** Things worth a warning at boot that are not errors. */
  readonly warnings: readonly string[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rejectUnknown(object: Record<string, unknown>, known: Set<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!known.has(key)) {
      throw new SessionConfigError(
        `unknown option '${where}${key}'. Known options: ${[...known].join(', ')}.`,
      );
    }
  }
}

function duration(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new SessionConfigError(
      `'${name}' must be a positive number of milliseconds or a string such as '30m', '12h' or '14d'.`,
    );
  }
  return ms;
}

function boolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new SessionConfigError(`'${name}' must be true or false.`);
  return value;
}

function resolveLogEvents(value: unknown): boolean | 'security' {
  if (value === undefined) return 'security';
  if (value === true || value === false || value === 'security') return value;
  throw new SessionConfigError("'logEvents' must be true, false or 'security'.");
}

/** Why a secret is weak, or `undefined` when it looks fine. */
export function secretWeakness(secret: string): string | undefined {
  if (new Set(secret).size < 10) return 'it repeats too few distinct characters';
  if (PLACEHOLDER_SECRET.test(secret)) return 'it looks like a placeholder';
  return undefined;
}

function resolveSecrets(
  value: unknown,
  production: boolean,
  warnings: string[],
): (string | Buffer)[] {
  const secrets = typeof value === 'string' || Buffer.isBuffer(value) ? [value] : value;
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new SessionConfigError(
      "'secret' is required: pass a random string of at least 32 characters (or an array, newest first), " +
        "for example from process.env.SESSION_SECRET. Generate one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64url'))\"",
    );
  }
  secrets.forEach((secret, index) => {
    const label = secrets.length > 1 ? `'secret[${index}]'` : `'secret'`;
    if (Buffer.isBuffer(secret)) {
      if (secret.length < MIN_SECRET_LENGTH) {
        throw new SessionConfigError(
          `${label} is ${secret.length} bytes long; use at least ${MIN_SECRET_LENGTH} random bytes.`,
        );
      }
      return;
    }
    if (typeof secret !== 'string') {
      throw new SessionConfigError(`${label} must be a string or a Buffer.`);
    }
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new SessionConfigError(
        `${label} is ${secret.length} characters long; use at least ${MIN_SECRET_LENGTH} random characters.`,
      );
    }
    const weakness = secretWeakness(secret);
    if (weakness && production) {
      throw new SessionConfigError(
        `${label} is weak (${weakness}); in production use a random secret of at least ${MIN_SECRET_LENGTH} characters.`,
      );
    }
    if (weakness)
      warnings.push(`${label} is weak (${weakness}); it would be refused in production.`);
  });
  return secrets as (string | Buffer)[];
}

/** `clearSiteData` as the header value (`"cookies", "storage"`), or undefined when off. */
function resolveClearSiteData(value: unknown): string | undefined {
  if (value === undefined || value === false) return undefined;
  const types: unknown[] =
    value === true ? ['cookies', 'storage'] : Array.isArray(value) ? value : [];
  if (
    types.length === 0 ||
    !types.every((t) => t === 'cookies' || t === 'storage' || t === 'cache')
  ) {
    throw new SessionConfigError(
      "'clearSiteData' must be true, false, or a non-empty list of 'cookies', 'storage' and 'cache'.",
    );
  }
  return [...new Set(types)].map((type) => `"${type as string}"`).join(', ');
}

/** `trustedOrigins`: each an origin (scheme, host, optional port, nothing else), lowercased. */
function resolveOrigins(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new SessionConfigError(
      "'trustedOrigins' must be an array of origins such as 'https://app.example.com'.",
    );
  }
  return value.map((origin: unknown) => {
    const written = typeof origin === 'string' ? origin.toLowerCase().replace(/\/$/, '') : '';
    if (!URL.canParse(written) || new URL(written).origin !== written) {
      throw new SessionConfigError(
        `'trustedOrigins' entry ${JSON.stringify(origin)} is not an origin: write it as 'https://host[:port]', without a path.`,
      );
    }
    return written;
  });
}

/** Local development and tests: NODE_ENV unset, `development` or `test`. Anywhere else is deployed. */
function isDevelopment(env: NodeJS.ProcessEnv): boolean {
  return !env.NODE_ENV || env.NODE_ENV === 'development' || env.NODE_ENV === 'test';
}

function resolveCookie(value: unknown, deployed: boolean): ResolvedCookieOptions {
  if (value !== undefined && !isPlainObject(value)) {
    throw new SessionConfigError("'cookie' must be an object.");
  }
  const cookie: SessionCookieOptions = value ?? {};
  rejectUnknown(cookie as Record<string, unknown>, KNOWN_COOKIE_OPTIONS, 'cookie.');

  const secure = cookie.secure ?? deployed;
  if (secure !== true && secure !== false && secure !== 'auto') {
    throw new SessionConfigError("'cookie.secure' must be true, false or 'auto'.");
  }
  // `__Host-` where it can hold (no domain, path '/'), else `__Secure-`; no prefix without Secure.
  const hostOnlyRoot = cookie.domain === undefined && (cookie.path ?? '/') === '/';
  const name =
    cookie.name ?? (secure === true ? (hostOnlyRoot ? '__Host-sid' : '__Secure-sid') : 'sid');
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
    throw new SessionConfigError(
      `'cookie.name' must be a cookie token (letters, digits and !#$%&'*+-.^_\`|~; no spaces, '=', ';' or ','). Got ${JSON.stringify(name)}.`,
    );
  }
  const path = cookie.path ?? '/';
  if (typeof path !== 'string' || !COOKIE_PATH.test(path)) {
    throw new SessionConfigError(
      `'cookie.path' must start with '/' and contain no spaces, ';', ',' or control characters. Got ${JSON.stringify(path)}.`,
    );
  }
  const domain = cookie.domain;
  if (domain !== undefined && (typeof domain !== 'string' || !COOKIE_DOMAIN.test(domain))) {
    throw new SessionConfigError(
      `'cookie.domain' must be a host name such as 'example.com'. Got ${JSON.stringify(domain)}. Leave it unset for a host-only cookie.`,
    );
  }
  const sameSite = cookie.sameSite ?? 'lax';
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none') {
    throw new SessionConfigError("'cookie.sameSite' must be 'lax', 'strict' or 'none'.");
  }
  if (sameSite === 'none' && secure !== true) {
    throw new SessionConfigError(
      "'cookie.sameSite: \"none\"' needs 'cookie.secure: true' (browsers drop SameSite=None cookies without Secure). Set secure: true or use sameSite 'lax'.",
    );
  }
  if (name.startsWith('__Host-')) {
    if (secure !== true) {
      throw new SessionConfigError(
        `a '__Host-' cookie name needs 'cookie.secure: true'. Set secure: true or choose a name without the prefix.`,
      );
    }
    if (domain !== undefined) {
      throw new SessionConfigError(
        `a '__Host-' cookie may not have a domain. Remove 'cookie.domain' or choose a name without the prefix.`,
      );
    }
    if (path !== '/') {
      throw new SessionConfigError(`a '__Host-' cookie needs 'cookie.path: "/"'.`);
    }
  }
  if (name.startsWith('__Secure-') && secure !== true) {
    throw new SessionConfigError(`a '__Secure-' cookie name needs 'cookie.secure: true'.`);
  }
  const partitioned = boolean(cookie.partitioned, 'cookie.partitioned', false);
  if (partitioned && secure !== true) {
    throw new SessionConfigError("'cookie.partitioned' needs 'cookie.secure: true'.");
  }
  const priority = cookie.priority;
  if (
    priority !== undefined &&
    priority !== 'low' &&
    priority !== 'medium' &&
    priority !== 'high'
  ) {
    throw new SessionConfigError("'cookie.priority' must be 'low', 'medium' or 'high'.");
  }
  const maxAge =
    cookie.maxAge === undefined
      ? undefined
      : Math.min(duration(cookie.maxAge, 'cookie.maxAge', 0), MAX_COOKIE_AGE_MS);
  return {
    name,
    httpOnly: boolean(cookie.httpOnly, 'cookie.httpOnly', true),
    secure,
    sameSite,
    path,
    domain,
    maxAge,
    partitioned,
    priority,
  };
}

/** Whether a store can lock (needed by `concurrency: 'serialize'` and `maxSessionsPerUser`). */
function hasLocks(store: SessionStore): boolean {
  return typeof store.acquireLock === 'function' && typeof store.releaseLock === 'function';
}

function isStore(value: unknown): value is SessionStore {
  if (typeof value !== 'object' || value === null) return false;
  const store = value as Record<string, unknown>;
  return ['load', 'save', 'touch', 'destroy', 'listForUser', 'destroyForUser'].every(
    (method) => typeof store[method] === 'function',
  );
}

/**
 * Applies defaults to the module options and checks every one of them. Throws
 * {@link SessionConfigError} with a message that says what to change.
 */
export function resolveSessionOptions(
  options: SessionModuleOptions,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedSessionOptions {
  if (!isPlainObject(options)) throw new SessionConfigError('options must be an object.');
  rejectUnknown(options, KNOWN_OPTIONS, '');
  // Production means deployed: any NODE_ENV but unset, development or test (staging included).
  const production = !isDevelopment(env);
  const warnings: string[] = [];

  const secrets = resolveSecrets(options.secret, production, warnings);
  if (options.store !== undefined && !isStore(options.store)) {
    throw new SessionConfigError(
      "'store' must implement SessionStore (load, save, touch, destroy, listForUser, destroyForUser). " +
        'To use an express-session store, wrap it in ExpressSessionStoreAdapter.',
    );
  }
  const mode = options.mode ?? 'store';
  if (mode !== 'store' && mode !== 'sealed') {
    throw new SessionConfigError("'mode' must be 'store' or 'sealed'.");
  }
  if (mode === 'sealed' && options.store !== undefined) {
    throw new SessionConfigError(
      "'store' has no use in 'sealed' mode (the session lives in the cookie). Remove it, or pass it as 'revocationStore' to make logout revoke copied cookies.",
    );
  }
  if (options.revocationStore !== undefined) {
    if (mode !== 'sealed') {
      throw new SessionConfigError(
        "'revocationStore' is for mode: 'sealed'; in 'store' mode use 'store'.",
      );
    }
    if (!isStore(options.revocationStore)) {
      throw new SessionConfigError("'revocationStore' must implement SessionStore.");
    }
  }
  if (mode === 'sealed' && options.concurrency === 'serialize') {
    throw new SessionConfigError(
      "'concurrency: \"serialize\"' needs server state; it is not available in 'sealed' mode.",
    );
  }
  const cookieChunks = options.cookieChunks ?? 1;
  if (!Number.isInteger(cookieChunks) || cookieChunks < 1 || cookieChunks > 8) {
    throw new SessionConfigError("'cookieChunks' must be a whole number from 1 to 8.");
  }
  if (cookieChunks > 1 && mode !== 'sealed') {
    throw new SessionConfigError(
      "'cookieChunks' is for mode: 'sealed'; store-mode cookies are small.",
    );
  }
  const sealCache = options.sealCache ?? DEFAULT_SEAL_CACHE;
  if (!Number.isInteger(sealCache) || sealCache < 0 || sealCache > 1_000_000) {
    throw new SessionConfigError(
      "'sealCache' must be a whole number from 0 (remember no opened seal) to 1000000.",
    );
  }
  if (options.sealCache !== undefined && mode !== 'sealed') {
    throw new SessionConfigError(
      "'sealCache' is for mode: 'sealed'; store-mode cookies are checked with one HMAC.",
    );
  }
  const cookie = resolveCookie(options.cookie, production);
  if (production && cookie.secure === false) {
    warnings.push(
      "'cookie.secure' is false in production: the session cookie can leak over plain HTTP.",
    );
  }
  if (!cookie.httpOnly) {
    warnings.push("'cookie.httpOnly' is false: scripts in the page can read the session cookie.");
  }

  const idleTimeout = duration(options.idleTimeout, 'idleTimeout', 30 * 60_000);
  const absoluteTimeout = duration(options.absoluteTimeout, 'absoluteTimeout', 12 * 3_600_000);
  if (absoluteTimeout < idleTimeout) {
    throw new SessionConfigError(
      `'absoluteTimeout' (${absoluteTimeout} ms) is shorter than 'idleTimeout' (${idleTimeout} ms); make it at least as long.`,
    );
  }
  const anonymousIdleTimeout =
    options.anonymousIdleTimeout === undefined
      ? Math.min(10 * 60_000, idleTimeout)
      : duration(options.anonymousIdleTimeout, 'anonymousIdleTimeout', idleTimeout);
  if (anonymousIdleTimeout > idleTimeout) {
    throw new SessionConfigError(
      `'anonymousIdleTimeout' (${anonymousIdleTimeout} ms) is longer than 'idleTimeout' (${idleTimeout} ms); make it at most as long.`,
    );
  }
  const touchAfter = duration(
    options.touchAfter,
    'touchAfter',
    Math.min(60_000, Math.floor(idleTimeout / 2)),
  );
  if (touchAfter >= idleTimeout) {
    throw new SessionConfigError(
      `'touchAfter' (${touchAfter} ms) must be shorter than 'idleTimeout' (${idleTimeout} ms), or sessions would expire while in use.`,
    );
  }
  const userKeyOption = options.userKey ?? 'userId';
  if (typeof userKeyOption !== 'string' || !/^[^.]+(\.[^.]+)?$/.test(userKeyOption)) {
    throw new SessionConfigError(
      "'userKey' must be a data key ('userId'), or a key and a field of its object ('passport.user').",
    );
  }
  const [userKey, userField] = userKeyOption.split('.') as [string, string | undefined];
  const maxSize = options.maxSize ?? 65_536;
  if (!Number.isInteger(maxSize) || maxSize < 64) {
    throw new SessionConfigError("'maxSize' must be a whole number of bytes, at least 64.");
  }
  const { maxSessionsPerUser } = options;
  if (
    maxSessionsPerUser !== undefined &&
    (!Number.isInteger(maxSessionsPerUser) || maxSessionsPerUser < 1)
  ) {
    throw new SessionConfigError("'maxSessionsPerUser' must be a whole number, at least 1.");
  }
  if (maxSessionsPerUser !== undefined && mode === 'sealed') {
    throw new SessionConfigError(
      "'maxSessionsPerUser' needs mode: 'store': sealed sessions live in cookies, which cannot be counted.",
    );
  }
  if (maxSessionsPerUser !== undefined && options.store && !hasLocks(options.store)) {
    throw new SessionConfigError(
      "'maxSessionsPerUser' needs a store with acquireLock/releaseLock (logins of one user take turns); this store has none. Use a built-in store.",
    );
  }
  const maxSessionsPolicy = options.maxSessionsPolicy ?? 'evict-oldest';
  if (!['evict-oldest', 'reject-new'].includes(maxSessionsPolicy)) {
    throw new SessionConfigError("'maxSessionsPolicy' must be 'evict-oldest' or 'reject-new'.");
  }
  if (options.maxSessionsPolicy !== undefined && maxSessionsPerUser === undefined) {
    throw new SessionConfigError(
      "'maxSessionsPolicy' has no effect without 'maxSessionsPerUser'. Set the limit, or remove the policy.",
    );
  }
  if (options.trustProxy !== undefined && typeof options.trustProxy !== 'boolean') {
    throw new SessionConfigError("'trustProxy' must be true, false or left unset.");
  }
  const concurrency = options.concurrency ?? 'merge';
  if (!['merge', 'serialize', 'optimistic'].includes(concurrency)) {
    throw new SessionConfigError("'concurrency' must be 'merge', 'serialize' or 'optimistic'.");
  }
  if (concurrency === 'serialize' && options.store && !hasLocks(options.store)) {
    throw new SessionConfigError(
      "'concurrency: \"serialize\"' needs a store with acquireLock/releaseLock; this store has none. Use a built-in store or choose 'merge' / 'optimistic'.",
    );
  }
  const lockTimeout = duration(options.lockTimeout, 'lockTimeout', 5_000);
  const lockTtl = duration(options.lockTtl, 'lockTtl', 30_000);
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new SessionConfigError("'onEvent' must be a function (event) => void.");
  }
  return {
    secrets,
    mode,
    cookieChunks,
    sealCache,
    store: options.store,
    revocationStore: options.revocationStore,
    concurrency,
    lockTimeout,
    lockTtl,
    cookie,
    idleTimeout,
    anonymousIdleTimeout,
    absoluteTimeout,
    touchAfter,
    saveUninitialized: boolean(options.saveUninitialized, 'saveUninitialized', false),
    commitOnError: boolean(options.commitOnError, 'commitOnError', false),
    userKey,
    userField,
    maxSize,
    maxSessionsPerUser,
    maxSessionsPolicy,
    trustProxy: options.trustProxy,
    clearSiteData: resolveClearSiteData(options.clearSiteData),
    trustedOrigins: resolveOrigins(options.trustedOrigins),
    allowMissingOrigin: boolean(options.allowMissingOrigin, 'allowMissingOrigin', false),
    onEvent: options.onEvent,
    logEvents: resolveLogEvents(options.logEvents),
    cacheControl: boolean(options.cacheControl, 'cacheControl', true),
    eager: boolean(options.eager, 'eager', false),
    clock: resolveClock(options.clock),
    production,
    warnings,
  };
}

function resolveClock(clock: unknown): () => number {
  // Read at each call, so a test that replaces Date.now sees its clock used.
  if (clock === undefined) return () => Date.now();
  if (typeof clock !== 'function') {
    throw new SessionConfigError(
      `'clock' must be a function returning the time in milliseconds (like Date.now); got ${typeof clock}.`,
    );
  }
  return clock as () => number;
}
