import { randomInt, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OnApplicationShutdown } from '@nestjs/common';
import { CookieJar } from 'tough-cookie';
import { parseDuration } from '../utils/duration.js';
import type {
  SharedCredentialRecord,
  SharedCredentialStore,
} from './interfaces/shared-credential-store.interface.js';
import type {
  SharedSessionClientOptions,
  SharedSessionLoginContext,
  SharedSessionLoginResult,
  SharedSessionRequestData,
  SharedSessionRequestOptions,
} from './interfaces/shared-session-options.interface.js';
import {
  deserializeCredential,
  jarHasCookies,
  serializeCredential,
  type ActiveCredential,
} from './shared-session.credential.js';
import {
  SharedSessionConfigError,
  SharedSessionUnavailableException,
  type SharedSessionFailureReason,
} from './shared-session.errors.js';
import { isIdempotentMethod, isSessionExpiredByDefault } from './shared-session.expiry.js';
import {
  loginBackoffDelay,
  resolveSharedSessionOptions,
  resolveUpstreamUrl,
  type ResolvedSharedSessionOptions,
} from './shared-session.options.js';

/** First and longest pause between two looks at the store while another process logs in. */
const LOCK_POLL_INITIAL_MS = 25;
const LOCK_POLL_MAX_MS = 250;
/** Pause before re-sending an idempotent request after a network error, times the attempt number. */
const REQUEST_RETRY_DELAY_MS = 100;
const METHOD = /^[A-Za-z]{1,20}$/;

interface EncodedBody {
  readonly value: RequestInit['body'];
  readonly contentType?: string;
}

/** Why a login failed, worded so that it can be logged: never an error message from `login`. */
class LoginFailure extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

function encodeBody(data: SharedSessionRequestData | undefined): EncodedBody {
  if (data === undefined || data === null) return { value: undefined };
  if (
    typeof data === 'string' ||
    data instanceof URLSearchParams ||
    data instanceof FormData ||
    data instanceof Blob ||
    data instanceof ArrayBuffer ||
    ArrayBuffer.isView(data)
  ) {
    return { value: data as RequestInit['body'] };
  }
  const candidate = data as {
    getReader?: unknown;
    pipe?: unknown;
    [Symbol.asyncIterator]?: unknown;
  };
  if (
    typeof candidate.getReader === 'function' ||
    typeof candidate.pipe === 'function' ||
    typeof candidate[Symbol.asyncIterator] === 'function'
  ) {
    throw new TypeError(
      'SharedSessionClient: stream bodies cannot be retried; pass a Blob or a Buffer',
    );
  }
  return { value: JSON.stringify(data), contentType: 'application/json' };
}

/** Waits for `promise`, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** A credential store call that did not answer in time. */
class StoreTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'StoreTimeout';
  }
}

/** An error of a credential store, by its kind only (name and code): never its message. */
function describeStoreError(error: unknown): string {
  if (!(error instanceof Error)) return `a thrown ${typeof error}`;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number'
    ? `${error.name} (${code})`
    : error.name;
}

/** A network error worded for logs and messages: its kind and code, never a URL or header. */
function describeRequestError(error: unknown, timeout: number): string {
  const err = error as { name?: unknown; cause?: { code?: unknown } };
  if (err?.name === 'TimeoutError') return `timed out after ${timeout} ms`;
  const code = typeof err?.cause?.code === 'string' ? err.cause.code : undefined;
  return code ? `network error ${code}` : 'network error';
}

