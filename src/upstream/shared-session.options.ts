import { Logger, type LoggerService } from '@nestjs/common';
import { parseDuration } from '../utils/duration.js';
import type { SharedCredentialStore } from './interfaces/shared-credential-store.interface.js';
import type {
  SharedSessionClientOptions,
  SharedSessionOptions,
} from './interfaces/shared-session-options.interface.js';
import { SharedSessionConfigError } from './shared-session.errors.js';
import { MemorySharedCredentialStore } from './stores/memory-credential.store.js';

/** Options with every default applied and every duration in milliseconds. */
export interface ResolvedSharedSessionOptions {
  readonly name: string;
  readonly baseUrl: URL;
  readonly login: SharedSessionOptions['login'];
  readonly isExpired: SharedSessionOptions['isExpired'];
  readonly loginUrl: URL | null;
  readonly timeout: number;
  readonly retries: number;
  readonly loginTimeout: number;
  readonly lockTtl: number;
  readonly backoff: { readonly initial: number; readonly max: number; readonly factor: number };
  readonly store: SharedCredentialStore;
  readonly storeTimeout: number;
  readonly retryNonIdempotent: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly logger: LoggerService | null;
}

const NAME = /^[A-Za-z0-9._:-]{1,100}$/;
/** Longest duration accepted anywhere: about 24.8 days, the largest timer Node.js supports. */
const MAX_DURATION = 2_147_483_647;

/** Checks an upstream name: used for tokens, store keys, log lines and error messages. */
export function assertSharedSessionName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new SharedSessionConfigError(
      undefined,
      'name must be 1-100 letters, digits, ".", "_", "-" or ":"',
    );
  }
}

/**
 * Resolves a request path against the base URL the way HTTP clients with a base URL do: a path,
 * with or without a leading `/`, goes under the base URL's own path (`'/data'` on
 * `https://host/app/` is `https://host/app/data`); an absolute URL stays as it is.
 * @example resolveUpstreamUrl(new URL('https://host/app'), '/data').href // 'https://host/app/data'
 */
export function resolveUpstreamUrl(base: URL, path: string): URL {
  if (/^[a-z][a-z0-9+.-]*:/i.test(path) || path.startsWith('//')) return new URL(path, base);
  const directory = base.pathname.endsWith('/') ? base : new URL(`${base.pathname}/`, base);
  return new URL(path.replace(/^\/+/, ''), directory);
}

/**
 * Validates the options and applies the defaults.
 * @throws SharedSessionConfigError saying which option to change.
 */
export function resolveSharedSessionOptions(
  options: SharedSessionClientOptions,
): ResolvedSharedSessionOptions {
  if (!options || typeof options !== 'object') {
    throw new SharedSessionConfigError(undefined, 'options must be an object');
  }
  assertSharedSessionName(options.name);
  const name = options.name;
  const fail = (message: string): never => {
    throw new SharedSessionConfigError(name, message);
  };

  let baseUrl: URL;
  try {
    baseUrl = new URL(String(options.baseUrl));
  } catch {
    return fail('baseUrl must be an absolute http(s) URL');
  }
  if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
    fail('baseUrl must be an absolute http(s) URL');
  }
  if (baseUrl.username || baseUrl.password) {
    fail('baseUrl must not contain a user name or password; log in through `login` instead');
  }
  baseUrl.search = '';
  baseUrl.hash = '';
  if (typeof options.login !== 'function') fail('login must be an async function');
  if (options.isExpired !== undefined && typeof options.isExpired !== 'function') {
    fail('isExpired must be a function');
  }

  let loginUrl: URL | null = null;
  if (options.loginUrl !== false) {
    try {
      loginUrl = resolveUpstreamUrl(baseUrl, options.loginUrl ?? '/login');
    } catch {
      fail('loginUrl must be a path or URL, or false');
    }
  }

  const duration = (key: string, value: unknown, fallback: number): number => {
    if (value === undefined) return fallback;
    const ms = parseDuration(value);
    if (ms === undefined || ms > MAX_DURATION) {
      return fail(`${key} must be a positive number of milliseconds or a string such as '10s'`);
    }
    return ms;
  };
  const timeout = duration('timeout', options.timeout, 10_000);
  const loginTimeout = duration('loginTimeout', options.loginTimeout, 10_000);
  const lockTtl = duration('lockTtl', options.lockTtl, loginTimeout + 5_000);
  if (lockTtl <= loginTimeout) {
    fail('lockTtl must be longer than loginTimeout, so that a live lock holder finishes first');
  }
  const storeTimeout = duration('storeTimeout', options.storeTimeout, 5_000);

  const retries = options.retries ?? 2;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) {
    fail('retries must be a whole number from 0 to 10');
  }

  const backoffOptions = options.loginBackoff ?? {};
  const backoff = {
    initial: duration('loginBackoff.initial', backoffOptions.initial, 1_000),
    max: duration('loginBackoff.max', backoffOptions.max, 30_000),
    factor: backoffOptions.factor ?? 2,
  };
  if (typeof backoff.factor !== 'number' || !(backoff.factor >= 1) || backoff.factor > 100) {
    fail('loginBackoff.factor must be a number from 1 to 100');
  }
  if (backoff.max < backoff.initial) fail('loginBackoff.max must not be shorter than its initial');

  const store = options.store ?? new MemorySharedCredentialStore();
  for (const method of ['get', 'set', 'acquireLock', 'releaseLock'] as const) {
    if (typeof store[method] !== 'function') {
      fail(`store must implement SharedCredentialStore (missing ${method})`);
    }
  }

  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.headers ?? {})) {
    if (typeof value !== 'string') fail(`headers.${key} must be a string`);
    headers[key] = value;
  }

  return {
    name,
    baseUrl,
    login: options.login,
    isExpired: options.isExpired,
    loginUrl,
    timeout,
    retries,
    loginTimeout,
    lockTtl,
    backoff,
    store,
    storeTimeout,
    retryNonIdempotent: options.retryNonIdempotent ?? false,
    headers,
    logger:
      options.logger === false ? null : (options.logger ?? new Logger(`SharedSession:${name}`)),
  };
}

/**
 * The wait after `failures` failed logins in a row: `initial × factor^(failures − 1)`, capped at `max`.
 * @example loginBackoffDelay(3, { initial: 1000, max: 30000, factor: 2 }) // 4000
 */
export function loginBackoffDelay(
  failures: number,
  backoff: ResolvedSharedSessionOptions['backoff'],
): number {
  if (failures < 1) return 0;
  const delay = backoff.initial * Math.pow(backoff.factor, Math.min(failures - 1, 60));
  return Math.min(backoff.max, Math.round(delay));
}
