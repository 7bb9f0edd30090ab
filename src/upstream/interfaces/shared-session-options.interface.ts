import type {
  InjectionToken,
  LoggerService,
  ModuleMetadata,
  OptionalFactoryDependency,
  Type,
} from '@nestjs/common';
import type { CookieJar } from 'tough-cookie';
import type { SharedCredentialStore } from './shared-credential-store.interface.js';

/** A duration in milliseconds, or a string such as `'500ms'`, `'10s'`, `'1m'`. */
export type SharedSessionDuration = number | string;

/**
 * What a request may carry as its body. Plain objects, arrays, numbers, booleans are sent as JSON
 * (with `content-type: application/json` unless you set one); the other types are sent as they
 * are. Streams are not accepted: a body must be replayable so that a retry can send it again.
 */
export type SharedSessionRequestData =
  | string
  | URLSearchParams
  | FormData
  | Blob
  | ArrayBuffer
  | ArrayBufferView
  | Record<string, unknown>
  | readonly unknown[]
  | number
  | boolean
  | null;

/** Per-request options of {@link SharedSessionClient.request} and its shortcuts. */
export interface SharedSessionRequestOptions {
  /** Extra headers. The shared credential's headers (and cookies) are added after them. */
  headers?: Record<string, string> | Headers | Array<[string, string]>;
  /**
   * Query parameters appended to the URL. `undefined` values are skipped.
   * @example { page: 2, q: 'books' }
   */
  query?: Record<string, string | number | boolean | undefined> | URLSearchParams;
  /** The body, see {@link SharedSessionRequestData}. Ignored by the shortcuts that take `data`. */
  data?: SharedSessionRequestData;
  /** Aborts the request (and any waiting for a login) from the caller's side. */
  signal?: AbortSignal;
  /**
   * Time limit of one attempt, covering the whole exchange including reading the body.
   * @default the client's `timeout`
   */
  timeout?: SharedSessionDuration;
  /**
   * Re-send this request after a re-login or a network error even though its method is not
   * idempotent (POST, PATCH). Use it when the upstream deduplicates (an idempotency key).
   * @default the client's `retryNonIdempotent`
   */
  retryNonIdempotent?: boolean;
}

/** What `isExpired` learns about the request behind a response. */
export interface SharedSessionResponseInfo {
  /** Upper-case method. */
  readonly method: string;
  /** The URL that was requested. */
  readonly url: URL;
  /** Whether the default rule (401, 419, or a 3xx to the login URL) calls this response expired. */
  readonly defaultExpired: boolean;
}

/**
 * The small client a `login` function uses: requests go to the same upstream, with redirects not
 * followed, the same per-request timeout, and a fresh cookie jar whose cookies become the shared
 * credential. No shared credential is attached to these requests.
 */
export interface SharedSessionLoginContext {
  /** The upstream's name. */
  readonly name: string;
  /** The upstream's base URL. */
  readonly baseUrl: URL;
  /** The jar collecting the cookies the upstream sets during this login. */
  readonly jar: CookieJar;
  /** Aborted when `loginTimeout` passes or the application shuts down. */
  readonly signal: AbortSignal;
  /** Sends a request to the upstream (relative paths resolve against `baseUrl`). */
  request(method: string, path: string, options?: SharedSessionRequestOptions): Promise<Response>;
  /** `request('GET', path, options)`. */
  get(path: string, options?: SharedSessionRequestOptions): Promise<Response>;
  /** `request('POST', path, { ...options, data })`. */
  post(
    path: string,
    data?: SharedSessionRequestData,
    options?: SharedSessionRequestOptions,
  ): Promise<Response>;
}

/**
 * What a `login` function may return besides the cookies it leaves in the jar: a bearer token
 * (sent as `Authorization: Bearer <token>`) and/or headers sent with every request.
 */
export interface SharedSessionLoginResult {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent with every request, after the caller's own headers. */
  headers?: Record<string, string>;
}

/** Settings of the exponential backoff after a failed login. */
export interface SharedSessionBackoffOptions {
  /** Wait after the first failed login. @default '1s' */
  initial?: SharedSessionDuration;
  /** Longest wait. @default '30s' */
  max?: SharedSessionDuration;
  /** Growth factor per further failure. @default 2 */
  factor?: number;
}

