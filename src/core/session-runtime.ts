import { createHash, randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionCarrier } from './session-carrier.js';
import type { SessionLogger } from './session-logger.js';
import {
  SessionError,
  SessionGoneError,
  SessionLimitError,
  SessionLockTimeoutError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionWrite,
} from '../interfaces/session-store.interface.js';
import { SessionSealer, type SealedSession } from '../transport/session-sealer.js';
import { SessionEvents } from './session-events.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import {
  MAX_COOKIE_BYTES,
  SessionCookieWriter,
  readCookieValues,
} from '../transport/session-cookie.js';
import { SessionCsrfTokens } from '../transport/csrf-token.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import { IDLE_TIMEOUT_KEY, idleTimeoutOf } from '../utils/idle-timeout.js';
import { randomBase64url } from '../utils/random.js';
import { SessionLockLeases } from './session-lock-lease.js';

/** Marks the first of several numbered cookies: `<count>~<part>` (`~` is not base64url). */
const CHUNK_MARK = '~';
/** Room kept in each chunk cookie for its `.N` name suffix and the count mark. */
const CHUNK_OVERHEAD = 8;

/**
 * The session runtime shared by the route hook, guard, decorators and service: resolved options,
 * the store, the token signer and the cookie writer. One per `SessionModule`.
 */
export class SessionRuntime {
  readonly signer: SessionTokenSigner;
  /** Issues and checks the CSRF tokens bound to session ids. */
  readonly csrf: SessionCsrfTokens;
  /** Present in `'sealed'` mode only. */
  readonly sealer: SessionSealer | undefined;
  readonly cookie: SessionCookieWriter;
  /** Lifecycle and security events, to `onEvent` and the log. */
  readonly events: SessionEvents;
  private warnedInsecure = false;
  /** Per-key FIFO of this process's requests waiting for a session lock. */
  private readonly lockQueues = new Map<string, Array<() => void>>();
  private leases: SessionLockLeases | undefined;

