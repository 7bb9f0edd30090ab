import { SessionConfigError, SessionConflictError, SessionGoneError } from '../session.errors.js';
import { lockLostError } from './lock-fencing.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';
import { setOwn } from '../utils/own-property.js';

/** Options of {@link MemorySessionStore}. */
export interface MemorySessionStoreOptions {
  /**
   * Most sessions kept. Past it a session is evicted to make room: one without a user first (the
   * least recently used of those, by the CLOCK approximation), a user's only when no anonymous
   * session is left, so anonymous traffic cannot push out a logged-in session while those fit.
   * Records written with `retain` (revocation records) are never evicted: when only they are left,
   * the write is refused (503) rather than one forgotten.
   * @default 10000
   */
  maxSessions?: number;
  /** How often expired sessions are swept, in milliseconds. @default 60000 */
  sweepInterval?: number;
  /**
   * The time source for expiry, in milliseconds since the epoch; give it the module's `clock` in
   * tests that move time forward. Locks always use real time.
   * @default Date.now
   */
  clock?: () => number;
}

/**
 * One session. A class, so V8 gives every entry the same compact in-object layout; the data is one
 * string (see {@link encodeFields}) rather than an array of strings, which keeps 100 000 sessions
 * smaller than express-session's MemoryStore keeps them and a lookup to a couple of cache lines.
 */
class Entry {
  /** Read or written since the evictor last passed it (CLOCK, an approximation of LRU). */
  used = false;
  /** Never evicted to make room (a revocation record). */
  retain = false;
  version = 0;
  userId: string | null = null;

  constructor(
    /** The session's keys and JSON texts, encoded by {@link encodeFields}. */
    public data: string,
    public createdAt: number,
    public lastActiveAt: number,
    public expiresAt: number,
    public absoluteExpiresAt: number,
  ) {}
}

/**
 * A session's keys and JSON texts as one flat string: each key, then its text, as its length in
 * decimal, `:`, itself. No separator can be confused with the content, whatever a key or a text holds.
 */
function encodeFields(data: Record<string, string>): string {
  const parts: string[] = [];
  for (const name of Object.keys(data)) pushField(parts, name, data[name]);
  // join() builds one flat string, where += would leave a tree of pieces behind.
  return parts.join('');
}

/** Where {@link nextPart} reads next. */
let cursor = 0;

/** The part of an encoded string at `cursor`; moves `cursor` past it. */
function nextPart(encoded: string): string {
  const start = skipPart(encoded);
  return encoded.slice(start, cursor);
}

/** Moves `cursor` past the part of an encoded string there; returns where its content starts. */
function skipPart(encoded: string): number {
  let length = 0;
  let code: number;
  while ((code = encoded.charCodeAt(cursor++)) !== 58 /* : */) length = length * 10 + code - 48;
  const start = cursor;
  cursor += length;
  return start;
}

/** The session data of an {@link encodeFields} string: key → JSON text. */
function decodeFields(encoded: string): Record<string, string> {
  const data: Record<string, string> = {};
  cursor = 0;
  while (cursor < encoded.length) {
    const name = nextPart(encoded);
    setOwn(data, name, nextPart(encoded));
  }
  return data;
}

/**
 * An {@link encodeFields} string with a write's changes applied, without decoding it: each field the
 * write leaves alone is copied as it is, a changed one gets its new text, a removed one is left out,
 * and new ones follow (found by a second scan, only when the write adds a key).
 */
function applyFields(
  encoded: string,
  set: Record<string, string>,
  unset: readonly string[],
): string {
  const parts: string[] = [];
  const names = Object.keys(set);
  const removed = unset.length > 0 ? new Set(unset) : undefined;
  let replaced = 0;
  cursor = 0;
  while (cursor < encoded.length) {
    const start = cursor;
    const name = nextPart(encoded);
    skipPart(encoded);
    if (Object.hasOwn(set, name)) {
      pushField(parts, name, set[name]);
      replaced++;
    } else if (!removed?.has(name)) {
      parts.push(encoded.slice(start, cursor));
    }
  }
  if (replaced < names.length) {
    const present = fieldNames(encoded);
    for (const name of names) if (!present.has(name)) pushField(parts, name, set[name]);
  }
  return parts.join('');
}

function pushField(parts: string[], name: string, text: string): void {
  parts.push(`${name.length}:`, name, `${text.length}:`, text);
}

/** The field names of an {@link encodeFields} string. */
function fieldNames(encoded: string): Set<string> {
  const names = new Set<string>();
  cursor = 0;
  while (cursor < encoded.length) {
    names.add(nextPart(encoded));
    skipPart(encoded);
  }
  return names;
}