/**
 * An HTTP client for one upstream service that needs a logged-in session, shared by every request
 * of the application and by every process using the same credential store.
 *
 * Each call sends the shared credential (cookies from a `tough-cookie` jar, plus any token or headers
 * the login returned) with Node's `fetch`, never following redirects, and returns the upstream's
 * `Response` as it is (read it with `json()`, `text()`, …). When the response says the credential
 * expired (`isExpired`), the client renews it with exactly one login across all processes:
 *
 * - each credential has a generation; a request that failed on generation `G` logs in only if the
 *   store still holds `G`; otherwise it retries at once with the newer credential;
 * - in one process, concurrent requests share one renewal; across processes, the login runs under a
 *   lock in the store (owner token, expiry) and the others poll the store until the new credential
 *   appears (bounded by `lockTtl`);
 * - a failed login is recorded in the store and blocks new logins for an exponential backoff;
 * - after `retries` attempts, or for a non-idempotent request, the caller gets a
 *   {@link SharedSessionUnavailableException} (503) naming the upstream, never the credential.
 *
 * Usually injected with `@InjectSharedSession(name)` after `SharedSessionModule.register(...)`;
 * it can also be created by hand.
 *
 * @example
 * const crm = new SharedSessionClient({
 *   name: 'crm',
 *   baseUrl: 'https://crm.internal.example',
 *   login: async (ctx) => {
 *     const res = await ctx.post('/login', { user: 'svc', password: process.env.CRM_PASSWORD });
 *     if (!res.ok) throw new Error(`login refused: ${res.status}`);
 *   },
 * });
 * const customers = await (await crm.get('/api/customers', { query: { page: 1 } })).json();
 */
export class SharedSessionClient implements OnApplicationShutdown {
  /** The upstream's name. */
  readonly name: string;
  private readonly options: ResolvedSharedSessionOptions;
  private active: ActiveCredential | null = null;
  private refreshing: { stale: number; promise: Promise<ActiveCredential> } | null = null;
  private readonly closing = new AbortController();
  private logins = 0;
  private warnedUnfenced = false;

  /** @throws SharedSessionConfigError when an option is wrong. */
  constructor(options: SharedSessionClientOptions) {
    this.options = resolveSharedSessionOptions(options);
    this.name = this.options.name;
  }

  /** How many logins this client (this process) has performed. */
  get loginCount(): number {
    return this.logins;
  }

  /** The generation of the credential this process uses; `0` before the first one. */
  get generation(): number {
    return this.active?.generation ?? 0;
  }

  /** The credential store in use. */
  get store(): SharedCredentialStore {
    return this.options.store;
  }

  /** `GET path`. @example await crm.get('/api/items', { query: { page: 2 } }) */
  get(path: string, options?: SharedSessionRequestOptions): Promise<Response> {
    return this.request('GET', path, options);
  }

  /** `HEAD path`. */
  head(path: string, options?: SharedSessionRequestOptions): Promise<Response> {
    return this.request('HEAD', path, options);
  }

  /** `DELETE path`. */
  delete(path: string, options?: SharedSessionRequestOptions): Promise<Response> {
    return this.request('DELETE', path, options);
  }

  /**
   * `POST path` with `data` as the body. Not retried automatically (see `retryNonIdempotent`).
   * @example await crm.post('/api/notes', { text: 'hello' })
   */
  post(
    path: string,
    data?: SharedSessionRequestData,
    options?: SharedSessionRequestOptions,
  ): Promise<Response> {
    return this.request('POST', path, { ...options, data });
  }

  /** `PUT path` with `data` as the body. */
  put(
    path: string,
    data?: SharedSessionRequestData,
    options?: SharedSessionRequestOptions,
  ): Promise<Response> {
    return this.request('PUT', path, { ...options, data });
  }

  /** `PATCH path` with `data` as the body. Not retried automatically (see `retryNonIdempotent`). */
  patch(
    path: string,
    data?: SharedSessionRequestData,
    options?: SharedSessionRequestOptions,
  ): Promise<Response> {
    return this.request('PATCH', path, { ...options, data });
  }