  /** The session store; in `'sealed'` mode a stand-in that refuses server-side operations. */
  readonly store: SessionStore;

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
      this.sealer = new SessionSealer(options.secrets, options.cookie.name);
      this.store = SEALED_MODE_STORE;
    } else {
      if (!store) throw new TypeError('a store is required in store mode');
      this.store = store;
    }
  }

  // --- sealed mode: revocation ------------------------------------------------------------------

  /**
   * Whether a sealed session was revoked: its id is on the deny list, or its user was logged out
   * everywhere after it was sealed. One parallel round trip; store errors fail closed (FAIL-5).
   */
  async isRevoked(session: SealedSession): Promise<boolean> {
    const store = this.options.revocationStore;
    if (!store) return false;
    const [denied, user] = await Promise.all([
      this.storeCall(() => store.load(denyKey(session.id))),
      session.userId === null
        ? null
        : this.storeCall(() => store.load(notBeforeKey(session.userId as string))),
    ]);
    if (denied) return true;
    if (!user) return false;
    const notBefore = Number(JSON.parse(user.data.notBefore ?? '0'));
    const keep = JSON.parse(user.data.keep ?? '[]') as unknown;
    return session.sealedAt < notBefore && !(Array.isArray(keep) && keep.includes(session.id));
  }

  /**
   * Puts a sealed session's id on the deny list until it would have expired anyway. A session with a
   * user is denied until its absolute expiry, with a record that is never evicted (`retain`). An
   * anonymous one opens nothing of a user's: its record lives only as long as a copy of its cookie
   * could (`anonymousIdleTimeout` from now) and may be evicted, so a flood of anonymous logouts can
   * neither pile up nor push out the records that matter.
   */
  async revoke(id: string, anonymous: boolean, absoluteExpiresAt: number): Promise<void> {
    const store = this.requireRevocation();
    if (!anonymous) {
      await this.upsert(store, denyKey(id), { denied: true }, absoluteExpiresAt, true);
      return;
    }
    const until = Math.min(this.now() + this.options.anonymousIdleTimeout, absoluteExpiresAt);
    await this.upsert(store, denyKey(id), { denied: true }, until, false);
  }

  /** Revokes every sealed session of a user sealed before now, except the listed ids. */
  async revokeUser(userId: string, except: readonly string[]): Promise<void> {
    const store = this.requireRevocation();
    const now = this.now();
    const data = { notBefore: now, keep: except };
    // Sessions sealed before now expire within absoluteTimeout; the record is useless after that.
    await this.upsert(store, notBeforeKey(userId), data, now + this.options.absoluteTimeout, true);
  }

  private requireRevocation(): SessionStore {
    const store = this.options.revocationStore;
    if (!store) {
      throw new SessionError(
        'SESSION_UNSUPPORTED',
        "Revoking sealed sessions needs 'revocationStore'; without it a copied cookie works until it expires",
      );
    }
    return store;
  }

  private async upsert(
    store: SessionStore,
    key: string,
    data: Record<string, unknown>,
    until: number,
    retain: boolean,
  ): Promise<void> {
    const now = this.now();
    const set: Record<string, string> = {};
    for (const field of Object.keys(data)) set[field] = JSON.stringify(data[field]);
    const write = {
      key,
      set,
      unset: [],
      retain,
      userId: null,
      createdAt: now,
      lastActiveAt: now,
      expiresAt: until,
      absoluteExpiresAt: until,
    };
    try {
      await this.storeCall(() => store.save({ ...write, kind: 'create' }));
    } catch (error) {
      if (!(error instanceof SessionGoneError)) throw error;
      await this.storeCall(() => store.save({ ...write, kind: 'update' }));
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
    if (!store.acquireLock || !store.releaseLock) {
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
      while (!(await this.storeCall(() => leases.acquire(key, owner)))) {
        if (Date.now() >= deadline) throw new SessionLockTimeoutError();
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

  /** Releases a lock taken with {@link lock}. Never throws: an unreleased lock expires after `lockTtl`. */
  async unlock(key: string, owner: string): Promise<void> {
    try {
      await (this.leases ? this.leases.release(key, owner) : this.store.releaseLock?.(key, owner));
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
          reject(new SessionLockTimeoutError());
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

  /** Every value of our cookie in the request (duplicates come from cookie tossing, CK-15). */
  cookieValues(http: SessionCarrier): string[] {
    return readCookieValues(http.cookieHeader(), this.options.cookie.name);
  }

  /**
   * Loads a record and applies the server's own expiry rules, whatever the store's TTL did (TO-3):
   * an expired record is deleted and reported as absent.
   */
  async loadLive(key: string, presented = false): Promise<SessionRecord | null> {
    return this.live(key, await this.storeCall(() => this.store.load(key)), presented);
  }

  /**
   * {@link loadLive} without a promise when the store answers synchronously (`loadSync`) and the
   * record is live.
   */
  loadLiveNow(
    key: string,
    presented = false,
  ): SessionRecord | null | Promise<SessionRecord | null> {
    const { store } = this;
    if (!store.loadSync) return this.loadLive(key, presented);
    let record: SessionRecord | null;
    try {
      record = store.loadSync(key);
    } catch (error) {
      return Promise.reject(storeFailure(error));
    }
    return this.live(key, record, presented);
  }

  /**
   * The record if it is live by the server's rules; an expired one is deleted first. `presented`:
   * the key came from a correctly signed cookie, so a missing record is reported (`invalid`).
   */
  private live(
    key: string,
    record: SessionRecord | null,
    presented: boolean,
  ): SessionRecord | null | Promise<null> {
    if (!record) {
      // Expired in the store, destroyed, revoked or evicted: the store cannot say which.
      if (presented) this.events.emit('invalid', { key, reason: 'unknown' });
      return null;
    }
    const now = this.now();
    if (!this.isExpired(record, now)) return record;
    this.expired(record, now);
    return this.storeCall(() => this.store.destroy(key)).then(() => null);
  }

  /** Reports a session presented after its expiry (`expired` event). */
  expired(record: SessionRecord, now: number): void {
    this.events.emit('expired', {
      key: record.key,
      userId: record.userId,
      reason: now >= record.absoluteExpiresAt ? 'absolute' : 'idle',
    });
  }

  /** Saves a write: at once when the store can (`saveSync`, returns `undefined`), else a promise. */
  saveNow(write: SessionWrite): Promise<void> | undefined {
    const { store } = this;
    if (!store.saveSync) return this.storeCall(() => store.save(write));
    try {
      store.saveSync(write);
    } catch (error) {
      throw storeFailure(error);
    }
    return undefined;
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
    if ((await this.liveSessionsOf(user)).length >= max) throw new SessionLimitError(max);
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
      const others = (await this.liveSessionsOf(user)).filter((record) => record.key !== keep);
      const surplus = others
        .sort((a, b) => b.lastActiveAt - a.lastActiveAt || b.createdAt - a.createdAt)
        .slice(max - 1);
      await Promise.all(
        surplus.map(async ({ key }) => {
          await this.storeCall(() => this.store.destroy(key));
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

  /** The user's live sessions, in no particular order. */
  async liveSessionsOf(user: string): Promise<SessionRecord[]> {
    const now = this.now();
    const records = await this.storeCall(() => this.store.listForUser(user));
    return records.filter((record) => !this.isExpired(record, now));
  }

  isExpired(record: SessionRecord, now: number): boolean {
    const { idleTimeout, anonymousIdleTimeout, absoluteTimeout } = this.options;
    let idle = idleTimeoutOf(record.data[IDLE_TIMEOUT_KEY], idleTimeout);
    if (record.userId === null && anonymousIdleTimeout < idle) idle = anonymousIdleTimeout;
    return (
      now >= record.expiresAt ||
      now >= record.absoluteExpiresAt ||
      now >= record.createdAt + absoluteTimeout ||
      now >= record.lastActiveAt + idle
    );
  }

  /** Runs a store call; failures that are not `SessionError`s become `SessionStoreUnavailableError`. */
  async storeCall<R>(call: () => Promise<R>): Promise<R> {
    try {
      return await call();
    } catch (error) {
      throw storeFailure(error);
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
  ): void {
    const { secure } = this.cookie.secureFor(http.isSecure(this.options.trustProxy));
    const name = this.cookie.name;
    parts.forEach((part, i) => {
      const value = i === 0 && parts.length > 1 ? `${parts.length}${CHUNK_MARK}${part}` : part;
      const chunkName = i === 0 ? name : `${name}.${i}`;
      this.replaceSetCookie(
        http,
        chunkName,
        this.cookie.serialize(value, secure, absoluteExpiresAt, now, chunkName),
      );
    });
    this.clearChunks(http, parts.length, secure);
  }

  /**
   * Sealed mode: the sealed values in the request, joined back together when the cookie was split
   * (`cookieChunks`). A missing part makes the value unusable, never an error.
   */
  sealedValues(http: SessionCarrier): string[] {
    const values = this.cookieValues(http);
    if (this.options.cookieChunks === 1) return values;
    const header = http.cookieHeader();
    const joined: string[] = [];
    for (const value of values) {
      const mark = value.indexOf(CHUNK_MARK);
      const count = mark > 0 ? Number(value.slice(0, mark)) : 1;
      if (!Number.isInteger(count) || count < 1 || count > this.options.cookieChunks) continue;
      let whole = count === 1 ? value : value.slice(mark + 1);
      for (let i = 1; i < count && whole; i++) {
        const part = readCookieValues(header, `${this.cookie.name}.${i}`)[0];
        whole = part ? whole + part : '';
      }
      if (whole) joined.push(whole);
    }
    return joined;
  }

  /**
   * Splits a sealed value into cookie-sized parts, or `undefined` when it needs more than
   * `cookieChunks` cookies of 4096 bytes (CK-8).
   */
  cookieParts(value: string): string[] | undefined {
    const room = MAX_COOKIE_BYTES - Buffer.byteLength(this.cookie.name) - CHUNK_OVERHEAD;
    if (value.length <= room + CHUNK_OVERHEAD - 1) return [value];
    const count = Math.ceil(value.length / room);
    if (count > this.options.cookieChunks) return undefined;
    return Array.from({ length: count }, (_, i) => value.slice(i * room, (i + 1) * room));
  }

  private clearChunks(http: SessionCarrier, keep: number, secure: boolean) {
    if (this.options.cookieChunks === 1) return;
    for (let i = Math.max(keep, 1); i < this.options.cookieChunks; i++) {
      const chunkName = `${this.cookie.name}.${i}`;
      if (readCookieValues(http.cookieHeader(), chunkName).length > 0) {
        this.replaceSetCookie(http, chunkName, this.cookie.serializeClear(secure, chunkName));
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
 * A store call's error as the runtime reports it: session errors (gone, conflict, not
 * serializable…) say what happened; anything else is the backend failing.
 */
function storeFailure(error: unknown): SessionError {
  return error instanceof SessionError ? error : new SessionStoreUnavailableError(error);
}

function derivedKey(kind: string, value: string): string {
  return createHash('sha256').update(`nestjs-sessions:${kind}:${value}`).digest('base64url');
}
const denyKey = (id: string) => derivedKey('deny', id);
const notBeforeKey = (userId: string) => derivedKey('not-before', userId);

function unsupported(): never {
  throw new SessionError(
    'SESSION_UNSUPPORTED',
    "Sessions in 'sealed' mode live only in their cookies: they cannot be listed, read or changed by id",
  );
}

/** The store of `'sealed'` mode: there is none, so server-side operations say why they cannot work. */
const SEALED_MODE_STORE: SessionStore = {
  load: async () => unsupported(),
  save: async () => unsupported(),
  touch: async () => unsupported(),
  destroy: async () => unsupported(),
  listForUser: async () => unsupported(),
  destroyForUser: async () => unsupported(),
  checkHealth: async (): Promise<SessionStoreHealth> => ({ ok: true, store: 'sealed cookie' }),
};