/**
 * Sessions in this process's memory: the default store, for development, tests and single-process
 * apps. Bounded (past `maxSessions` sessions are evicted: anonymous ones first, each group by the
 * CLOCK approximation of LRU; `retain` records never), swept for expired entries by an unref'ed
 * timer, O(1) per operation. Values are JSON texts, so nothing a caller holds is shared with the
 * store. Sessions are lost on restart and not shared between processes.
 *
 * Fit to be a `revocationStore` for one process only: its records are lost on restart (a revoked
 * cookie would work again) and other instances do not see them. Use Redis or PostgreSQL there.
 */
export class MemorySessionStore implements SessionStore {
  /** Sessions with a user: evicted only when no anonymous session is left. */
  private readonly owned = new Map<string, Entry>();
  /** Sessions without a user: evicted first. */
  private readonly anonymous = new Map<string, Entry>();
  /** Records written with `retain` (revocation records): never evicted. */
  private readonly retained = new Map<string, Entry>();
  /** User id → the key of its one session, or a Set when it has several (most users have one). */
  private readonly users = new Map<string, string | Set<string>>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();
  private readonly maxSessions: number;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.maxSessions = options.maxSessions ?? 10_000;
    this.now = options.clock ?? (() => Date.now());
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1) {
      throw new SessionConfigError(
        'MemorySessionStore: maxSessions must be a positive whole number',
      );
    }
    this.timer = setInterval(() => this.sweep(), options.sweepInterval ?? 60_000);
    this.timer.unref();
  }

  /** Number of sessions held, expired ones not yet swept included. */
  get size(): number {
    return this.owned.size + this.anonymous.size + this.retained.size;
  }

  async load(key: string): Promise<SessionRecord | null> {
    return this.read(key);
  }

  loadSync(key: string): SessionRecord | null {
    return this.read(key);
  }

  private read(key: string): SessionRecord | null {
    const entry = this.live(key, this.now());
    if (!entry) return null;
    // Marked, not moved: re-inserting a key into a large Map on every read is slow in V8.
    entry.used = true;
    return toRecord(key, entry);
  }

  async save(write: SessionWrite): Promise<void> {
    this.apply(write);
  }

  saveSync(write: SessionWrite): void {
    this.apply(write);
  }

  private apply(write: SessionWrite): void {
    const now = this.now();
    let entry: Entry;
    // A write without data changes (a rotation) keeps the encoded data as it is.
    const changes = write.replace || write.unset.length > 0 || Object.keys(write.set).length > 0;
    if (write.kind === 'create') {
      if (this.live(write.key, now)) throw new SessionGoneError();
      // New entries join at the young end of the Map unmarked; only later use earns a second chance.
      entry = new Entry(
        '',
        write.createdAt,
        write.lastActiveAt,
        write.expiresAt,
        write.absoluteExpiresAt,
      );
    } else {
      const from = write.previousKey ?? write.key;
      const existing = this.live(from, now);
      if (!existing) throw new SessionGoneError();
      if (write.lockOwner !== undefined) this.checkHolder(from, write.lockOwner);
      entry = existing;
      if (write.expect) {
        const stored = decodeFields(entry.data);
        for (const name of Object.keys(write.expect)) {
          const text = Object.hasOwn(stored, name) ? stored[name] : null;
          if (text !== write.expect[name]) throw new SessionConflictError();
        }
      }
      if (write.previousKey !== undefined) this.remove(write.previousKey);
    }
    if (changes) {
      // A new entry's data is '' (nothing to apply the changes to).
      entry.data =
        write.replace || entry.data === ''
          ? encodeFields(write.set)
          : applyFields(entry.data, write.set, write.unset);
    }
    if (write.kind === 'update') entry.used = true;
    entry.lastActiveAt = write.lastActiveAt;
    entry.expiresAt = write.expiresAt;
    entry.absoluteExpiresAt = write.absoluteExpiresAt;
    entry.version += 1;
    if (write.kind === 'update' && write.previousKey === undefined) {
      // Stays under its key: it moves only when a login or a logout changes its eviction group.
      if (entry.userId === write.userId && (entry.retain || !write.retain)) return;
      this.remove(write.key);
    } else if (write.kind === 'create') {
      this.makeRoom();
    }
    // New, renamed by a regenerate (the old key is already out), or moving between groups.
    if (write.retain) entry.retain = true;
    entry.userId = write.userId;
    this.index(write.key, entry.userId);
    this.mapOf(entry).set(write.key, entry);
  }

  /** The map an entry lives in, by what it is. */
  private mapOf(entry: Entry): Map<string, Entry> {
    if (entry.retain) return this.retained;
    return entry.userId === null ? this.anonymous : this.owned;
  }

  async touch(key: string, times: SessionTimes): Promise<boolean> {
    const entry = this.live(key, this.now());
    if (!entry) return false;
    entry.lastActiveAt = times.lastActiveAt;
    entry.expiresAt = Math.min(times.expiresAt, entry.absoluteExpiresAt);
    return true;
  }

  async destroy(key: string): Promise<void> {
    this.remove(key);
  }

  async listForUser(userId: string): Promise<SessionRecord[]> {
    const now = this.now();
    const records: SessionRecord[] = [];
    for (const key of this.userKeys(userId)) {
      const entry = this.live(key, now);
      if (entry) records.push(toRecord(key, entry));
    }
    return records;
  }

  async destroyForUser(userId: string, exceptKeys: readonly string[] = []): Promise<number> {
    const now = this.now();
    let count = 0;
    for (const key of this.userKeys(userId)) {
      if (exceptKeys.includes(key)) continue;
      if (this.live(key, now)) count++;
      this.remove(key);
    }
    return count;
  }

  /** The lock on `key` unless it is absent or expired. */
  private liveLock(key: string, now: number): { owner: string; expiresAt: number } | undefined {
    const lock = this.locks.get(key);
    return lock && lock.expiresAt > now ? lock : undefined;
  }

  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const lock = this.liveLock(key, now);
    if (lock && lock.owner !== owner) return false;
    this.locks.set(key, { owner, expiresAt: now + ttlMs });
    return true;
  }

  /** Throws unless `owner` holds the lock on `key` (a fenced write, `SessionWrite.lockOwner`). */
  private checkHolder(key: string, owner: string): void {
    const lock = this.liveLock(key, Date.now());
    if (lock?.owner !== owner) throw lockLostError(lock !== undefined);
  }

  async releaseLock(key: string, owner: string): Promise<void> {
    if (this.locks.get(key)?.owner === owner) this.locks.delete(key);
  }

  /** Extends the lock to `ttlMs` from now while `owner` holds it; `false` when it expired or is another's. */
  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const lock = this.liveLock(key, now);
    if (lock?.owner !== owner) return false;
    lock.expiresAt = now + ttlMs;
    return true;
  }

  async checkHealth(): Promise<SessionStoreHealth> {
    return { ok: true, store: 'memory', details: { sessions: this.size } };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }

  /** Deletes every expired session now. Runs on a timer; callable directly. */
  sweep(now = this.now()): number {
    for (const [key, lock] of this.locks) if (lock.expiresAt <= now) this.locks.delete(key);
    let removed = 0;
    for (const map of [this.owned, this.anonymous, this.retained]) {
      for (const [key, entry] of map) {
        if (entry.expiresAt <= now) {
          map.delete(key);
          this.unindex(key, entry.userId);
          removed++;
        }
      }
    }
    return removed;
  }

  private find(key: string): Entry | undefined {
    return this.owned.get(key) ?? this.anonymous.get(key) ?? this.retained.get(key);
  }

  private live(key: string, now: number): Entry | undefined {
    const entry = this.find(key);
    if (entry && entry.expiresAt <= now) {
      this.remove(key);
      return undefined;
    }
    return entry;
  }

  private remove(key: string): void {
    const entry = this.find(key);
    if (!entry) return;
    this.mapOf(entry).delete(key);
    this.unindex(key, entry.userId);
  }

  /** A copy of the user's keys (callers remove entries while iterating). */
  private userKeys(userId: string): string[] {
    const keys = this.users.get(userId);
    if (keys === undefined) return [];
    return typeof keys === 'string' ? [keys] : [...keys];
  }

  private index(key: string, userId: string | null): void {
    if (userId === null) return;
    const keys = this.users.get(userId);
    if (keys === undefined || keys === key) this.users.set(userId, key);
    else if (typeof keys === 'string') this.users.set(userId, new Set([keys, key]));
    else keys.add(key);
  }

  private unindex(key: string, userId: string | null): void {
    if (userId === null) return;
    const keys = this.users.get(userId);
    if (keys === key) {
      this.users.delete(userId);
    } else if (typeof keys === 'object') {
      keys.delete(key);
      if (keys.size === 1) this.users.set(userId, keys.values().next().value as string);
    }
  }

  /**
   * Makes room for one more entry: evicts an anonymous session if there is one, else a user's
   * (CLOCK within each group: the oldest entries get a second chance if used since the last pass,
   * else go). Retained records are never evicted; when only they fill the store, the write is
   * refused.
   */
  private makeRoom(): void {
    while (this.size >= this.maxSessions) {
      const group = this.anonymous.size > 0 ? this.anonymous : this.owned;
      if (group.size === 0) {
        throw new Error(
          `MemorySessionStore is full of records that must be kept (maxSessions ${this.maxSessions}); refusing the write rather than forgetting one`,
        );
      }
      const [key, entry] = group.entries().next().value as [string, Entry];
      group.delete(key);
      if (entry.used) {
        entry.used = false;
        group.set(key, entry);
      } else {
        this.unindex(key, entry.userId);
      }
    }
  }
}

function toRecord(key: string, entry: Entry): SessionRecord {
  const data = decodeFields(entry.data);
  return {
    key,
    data,
    userId: entry.userId,
    createdAt: entry.createdAt,
    lastActiveAt: entry.lastActiveAt,
    expiresAt: entry.expiresAt,
    absoluteExpiresAt: entry.absoluteExpiresAt,
    version: entry.version,
  };
}