  /**
   * Sends a request with the shared credential and returns the upstream's response, unless the
   * credential cannot be made to work within the bounded attempts.
   *
   * `path` is relative to `baseUrl` (or an absolute URL of the same origin). Responses other than
   * an expired credential are returned as they are, 3xx and 5xx included: redirects are not followed.
   *
   * @throws SharedSessionUnavailableException (503) when no login succeeds, the upstream keeps
   *   rejecting the session, a non-idempotent request met an expired session, or the upstream or
   *   the store cannot be reached; see its `reason`.
   * @throws SharedSessionConfigError when `path` points at another origin than `baseUrl`.
   * @throws the caller's `signal.reason` when `options.signal` aborts.
   */
  async request(
    method: string,
    path: string,
    options: SharedSessionRequestOptions = {},
  ): Promise<Response> {
    this.assertOpen();
    if (!METHOD.test(method)) throw new TypeError('SharedSessionClient: invalid HTTP method');
    const verb = method.toUpperCase();
    const url = this.resolveUrl(path, options.query, true);
    const body = encodeBody(options.data);
    // Invalid caller headers are the caller's error, not a network failure to retry.
    this.requestHeaders(options.headers, body);
    const timeout = this.requestTimeout(options.timeout);
    const retryable =
      isIdempotentMethod(verb) || (options.retryNonIdempotent ?? this.options.retryNonIdempotent);
    const attempts = 1 + this.options.retries;

    let credential = await this.renew(this.active ? -1 : 0, options.signal);
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.send(verb, url, body, options, timeout, credential);
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        this.assertOpen();
        const what = describeRequestError(error, timeout);
        if (!retryable) {
          throw this.unavailable(
            'request-failed',
            `${verb} failed (${what}) and was not sent again: ${verb} is not idempotent`,
          );
        }
        if (attempt >= attempts) {
          throw this.unavailable(
            'request-failed',
            `${verb} failed on ${attempt} attempts (${what})`,
          );
        }
        await this.pause(REQUEST_RETRY_DELAY_MS * attempt, options.signal);
        continue;
      }

