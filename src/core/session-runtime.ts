import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionCarrier } from './session-carrier.js';
import type { SessionLogger } from './session-logger.js';
import {
  SessionConflictError,
  SessionError,
  SessionLimitError,
  SessionLockTimeoutError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import type { SessionStore } from '../interfaces/session-store.interface.js';
import { SessionSealer } from '../transport/session-sealer.js';
import { SessionEvents } from './session-events.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { chunkName, chunkValue } from '../transport/cookie-chunks.js';
import { SessionCookieWriter, readCookieValues } from '../transport/session-cookie.js';
import { SessionCsrfTokens } from '../transport/csrf-token.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import { randomBase64url } from '../utils/random.js';
import { SessionLockLeases } from './session-lock-lease.js';
import type { SessionBackend } from './session-backend.js';
import { SealedBackend } from './sealed-backend.js';
import { StoreBackend } from './store-backend.js';
import { derivedKey } from './session-policy.js';
import { storeCall } from './store-call.js';

/**
 * The session runtime shared by the route hook, guard, decorators and service: resolved options,
 * the backend (a store, or sealed cookies), the token signer and the cookie writer. One per
 * `SessionModule`.
 */
export class SessionRuntime {
  readonly signer: SessionTokenSigner;
  /** Issues and checks the CSRF tokens bound to session ids. */
  readonly csrf: SessionCsrfTokens;
  /** Where sessions live: a store, or the cookie itself (sealed mode). */
  readonly backend: SessionBackend;
  readonly cookie: SessionCookieWriter;
  /** Lifecycle and security events, to `onEvent` and the log. */
  readonly events: SessionEvents;
  private warnedInsecure = false;
  /** Per-key FIFO of this process's requests waiting for a session lock. */
  private readonly lockQueues = new Map<string, Array<() => void>>();
  private leases: SessionLockLeases | undefined;

  /** The session store; none in `'sealed'` mode. */
  readonly store: SessionStore | undefined;

  /** The time, for every expiry decision: the module's `clock` (Date.now unless a test gives one). */
  readonly now: () => number;

  constructor(
    readonly options: ResolvedSessionOptions,
    store: SessionStore | undefined,
    /** Where warnings and events are logged (Nest's logger, adapted by the module). */
    private readonly logger: SessionLogger,
  ) {
    this.now = options.clock;
    this.signer = new SessionTokenSigner(options.secrets, options.cookie.name);
    this.csrf = new SessionCsrfTokens(options.secrets);
    this.cookie = new SessionCookieWriter(options.cookie);
    this.events = new SessionEvents(
      options.secrets[0],
      options.onEvent,
      options.logEvents === false ? undefined : this.logger,
      options.logEvents === true,
    );
    if (options.mode === 'sealed') {
      const sealer = new SessionSealer(options.secrets, options.cookie.name, options.sealCache);
      const sealed = { ...options, cookieName: options.cookie.name };
      this.backend = new SealedBackend(sealer, sealed, this.events, this.now);
    } else {
      if (!store) throw new TypeError('a store is required in store mode');
      this.store = store;
      const name = options.cookie.name;
      this.backend = new StoreBackend(store, name, this.signer, options, this.events, this.now);
    }
  }

  /** Whether a Cookie header carries the session cookie (eager loading skips requests without one). */
  presentsCookie(header: string | undefined): boolean {
    return header !== undefined && header.includes(`${this.options.cookie.name}=`);
  }

  /** A session settled as the response ended could not be saved: the response goes out as it was. */
  reportUnsaved(error: unknown): void {
    this.logger.error(
      `The session could not be saved as the response ended (it was used outside the route handler): ${
        error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      }`,
    );
  }

  /**
   * Takes the per-session lock: first in line among this process's requests (FIFO, no store
   * traffic while waiting), then the store's lock, which other instances see. Gives up with
   * `SessionLockTimeoutError` after `lockTimeout`. Resolves the owner token for {@link unlock}.
   */
  async lock(key: string): Promise<string> {
    const { store } = this;
    if (!store?.acquireLock || !store.releaseLock) {
      throw new SessionError(
        'SESSION_CONFIG_INVALID',
        'Session locking (@SessionLock or concurrency: "serialize") needs a store with acquireLock/releaseLock',
      );
    }
    const deadline = Date.now() + this.options.lockTimeout;
    await this.enqueue(key, deadline);
    const owner = randomBase64url(16);
    try {
      let delay = 2;
      const { lockTtl, lockTimeout } = this.options;
      const warn = (message: string) => this.logger.warn(message);
      const leases = (this.leases ??= new SessionLockLeases(store, { lockTtl, lockTimeout, warn }));
      while (!(await storeCall(() => leases.acquire(key, owner)))) {
        if (Date.now() >= deadline) throw waitEnded(leases.troubled(key));
        // Held by another instance: back off with jitter so waiters do not poll in step.
        await sleep(delay + randomInt(delay + 1));
        delay = Math.min(delay * 2, 50);
      }
      return owner;
    } catch (error) {
      this.dequeue(key);
      throw error;
    }
  }

  /**
   * A write under a lock refused as a conflict (the lock passed to another owner while this
   * request held it) while a lock call on that session failed lately: the outage's doing, so the
   * store's answer (503), as {@link lock} answers a wait that an outage ended.
   */
  fencedWriteFailure(error: unknown, key: string): unknown {
    return error instanceof SessionConflictError && this.leases?.troubled(key)
      ? new SessionStoreUnavailableError(error)
      : error;
  }

  /** Releases a lock taken with {@link lock}. Never throws: an unreleased lock expires after `lockTtl`. */
  async unlock(key: string, owner: string): Promise<void> {
    try {
      await (this.leases ? this.leases.release(key, owner) : this.store?.releaseLock?.(key, owner));
    } catch {
      this.logger.warn('A session lock could not be released; it expires after lockTtl.');
    } finally {
      this.dequeue(key);
    }
  }

  private enqueue(key: string, deadline: number): Promise<void> {
    const queue = this.lockQueues.get(key);
    if (!queue) {
      this.lockQueues.set(key, []);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          const index = queue.indexOf(waiter);
          if (index !== -1) queue.splice(index, 1);
          reject(waitEnded(this.leases?.troubled(key) ?? false));
        },
        Math.max(0, deadline - Date.now()),
      );
      queue.push(waiter);
    });
  }

  /** Hands the local slot to the next waiter, or frees it. */
  private dequeue(key: string): void {
    const queue = this.lockQueues.get(key);
    if (!queue) return;
    const next = queue.shift();
    if (next) next();
    else this.lockQueues.delete(key);
  }

  // --- maxSessionsPerUser (REV-3) ---------------------------------------------------------------

  /**
   * Runs a login of `user` under the user's lock (the store's lock on a key derived from the user
   * id, so across instances): the count, the write and the eviction of one login are one step
   * that no other login of the user interleaves with.
   */
  async withUserLock<R>(user: string, run: () => Promise<R>): Promise<R> {
    const key = derivedKey('user-limit', user);
    const owner = await this.lock(key);
    try {
      return await run();
    } finally {
      await this.unlock(key, owner);
    }
  }

  /** `'reject-new'`, before a login's write: throws `SessionLimitError` when the user is at the limit. */
  async checkSessionLimit(user: string): Promise<void> {
    const max = this.options.maxSessionsPerUser as number;
    if (this.options.maxSessionsPolicy !== 'reject-new') return;
    if ((await this.backend.sessionsOf(user)).length >= max) throw new SessionLimitError(max);
  }

  /**
   * `'evict-oldest'`, after a login's write: ends the user's other sessions beyond the limit, the
   * least recently active first; the session that logged in always stays. A store failure is
   * logged, not thrown: the login is stored and its cookie set, and the next login trims again.
   */
  async evictBeyondLimit(user: string, keep: string): Promise<void> {
    if (this.options.maxSessionsPolicy !== 'evict-oldest') return;
    const max = this.options.maxSessionsPerUser as number;
    try {
      const others = (await this.backend.sessionsOf(user)).filter((record) => record.key !== keep);
      const surplus = others
        .sort((a, b) => b.lastActiveAt - a.lastActiveAt || b.createdAt - a.createdAt)
        .slice(max - 1);
      await Promise.all(
        surplus.map(async ({ key }) => {
          await this.backend.invalidate(key);
          this.events.emit('revoked', { key, userId: user, reason: 'evicted' });
        }),
      );
    } catch (error) {
      if (!(error instanceof SessionStoreUnavailableError)) throw error;
      this.logger.warn(
        'Sessions over maxSessionsPerUser could not be ended (the store failed); the next login of the user trims them.',
      );
    }
  }

  /**
   * Whether a cookie can be set on this response: headers not yet sent, and `Secure` cookies only
   * over HTTPS (CK-2, with a warning). An explicit `save()` after headers were sent throws.
   */
  canSetCookie(http: SessionCarrier, explicit: boolean): boolean {
    if (http.headersSent()) {
      if (explicit) {
        throw new SessionError(
          'SESSION_HEADERS_SENT',
          'session.save() was called after the response headers were sent; save before writing the response',
        );
      }
      this.logger.warn(
        'The response was sent before the session was saved, so its cookie could not be set. ' +
          'In handlers that use @Res(), call `await session.save()` before writing the response.',
      );
      return false;
    }
    if (!this.cookie.secureFor(http.isSecure(this.options.trustProxy)).send) {
      if (!this.warnedInsecure) {
        this.warnedInsecure = true;
        this.logger.warn(
          'A Secure session cookie was not sent because the request came over plain HTTP. Serve over HTTPS, ' +
            "set 'trustProxy: true' behind a TLS-terminating proxy, or use cookie.secure: 'auto' / false in development.",
        );
      }
      return false;
    }
    return true;
  }

  /**
   * Sets the session cookie, split over `name`, `name.1`, … when there are several parts (sealed
   * mode with `cookieChunks`), and expires the numbered cookies the request had but no longer needs.
   */
  setCookies(
    http: SessionCarrier,
    parts: readonly string[],
    absoluteExpiresAt: number,
    now: number,
    maxAge: number | undefined,
  ): void {
    const { secure } = this.cookie.secureFor(http.isSecure(this.options.trustProxy));
    const name = this.cookie.name;
    for (let i = 0; i < parts.length; i++) {
      const cookieName = chunkName(name, i);
      const header = this.cookie.serialize(
        chunkValue(parts, i),
        secure,
        absoluteExpiresAt,
        now,
        cookieName,
        maxAge,
      );
      this.replaceSetCookie(http, cookieName, header);
    }
    this.clearChunks(http, parts.length, secure);
  }

  private clearChunks(http: SessionCarrier, keep: number, secure: boolean) {
    if (this.options.cookieChunks === 1) return;
    for (let i = Math.max(keep, 1); i < this.options.cookieChunks; i++) {
      const name = chunkName(this.cookie.name, i);
      if (readCookieValues(http.cookieHeader(), name).length > 0) {
        this.replaceSetCookie(http, name, this.cookie.serializeClear(secure, name));
      }
    }
  }

  /** Responses that depend on the session vary with the Cookie header (CK-12). */
  varyOnCookie(http: SessionCarrier): void {
    if (http.headersSent()) return;
    const vary = http.getHeader('vary');
    if (vary === undefined) http.setHeader('Vary', 'Cookie');
    else if (!/(^|,)\s*(cookie|\*)\s*(,|$)/i.test(String(vary)))
      http.setHeader('Vary', `${String(vary)}, Cookie`);
  }

  /** Expires the cookie in the browser, with the same name, path and domain (CK-10). */
  clearCookie(http: SessionCarrier): void {
    if (http.headersSent()) return;
    const { secure } = this.cookie.secureFor(http.isSecure(this.options.trustProxy));
    this.replaceSetCookie(http, this.cookie.name, this.cookie.serializeClear(secure));
    this.clearChunks(http, 0, secure);
  }

  private replaceSetCookie(http: SessionCarrier, name: string, header: string): void {
    const prefix = `${name}=`;
    const current = http.getHeader('set-cookie') as string | string[] | undefined;
    const others = (Array.isArray(current) ? current : current ? [String(current)] : []).filter(
      (value) => !value.startsWith(prefix),
    );
    http.setHeader('Set-Cookie', [...others, header]);
    // Responses that carry a session cookie must never be cached (CK-12).
    http.setHeader('Cache-Control', 'no-store');
  }
}

/**
 * A lock wait that ran out: 409 "busy", or 503 when a lock call on that session failed lately, so
 * that the lock in the way may be a leftover of the outage (see `SessionLockLeases.troubled`).
 */
function waitEnded(troubled: boolean): SessionError {
  return troubled
    ? new SessionStoreUnavailableError(
        new Error(
          "the session's lock may be left over from a store outage; it expires within a lease",
        ),
      )
    : new SessionLockTimeoutError();
}
