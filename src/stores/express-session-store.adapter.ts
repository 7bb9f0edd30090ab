import { randomBytes } from 'node:crypto';
import {
  SessionConflictError,
  SessionGoneError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';
import { parseDuration } from '../utils/duration.js';
import { sha256Text } from '../utils/sha256.js';

/** Node-style callback of the express-session store API. */
export type ExpressSessionStoreCallback<T = unknown> = (error?: unknown, value?: T) => void;

/**
 * The part of the express-session / connect store API the adapter uses: `get`, `set` and
 * `destroy` with callbacks (`touch`, `all`, `clear`… are not needed). Every store written for
 * express-session has them: connect-redis, connect-mongo, connect-pg-simple, express-session's
 * own `MemoryStore`…
 */
export interface ExpressSessionStoreLike {
  get(sid: string, callback: ExpressSessionStoreCallback<unknown>): unknown;
  set(sid: string, session: object, callback?: ExpressSessionStoreCallback): unknown;
  destroy(sid: string, callback?: ExpressSessionStoreCallback): unknown;
}

/** Options of {@link ExpressSessionStoreAdapter}. */
export interface ExpressSessionStoreAdapterOptions {
  /**
   * Longest wait for one call of the wrapped store, in milliseconds or as a duration string. A call
   * that does not call back in time rejects, and the library answers 503 instead of hanging.
   * @default 2000
   */
  timeout?: number | string;
  /**
   * A short, secret-free name for health reports.
   * @default the wrapped store's class name, e.g. `'RedisStore'`
   */
  name?: string;
}

/** What the adapter keeps in each express-session record, under {@link PAYLOAD}. */
interface StoredSession {
  v: 1;
  /** Top-level keys and their JSON text, as pairs: no object key can touch a prototype. */
  data: [string, string][];
  userId: string | null;
  createdAt: number;
  lastActiveAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
  version: number;
}

interface StoredIndex {
  v: 1;
  /** Storage keys of the user's sessions with their absolute expiry. */
  keys: [string, number][];
}

/** The adapter's fields inside the objects handed to the wrapped store. */
const PAYLOAD = 'nestjsSessions';
const INDEX_PAYLOAD = 'nestjsSessionsUserIndex';
/** Storage keys are base64url hashes; index records use a `.`, which base64url never contains. */
const STORAGE_KEY = /^[A-Za-z0-9_-]{1,128}$/;
const DEFAULT_TIMEOUT = 2000;

/** One FIFO lock per key, for this process only. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Takes the locks of all `keys` (in a fixed order, so two callers cannot deadlock). */
  async lock(keys: readonly string[]): Promise<() => void> {
    const releases: Array<() => void> = [];
    for (const key of [...new Set(keys)].sort()) releases.push(await this.lockOne(key));
    return () => releases.reverse().forEach((release) => release());
  }

  private async lockOne(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}

/**
 * Runs any express-session / connect store (connect-redis, connect-mongo, connect-pg-simple, …) as
 * a {@link SessionStore}, so the whole ecosystem of stores works with this library.
 *
 * Each session is one express-session record keyed by the storage key (a hash of the token, never
 * the token): `{ cookie: { expires, originalMaxAge }, nestjsSessions: { data, userId, times…,
 * version } }`. `cookie.expires` is the session's `expiresAt`, which is what those stores use for
 * their TTL. A user's sessions are listed in a small extra record, `user.<SHA-256 of the user id>`,
 * in the same store.
 *
 * **Weaker guarantees than the built-in stores**, because the express-session API has only
 * whole-record `get` / `set` / `destroy`:
 * - Every save is a read-modify-write of the whole record (two or three calls, plus the user-index
 *   record when the user changes), not one atomic step. Within one process the adapter serializes
 *   the calls of each session, so the whole store contract holds there; **across processes it
 *   does not**: two instances changing different keys of one session at the same moment can lose
 *   one change (ST-2), a session destroyed by one instance while another is saving can come back
 *   (LC-6 best effort), two concurrent regenerates can both succeed (LC-7 best effort), and
 *   optimistic checks (`concurrency: 'optimistic'`) are best effort too.
 * - No per-session locks: `concurrency: 'serialize'` and `@SessionLock()` need a built-in store.
 * - The user index is a read-modify-write record: concurrent logins of one user on different
 *   instances can drop an index entry, and such a session is then missed by "log out everywhere"
 *   until it expires. Entries of dead sessions are pruned when read.
 * - Expiry is checked on every read (TO-3) whatever the wrapped store's TTL does.
 *
 * Use `RedisSessionStore` or `PostgresSessionStore` when you run more than one instance.
 *
 * @example
 * import { RedisStore } from 'connect-redis';
 * import { ExpressSessionStoreAdapter, SessionModule } from 'nestjs-sessions';
 *
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET,
 *   store: new ExpressSessionStoreAdapter(new RedisStore({ client: redisClient, prefix: 'myapp:' })),
 * });
 */
export class ExpressSessionStoreAdapter implements SessionStore {
  /** Per-call timeout in milliseconds. */
  readonly timeout: number;
  private readonly name: string;
  private readonly mutex = new KeyedMutex();

  /**
   * @param store - an express-session store instance (anything with callback-style `get`, `set`,
   *   `destroy`)
   * @throws TypeError when `store` lacks those methods or `timeout` is malformed
   */
  constructor(
    private readonly store: ExpressSessionStoreLike,
    options: ExpressSessionStoreAdapterOptions = {},
  ) {
    if (
      !store ||
      typeof store.get !== 'function' ||
      typeof store.set !== 'function' ||
      typeof store.destroy !== 'function'
    ) {
      throw new TypeError(
        'ExpressSessionStoreAdapter: pass an express-session store (with get, set and destroy)',
      );
    }
    const timeout =
      options.timeout === undefined ? DEFAULT_TIMEOUT : parseDuration(options.timeout);
    if (timeout === undefined) {
      throw new TypeError(
        "ExpressSessionStoreAdapter: timeout must be a positive duration such as 2000 or '2s'",
      );
    }
    this.timeout = timeout;
    this.name = options.name ?? (store.constructor?.name || 'express-session store');
  }

  /** One `get`. `null` for a missing, foreign or expired record (TO-3). */
  async load(key: string): Promise<SessionRecord | null> {
    if (!STORAGE_KEY.test(key)) return null;
    const stored = await this.getSession(key);
    return stored && toRecord(key, stored);
  }

  /**
   * Read-modify-write of the whole record (`get`, then `set`; plus `destroy` of the old key on
   * regenerate and the user-index record when the user changes), serialized per session within
   * this process.
   * @throws SessionGoneError when a create finds a live record or an update finds none
   * @throws SessionConflictError when a value listed in `write.expect` changed (best effort)
   * @throws SessionStoreUnavailableError when the wrapped store fails or times out
   */
  async save(write: SessionWrite): Promise<void> {
    const from = write.previousKey ?? write.key;
    if (!STORAGE_KEY.test(write.key) || !STORAGE_KEY.test(from)) {
      throw new TypeError('ExpressSessionStoreAdapter: storage keys must be base64url hashes');
    }
    const release = await this.mutex.lock([from, write.key]);
    try {
      let next: StoredSession;
      let previousUser: string | null = null;
      if (write.kind === 'create') {
        if (await this.getSession(write.key)) throw new SessionGoneError();
        next = {
          v: 1,
          data: [],
          userId: null,
          createdAt: write.createdAt,
          lastActiveAt: write.lastActiveAt,
          expiresAt: write.expiresAt,
          absoluteExpiresAt: write.absoluteExpiresAt,
          version: 0,
        };
      } else {
        const current = await this.getSession(from);
        if (!current) throw new SessionGoneError();
        if (write.expect) {
          const data = new Map(current.data);
          for (const field of Object.keys(write.expect)) {
            if ((data.get(field) ?? null) !== write.expect[field]) throw new SessionConflictError();
          }
        }
        if (from !== write.key && (await this.getSession(write.key))) throw new SessionGoneError();
        next = current;
        previousUser = current.userId;
      }
      const data = new Map(write.replace ? [] : next.data);
      for (const field of write.unset) data.delete(field);
      for (const field of Object.keys(write.set)) data.set(field, write.set[field]);
      next = {
        ...next,
        data: [...data],
        userId: write.userId,
        lastActiveAt: write.lastActiveAt,
        expiresAt: write.expiresAt,
        absoluteExpiresAt: write.absoluteExpiresAt,
        version: next.version + 1,
      };
      // Index first: a session must never exist unlisted ("log out everywhere" would miss it).
      if (write.userId !== null)
        await this.indexAdd(write.userId, write.key, write.absoluteExpiresAt);
      await this.call((cb) => this.store.set(write.key, envelope(next), cb));
      if (from !== write.key) await this.call((cb) => this.store.destroy(from, cb));
      if (previousUser !== null && (previousUser !== write.userId || from !== write.key)) {
        await this.indexRemove(previousUser, [from]);
      }
    } finally {
      release();
    }
  }

  /** Rewrites the record with new activity times (express-session's `touch` cannot store them). */
  async touch(key: string, times: SessionTimes): Promise<boolean> {
    if (!STORAGE_KEY.test(key)) return false;
    const release = await this.mutex.lock([key]);
    try {
      const current = await this.getSession(key);
      if (!current) return false;
      const next: StoredSession = {
        ...current,
        lastActiveAt: times.lastActiveAt,
        expiresAt: Math.min(times.expiresAt, current.absoluteExpiresAt),
      };
      await this.call((cb) => this.store.set(key, envelope(next), cb));
      return true;
    } finally {
      release();
    }
  }

  /** Deletes the record and its user-index entry. */
  async destroy(key: string): Promise<void> {
    if (!STORAGE_KEY.test(key)) return;
    const release = await this.mutex.lock([key]);
    try {
      const current = await this.getSession(key, true);
      await this.call((cb) => this.store.destroy(key, cb));
      if (current?.userId != null) await this.indexRemove(current.userId, [key]);
    } finally {
      release();
    }
  }

  /** Reads the user's index record and each listed session; prunes entries that are dead. */
  async listForUser(userId: string): Promise<SessionRecord[]> {
    const keys = (await this.getIndex(userId)).keys.map(([key]) => key);
    const records = await Promise.all(keys.map((key) => this.load(key)));
    const live: SessionRecord[] = [];
    const stale: string[] = [];
    records.forEach((record, i) => {
      if (record && record.userId === userId) live.push(record);
      else stale.push(keys[i]);
    });
    if (stale.length > 0) await this.indexRemove(userId, stale);
    return live;
  }

  /** Deletes each session in the user's index record except `exceptKeys`; resolves how many were live. */
  async destroyForUser(userId: string, exceptKeys: readonly string[] = []): Promise<number> {
    const keys = (await this.getIndex(userId)).keys
      .map(([key]) => key)
      .filter((key) => !exceptKeys.includes(key));
    let count = 0;
    for (const key of keys) {
      const release = await this.mutex.lock([key]);
      try {
        const current = await this.getSession(key, true);
        if (current && current.userId === userId) {
          if (current.expiresAt > Date.now()) count++;
          await this.call((cb) => this.store.destroy(key, cb));
        }
      } finally {
        release();
      }
    }
    if (keys.length > 0) await this.indexRemove(userId, keys);
    return count;
  }

  /**
   * Reads a key that never exists, so the wrapped store must reach its backend: `ok` when it
   * answers within `timeout`. Resolves (never rejects) with a secret-free report.
   */
  async checkHealth(): Promise<SessionStoreHealth> {
    const started = Date.now();
    try {
      await this.call((cb) => this.store.get(`health.${randomBytes(8).toString('hex')}`, cb));
      return {
        ok: true,
        store: `express-session adapter (${this.name})`,
        details: { latencyMs: Date.now() - started },
      };
    } catch (error) {
      const cause = error instanceof SessionStoreUnavailableError ? error.cause : error;
      return {
        ok: false,
        store: `express-session adapter (${this.name})`,
        details: { error: cause instanceof Error ? cause.name : 'error' },
      };
    }
  }

  // --- internals ----------------------------------------------------------------------------

  /** The live stored session, or `null` (absent, not ours, or expired: TO-3). */
  private async getSession(key: string, includeExpired = false): Promise<StoredSession | null> {
    const raw = await this.call<unknown>((cb) => this.store.get(key, cb));
    const stored = parseStored(raw);
    if (!stored) return null;
    if (!includeExpired && stored.expiresAt <= Date.now()) return null;
    return stored;
  }

  private indexSid(userId: string): string {
    return `user.${sha256Text(userId)}`;
  }

  private async getIndex(userId: string): Promise<StoredIndex> {
    const raw = await this.call<unknown>((cb) => this.store.get(this.indexSid(userId), cb));
    const index = (raw as Record<string, unknown> | null | undefined)?.[INDEX_PAYLOAD] as
      StoredIndex | undefined;
    if (!index || index.v !== 1 || !Array.isArray(index.keys)) return { v: 1, keys: [] };
    const keys = index.keys.filter(
      (entry): entry is [string, number] =>
        Array.isArray(entry) &&
        typeof entry[0] === 'string' &&
        STORAGE_KEY.test(entry[0]) &&
        typeof entry[1] === 'number',
    );
    return { v: 1, keys };
  }

  private async indexAdd(userId: string, key: string, absoluteExpiresAt: number): Promise<void> {
    await this.updateIndex(userId, (keys) => keys.set(key, absoluteExpiresAt));
  }

  private async indexRemove(userId: string, remove: readonly string[]): Promise<void> {
    await this.updateIndex(userId, (keys) => remove.forEach((key) => keys.delete(key)));
  }

  private async updateIndex(
    userId: string,
    change: (keys: Map<string, number>) => void,
  ): Promise<void> {
    const sid = this.indexSid(userId);
    const release = await this.mutex.lock([sid]);
    try {
      const now = Date.now();
      const stored = (await this.getIndex(userId)).keys;
      const keys = new Map(stored.filter(([, until]) => until > now));
      change(keys);
      // Saves re-add their entry every time (which repairs one lost to a cross-instance race), so
      // skip the write when nothing changed.
      const same =
        keys.size === stored.length && stored.every(([key, until]) => keys.get(key) === until);
      if (same) return;
      if (keys.size === 0) {
        await this.call((cb) => this.store.destroy(sid, cb));
        return;
      }
      const until = Math.max(...keys.values());
      const record = { cookie: cookieFor(until, now), [INDEX_PAYLOAD]: { v: 1, keys: [...keys] } };
      await this.call((cb) => this.store.set(sid, record, cb));
    } finally {
      release();
    }
  }

  /**
   * Calls the wrapped store with a callback, bounded by `timeout`. Errors, throws and timeouts
   * reject with `SessionStoreUnavailableError`.
   */
  private call<T>(invoke: (callback: ExpressSessionStoreCallback<T>) => unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (error: unknown, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(new SessionStoreUnavailableError(error));
        else resolve(value as T);
      };
      const timer = setTimeout(
        () => finish(new Error(`${this.name} did not answer within ${this.timeout} ms`)),
        this.timeout,
      );
      try {
        const returned = invoke((error, value) => finish(error ?? null, value));
        // Some stores also return a promise; its rejection must not go unhandled.
        if (returned && typeof (returned as Promise<unknown>).then === 'function') {
          (returned as Promise<unknown>).then(undefined, (error: unknown) =>
            finish(error ?? new Error('rejected')),
          );
        }
      } catch (error) {
        finish(error ?? new Error('threw'));
      }
    });
  }
}