/** Options of one upstream, shared by {@link SharedSessionClient} and the module. */
export interface SharedSessionOptions {
  /**
   * The upstream's base URL. Relative request paths resolve against it, and requests to any other
   * origin are refused (the credential is never sent elsewhere). It must not contain a user name or
   * password: credentials belong in `login`.
   * @example 'https://legacy.internal.example/app/'
   */
  baseUrl: string | URL;
  /**
   * Logs in to the upstream. Whatever it leaves behind becomes the shared credential: the cookies
   * the upstream set in `ctx.jar`, and the returned token or headers. It must throw when the
   * upstream refuses (a bad status): a login that throws, times out, or yields neither cookies nor
   * a token counts as failed. Its error messages are never logged (they might name a credential).
   * @example
   * async (ctx) => {
   *   const res = await ctx.post('/login', { username: 'svc', password: process.env.LEGACY_PASSWORD });
   *   if (!res.ok) throw new Error(`login refused: ${res.status}`);
   * }
   */
  login: (ctx: SharedSessionLoginContext) => Promise<SharedSessionLoginResult | void>;
  /**
   * Whether a response means the credential expired. The response body is still unread: call
   * `response.clone()` before reading it. `info.defaultExpired` is the default rule's answer.
   * @default status 401 or 419, or a 3xx whose `Location` points at `loginUrl`
   * @example (res, info) => info.defaultExpired || res.status === 403
   */
  isExpired?: (response: Response, info: SharedSessionResponseInfo) => boolean | Promise<boolean>;
  /**
   * The upstream's login page, for the default `isExpired`: a redirect to it (same origin and
   * path, any query) means the session expired. Relative to `baseUrl`. `false` disables the check.
   * @default '/login'
   */
  loginUrl?: string | false;
  /**
   * Time limit of one request attempt, covering the whole exchange including reading the body.
   * @default '10s'
   */
  timeout?: SharedSessionDuration;
  /**
   * How many times one call is sent again after an expired credential (with a fresh one) or a
   * network error. Non-idempotent methods are never sent again unless `retryNonIdempotent`.
   * @default 2
   */
  retries?: number;
  /**
   * Time limit of one login.
   * @default '10s'
   */
  loginTimeout?: SharedSessionDuration;
  /**
   * Expiry of the cluster-wide login lock: a holder that crashed blocks nobody for longer than
   * this, and a request waits this long for a login running elsewhere. Must be longer than
   * `loginTimeout`; leave room for a few store round trips too. A holder that outlives its lock
   * anyway cannot overwrite the next holder's login: the store refuses its write.
   * @default loginTimeout + 5 s
   */
  lockTtl?: SharedSessionDuration;
  /** Backoff after failed logins, shared by every process through the store. */
  loginBackoff?: SharedSessionBackoffOptions;
  /**
   * Where the credential and the login lock live. Use a Redis or PostgreSQL store when several
   * processes talk to the upstream, so that they share one login.
   * @default new MemorySharedCredentialStore() (this process only)
   */
  store?: SharedCredentialStore;
  /** Time limit of each store operation. @default '5s' */
  storeTimeout?: SharedSessionDuration;
  /**
   * Re-send non-idempotent requests (POST, PATCH) automatically after a re-login or a network
   * error. Off by default: a POST that may have been applied is not repeated behind your back.
   * @default false
   */
  retryNonIdempotent?: boolean;
  /**
   * Headers sent with every request (before the caller's and the credential's).
   * @default {}
   * @example { 'user-agent': 'my-app/1.0' }
   */
  headers?: Record<string, string>;
  /**
   * Where to log logins and failures (never a credential). `false` silences it.
   * @default new Logger(`SharedSession:${name}`)
   */
  logger?: LoggerService | false;
}

/** Options of a {@link SharedSessionClient} created by hand (outside the module). */
export interface SharedSessionClientOptions extends SharedSessionOptions {
  /**
   * Names the upstream: the key of its credential in the store, the injection name, and the name in
   * log lines and error messages. Letters, digits, `.`, `_`, `-` and `:`, at most 100 characters.
   * @example 'legacy-crm'
   */
  name: string;
}

/** Options of {@link SharedSessionModule.register}. */
export interface SharedSessionModuleOptions extends SharedSessionClientOptions {
  /** Register the client globally. @default false */
  isGlobal?: boolean;
}

/** A class that creates the options, for `registerAsync({ useClass })`. */
export interface SharedSessionOptionsFactory {
  createSharedSessionOptions(): SharedSessionOptions | Promise<SharedSessionOptions>;
}

/** Options of {@link SharedSessionModule.registerAsync}. Give one of `useFactory`, `useClass`, `useExisting`. */
export interface SharedSessionModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** The upstream's name, see {@link SharedSessionClientOptions.name}. */
  name: string;
  /** Register the client globally. @default false */
  isGlobal?: boolean;
  /** Providers passed to `useFactory`. @default [] */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /**
   * Creates the options.
   * @example useFactory: (config: ConfigService) => ({ baseUrl: config.get('LEGACY_URL'), login })
   */
  useFactory?: (...args: never[]) => SharedSessionOptions | Promise<SharedSessionOptions>;
  /** A class implementing {@link SharedSessionOptionsFactory}, instantiated by the module. */
  useClass?: Type<SharedSessionOptionsFactory>;
  /** An existing provider implementing {@link SharedSessionOptionsFactory}. */
  useExisting?: Type<SharedSessionOptionsFactory>;
}