      if (!(await this.isExpired(response, verb, url))) return response;
      await response.body?.cancel().catch(() => undefined);
      if (!retryable) {
        // Renew anyway, so that the next call works; but do not repeat a request that may act twice.
        await this.renew(credential.generation, options.signal);
        throw this.unavailable(
          'not-retried',
          `the session had expired and was renewed, but ${verb} is not idempotent and was not sent again`,
        );
      }
      if (attempt >= attempts) {
        throw this.unavailable(
          'session-rejected',
          `the upstream rejected the session on ${attempt} attempts`,
        );
      }
      credential = await this.renew(credential.generation, options.signal);
    }
  }

  /** Stops the client: waits and logins in progress end, and later calls fail with 503 `closed`. */
  close(): void {
    this.closing.abort();
  }

  /** Closes the client when the application shuts down. */
  onApplicationShutdown(): void {
    this.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Credential generations

  /**
   * A credential newer than generation `stale` (`-1`: the current one, whatever it is). In one
   * process concurrent callers share one refresh.
   */
  private async renew(stale: number, signal: AbortSignal | undefined): Promise<ActiveCredential> {
    for (let round = 0; round < 3; round++) {
      const active = this.active;
      if (active && active.generation > stale) return active;
      if (stale === -1) stale = 0;
      if (!this.refreshing) {
        const promise: Promise<ActiveCredential> = this.refresh(stale).finally(() => {
          if (this.refreshing?.promise === promise) this.refreshing = null;
        });
        // Every caller may give up (its signal): the result must never be an unhandled rejection.
        promise.catch(() => undefined);
        this.refreshing = { stale, promise };
      }
      const credential = await untilAborted(this.refreshing.promise, signal);
      if (credential.generation > stale) return credential;
    }
    throw this.unavailable('session-rejected', 'no newer credential became available');
  }

  /** The cross-process part: adopt a newer stored credential, or log in under the store's lock. */
  private async refresh(stale: number): Promise<ActiveCredential> {
    // A lock held by a crashed process ends within lockTtl: waiting that long (and a poll more)
    // means a waiter takes over from a crashed holder rather than giving up before its lock ends.
    const deadline = Date.now() + this.options.lockTtl + LOCK_POLL_MAX_MS;
    let delay = LOCK_POLL_INITIAL_MS;
    for (;;) {
      this.assertOpen();
      const record = await this.storeCall('read the credential', (store) => store.get(this.name));
      const adopted = this.adopt(record, stale);
      if (adopted) return adopted;
      this.assertNoBackoff(record);

      const owner = randomUUID();
      const locked = await this.storeCall('take the login lock', (store) =>
        store.acquireLock(this.name, owner, this.options.lockTtl),
      );
      if (locked) {
        try {
          return await this.loginUnderLock(stale, owner);
        } finally {
          const released = await this.storeCall('release the login lock', (store) =>
            store.releaseLock(this.name, owner),
          ).catch(() => true);
          if (!released) this.warnLockLost();
        }
      }

      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw this.unavailable(
          'login-timeout',
          `a login by another process did not finish within lockTtl (${this.options.lockTtl} ms)`,
        );
      }
      await this.pause(Math.min(delay + randomInt(0, Math.ceil(delay / 2) + 1), remaining));
      delay = Math.min(delay * 2, LOCK_POLL_MAX_MS);
    }
  }

  private async loginUnderLock(stale: number, owner: string): Promise<ActiveCredential> {
    // Someone may have finished a login between our read and our lock.
    const record = await this.storeCall('read the credential', (store) => store.get(this.name));
    const adopted = this.adopt(record, stale);
    if (adopted) return adopted;
    this.assertNoBackoff(record);

    const started = Date.now();
    let jar: CookieJar;
    let headers: Array<readonly [string, string]>;
    try {
      ({ jar, headers } = await this.runLogin());
    } catch (error) {
      // A shutdown is not the upstream's fault: do not make every process back off for it.
      this.assertOpen();
      const failures = (record?.failures ?? 0) + 1;
      const wait = loginBackoffDelay(failures, this.options.backoff);
      const detail = this.describeLoginError(error);
      this.options.logger?.warn(
        `Login to upstream "${this.name}" failed (${detail}); no new login for ${wait} ms ` +
          `(${failures} failed in a row)`,
      );
      // Written only while this process still holds the lock: never over a newer login.
      await this.storeCall('record the failed login', (store) =>
        store.set(
          this.name,
          {
            generation: record?.generation ?? 0,
            credential: record?.credential ?? null,
            updatedAt: record?.updatedAt ?? Date.now(),
            failures,
            retryAt: Date.now() + wait,
          },
          owner,
        ),
      );
      throw this.unavailable('login-failed', `the login failed; next attempt in ${wait} ms`, wait);
    }

    const credential = serializeCredential(jar, headers);
    // Never reuse a generation number, and never go below one this process already saw.
    const generation = Math.max(record?.generation ?? 0, stale, this.generation) + 1;
    const saved = await this.storeCall('save the credential', (store) =>
      store.set(this.name, { generation, credential, updatedAt: Date.now(), failures: 0 }, owner),
    );
    if (saved === undefined) this.warnUnfenced();
    else if (!saved) {
      // The login outlived the lock and another process may have logged in meanwhile: its
      // credential is the shared one. Use it if it is there; never overwrite it. (The lock's
      // release, which fails too, reports the lost lock.)
      const latest = await this.storeCall('read the credential', (store) => store.get(this.name));
      const adoptedLatest = this.adopt(latest, stale);
      if (adoptedLatest) return adoptedLatest;
      throw this.unavailable(
        'login-timeout',
        `the login outlived its lock (lockTtl ${this.options.lockTtl} ms) and was not shared`,
      );
    }
    this.logins++;
    this.options.logger?.log(
      `Logged in to upstream "${this.name}" (generation ${generation}, ${Date.now() - started} ms)`,
    );
    this.active = { generation, jar, headers };
    return this.active;
  }

  /** A store written before `set` said whether it wrote: taken as written, said once. */
  private warnUnfenced(): void {
    if (this.warnedUnfenced) return;
    this.warnedUnfenced = true;
    this.options.logger?.warn(
      `The credential store of upstream "${this.name}" resolved set() without saying whether it ` +
        'wrote: it must resolve true, or false when the caller no longer holds the login lock',
    );
  }

  private warnLockLost(): void {
    this.options.logger?.warn(
      `The login lock of upstream "${this.name}" expired before its holder finished ` +
        `(lockTtl ${this.options.lockTtl} ms): raise lockTtl above loginTimeout plus a few store round trips`,
    );
  }

  /** Uses a stored credential newer than `stale`, if there is one and it is readable. */
  private adopt(record: SharedCredentialRecord | null, stale: number): ActiveCredential | null {
    if (!record?.credential || record.generation <= stale) return null;
    if (this.active?.generation === record.generation) return this.active;
    const credential = deserializeCredential(record.credential, record.generation);
    if (!credential) {
      this.options.logger?.warn(
        `The stored credential of upstream "${this.name}" is unreadable; logging in again`,
      );
      return null;
    }
    if (!this.active || credential.generation > this.active.generation) this.active = credential;
    return credential;
  }

  private assertNoBackoff(record: SharedCredentialRecord | null): void {
    const wait = (record?.retryAt ?? 0) - Date.now();
    if (wait > 0) {
      throw this.unavailable(
        'login-backoff',
        `a recent login failed; next attempt in ${wait} ms`,
        wait,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Login

  private async runLogin(): Promise<{ jar: CookieJar; headers: Array<readonly [string, string]> }> {
    const signal = AbortSignal.any([
      AbortSignal.timeout(this.options.loginTimeout),
      this.closing.signal,
    ]);
    const jar = new CookieJar();
    let lastStatus: number | undefined;
    const loginRequest = (
      method: string,
      path: string,
      options: SharedSessionRequestOptions = {},
    ): Promise<Response> => {
      if (!METHOD.test(method)) throw new TypeError('SharedSessionClient: invalid HTTP method');
      const url = this.resolveUrl(path, options.query, false);
      const credential = { generation: 0, jar, headers: [] };
      const sent = this.send(
        method.toUpperCase(),
        url,
        encodeBody(options.data),
        { ...options, signal: options.signal ? AbortSignal.any([options.signal, signal]) : signal },
        this.requestTimeout(options.timeout),
        credential,
      );
      return sent.then((response) => {
        lastStatus = response.status;
        return response;
      });
    };
    const withStatus = (detail: string) =>
      lastStatus === undefined ? detail : `${detail}; last login response: ${lastStatus}`;
    const context: SharedSessionLoginContext = {
      name: this.name,
      baseUrl: new URL(this.options.baseUrl),
      jar,
      signal,
      request: loginRequest,
      get: (path, options) => loginRequest('GET', path, options),
      post: (path, data, options) => loginRequest('POST', path, { ...options, data }),
    };

    const login = Promise.resolve().then(() => this.options.login(context));
    login.catch(() => undefined);
    let result: SharedSessionLoginResult | void;
    try {
      result = await untilAborted(login, signal);
    } catch (error) {
      if (this.closing.signal.aborted) throw new LoginFailure('the client was closed');
      if (signal.aborted) {
        throw new LoginFailure(withStatus(`timed out after ${this.options.loginTimeout} ms`));
      }
      throw new LoginFailure(withStatus(this.describeLoginError(error)));
    }

    const headers: Array<readonly [string, string]> = [];
    if (result && typeof result === 'object') {
      if (result.token !== undefined) {
        if (typeof result.token !== 'string' || !result.token) {
          throw new LoginFailure('it returned a token that is not a non-empty string');
        }
        headers.push(['authorization', `Bearer ${result.token}`]);
      }
      for (const [key, value] of Object.entries(result.headers ?? {})) {
        if (typeof value !== 'string') throw new LoginFailure('it returned a non-string header');
        headers.push([key.toLowerCase(), value]);
      }
      try {
        new Headers(headers as Array<[string, string]>);
      } catch {
        throw new LoginFailure('it returned an invalid header name or value');
      }
    }
    if (headers.length === 0 && !jarHasCookies(jar)) {
      throw new LoginFailure(withStatus('it yielded neither cookies nor a token'));
    }
    return { jar, headers };
  }

  /** A description of a failed login that cannot contain a credential. */
  private describeLoginError(error: unknown): string {
    if (error instanceof LoginFailure) return error.detail;
    if (error instanceof SharedSessionUnavailableException) return error.reason;
    const name = error instanceof Error ? error.name : typeof error;
    const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
    const code = typeof cause?.code === 'string' ? ` ${cause.code}` : '';
    return `login threw ${name}${code}`;
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP

  private async send(
    method: string,
    url: URL,
    body: EncodedBody,
    options: SharedSessionRequestOptions,
    timeout: number,
    credential: ActiveCredential,
  ): Promise<Response> {
    const headers = this.requestHeaders(options.headers, body);
    for (const [key, value] of credential.headers) headers.set(key, value);
    const cookies = await credential.jar.getCookieString(url.href);
    if (cookies) {
      const own = headers.get('cookie');
      headers.set('cookie', own ? `${own}; ${cookies}` : cookies);
    }
    const signals = [AbortSignal.timeout(timeout), this.closing.signal];
    if (options.signal) signals.push(options.signal);
    const response = await fetch(url, {
      method,
      headers,
      body: body.value,
      redirect: 'manual',
      signal: AbortSignal.any(signals),
    });
    // Upstreams that slide or rotate their cookies: keep this process's jar current.
    for (const setCookie of response.headers.getSetCookie()) {
      await credential.jar.setCookie(setCookie, url.href, { ignoreError: true });
    }
    return response;
  }

  /** The default, the caller's and the content-type headers. Throws a TypeError for invalid ones. */
  private requestHeaders(own: SharedSessionRequestOptions['headers'], body: EncodedBody): Headers {
    const headers = new Headers(this.options.headers);
    if (own) {
      let given: Headers;
      try {
        given = new Headers(own);
      } catch {
        // undici's message quotes the value, which may be a secret of the caller's.
        throw new TypeError('SharedSessionClient: invalid request header name or value');
      }
      given.forEach((value, key) => headers.set(key, value));
    }
    if (body.contentType && !headers.has('content-type')) {
      headers.set('content-type', body.contentType);
    }
    return headers;
  }

  private async isExpired(response: Response, method: string, url: URL): Promise<boolean> {
    const defaultExpired = isSessionExpiredByDefault(response, url, this.options.loginUrl);
    if (!this.options.isExpired) return defaultExpired;
    return !!(await this.options.isExpired(response, {
      method,
      url: new URL(url),
      defaultExpired,
    }));
  }

  private resolveUrl(
    path: string,
    query: SharedSessionRequestOptions['query'],
    sameOrigin: boolean,
  ): URL {
    if (typeof path !== 'string') throw new TypeError('SharedSessionClient: path must be a string');
    const base = this.options.baseUrl;
    const url = resolveUpstreamUrl(base, path);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SharedSessionConfigError(this.name, 'requests must use http or https');
    }
    if (sameOrigin && url.origin !== base.origin) {
      throw new SharedSessionConfigError(
        this.name,
        'a request URL must have the origin of baseUrl; the shared credential is never sent elsewhere',
      );
    }
    if (query) {
      const params = query instanceof URLSearchParams ? query : Object.entries(query);
      for (const [key, value] of params) {
        if (value !== undefined) url.searchParams.append(key, String(value));
      }
    }
    return url;
  }

  private requestTimeout(value: SharedSessionRequestOptions['timeout']): number {
    if (value === undefined) return this.options.timeout;
    const ms = parseDuration(value);
    if (ms === undefined) {
      throw new SharedSessionConfigError(this.name, 'timeout must be a positive duration');
    }
    return ms;
  }

  // ---------------------------------------------------------------------------------------------
  // Plumbing

  /** Runs one store operation within `storeTimeout`; failures become a 503 (logged, secret-free). */
  private async storeCall<T>(
    what: string,
    operation: (store: SharedCredentialStore) => Promise<T>,
  ): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        Promise.resolve().then(() => operation(this.options.store)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new StoreTimeout(this.options.storeTimeout)),
            this.options.storeTimeout,
          );
        }),
      ]);
    } catch (error) {
      // Only the error's kind: a store's message may quote what it was given, the credential included.
      const detail = error instanceof StoreTimeout ? error.message : describeStoreError(error);
      this.options.logger?.warn(
        `The credential store failed to ${what} for upstream "${this.name}": ${detail}`,
      );
      throw this.unavailable('store-unavailable', `the credential store failed to ${what}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sleeps, unless the client closes or the caller gives up first. */
  private async pause(ms: number, signal?: AbortSignal): Promise<void> {
    const signals = [this.closing.signal];
    if (signal) signals.push(signal);
    try {
      await sleep(ms, undefined, { signal: AbortSignal.any(signals) });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      this.assertOpen();
      throw error;
    }
  }

  private assertOpen(): void {
    if (this.closing.signal.aborted) throw this.unavailable('closed', 'the client is closed');
  }

  private unavailable(
    reason: SharedSessionFailureReason,
    detail: string,
    retryAfterMs?: number,
  ): SharedSessionUnavailableException {
    return new SharedSessionUnavailableException(this.name, reason, detail, retryAfterMs);
  }
}