function cookieFor(expiresAt: number, now: number): { expires: Date; originalMaxAge: number } {
  return { expires: new Date(expiresAt), originalMaxAge: Math.max(0, expiresAt - now) };
}

function envelope(session: StoredSession): object {
  return { cookie: cookieFor(session.expiresAt, Date.now()), [PAYLOAD]: session };
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The adapter's payload of a stored record, validated; `null` for anything else. */
function parseStored(raw: unknown): StoredSession | null {
  if (!raw || typeof raw !== 'object') return null;
  const s = (raw as Record<string, unknown>)[PAYLOAD] as Partial<StoredSession> | undefined;
  if (
    !s ||
    s.v !== 1 ||
    !Array.isArray(s.data) ||
    !isFiniteNumber(s.createdAt) ||
    !isFiniteNumber(s.lastActiveAt) ||
    !isFiniteNumber(s.expiresAt) ||
    !isFiniteNumber(s.absoluteExpiresAt) ||
    !isFiniteNumber(s.version) ||
    (s.userId !== null && typeof s.userId !== 'string')
  ) {
    return null;
  }
  const data = s.data.filter(
    (pair): pair is [string, string] =>
      Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string',
  );
  return {
    v: 1,
    data,
    userId: s.userId ?? null,
    createdAt: s.createdAt,
    lastActiveAt: s.lastActiveAt,
    expiresAt: s.expiresAt,
    absoluteExpiresAt: s.absoluteExpiresAt,
    version: s.version,
  };
}

function toRecord(key: string, stored: StoredSession): SessionRecord {
  return {
    key,
    // fromEntries defines own properties: a `__proto__` session key stays plain data (IN-2).
    data: Object.fromEntries(stored.data),
    userId: stored.userId,
    createdAt: stored.createdAt,
    lastActiveAt: stored.lastActiveAt,
    expiresAt: stored.expiresAt,
    absoluteExpiresAt: stored.absoluteExpiresAt,
    version: stored.version,
  };
}
