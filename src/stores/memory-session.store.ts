import { SessionConflictError, SessionGoneError } from '../session.errors.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';

/** Options of {@link MemorySessionStore}. */
export interface MemorySessionStoreOptions {
  /** Most sessions kept; past it the least recently used is evicted. @default 10000 */
  maxSessions?: number;
  /** How often expired sessions are swept, in milliseconds. @default 60000 */
  sweepInterval?: number;
}

interface Entry {
  data: Map<string, string>;
  userId: string | null;
  createdAt: number;
  lastActiveAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
  version: number;
}

/**
 * Sessions in this process's memory: the default store, for development, tests and single-process
 * apps. Bounded (least recently used sessions are evicted past `maxSessions`), swept for expired
 * entries by an unref'ed timer, O(1) per operation. Values are JSON texts, so nothing a caller
 * holds is shared with the store. Sessions are lost on restart and not shared between processes.
 */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, Entry>();
  private readonly users = new Map<string, Set<string>>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();
  private readonly maxSessions: number;
  private readonly timer: NodeJS.Timeout;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.maxSessions = options.maxSessions ?? 10_000;
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1) {
      throw new TypeError('MemorySessionStore: maxSessions must be a positive whole number');
    }
    this.timer = setInterval(() => this.sweep(), options.sweepInterval ?? 60_000);
    this.timer.unref();
  }

  /** Number of sessions held, expired ones not yet swept included. */
  get size(): number {
    return this.sessions.size;
  }

  async load(key: string): Promise<SessionRecord | null> {
    const entry = this.live(key, Date.now());
    if (!entry) return null;
    // Re-insert to mark it most recently used.
    this.sessions.delete(key);
    this.sessions.set(key, entry);
    return toRecord(key, entry);
  }

  async save(write: SessionWrite): Promise<void> {
    const now = Date.now();
    let entry: Entry;
    if (write.kind === 'create') {
      if (this.live(write.key, now)) throw new SessionGoneError();
      entry = {
        data: new Map(),
        userId: null,
        createdAt: write.createdAt,
        lastActiveAt: write.lastActiveAt,
        expiresAt: write.expiresAt,
        absoluteExpiresAt: write.absoluteExpiresAt,
        version: 0,
      };
    } else {
      const from = write.previousKey ?? write.key;
      const existing = this.live(from, now);
      if (!existing) throw new SessionGoneError();
      entry = existing;
      if (write.expect) {
        for (const field of Object.keys(write.expect)) {
          if ((entry.data.get(field) ?? null) !== write.expect[field])
            throw new SessionConflictError();
        }
      }
      if (write.previousKey !== undefined) this.remove(write.previousKey);
    }
    if (write.replace) entry.data.clear();
    for (const field of write.unset) entry.data.delete(field);
    for (const field of Object.keys(write.set)) entry.data.set(field, write.set[field]);
    entry.lastActiveAt = write.lastActiveAt;
    entry.expiresAt = write.expiresAt;
    entry.absoluteExpiresAt = write.absoluteExpiresAt;
    entry.version += 1;
    this.unindex(write.key, entry.userId);
    entry.userId = write.userId;
    this.index(write.key, entry.userId);
    this.sessions.delete(write.key);
    this.sessions.set(write.key, entry);
    this.evict();
  }

  async touch(key: string, times: SessionTimes): Promise<boolean> {
    const entry = this.live(key, Date.now());
    if (!entry) return false;
    entry.lastActiveAt = times.lastActiveAt;
    entry.expiresAt = Math.min(times.expiresAt, entry.absoluteExpiresAt);
    return true;
  }

  async destroy(key: string): Promise<void> {
    this.remove(key);
  }

  async listForUser(userId: string): Promise<SessionRecord[]> {
    const keys = this.users.get(userId);
    if (!keys) return [];
    const now = Date.now();
    const records: SessionRecord[] = [];
    for (const key of [...keys]) {
      const entry = this.live(key, now);
      if (entry) records.push(toRecord(key, entry));
    }
    return records;
  }

  async destroyForUser(userId: string, exceptKeys: readonly string[] = []): Promise<number> {
    const keys = this.users.get(userId);
    if (!keys) return 0;
    const now = Date.now();
    let count = 0;
    for (const key of [...keys]) {
      if (exceptKeys.includes(key)) continue;
      if (this.live(key, now)) count++;
      this.remove(key);
    }
    return count;
  }

  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const lock = this.locks.get(key);
    if (lock && lock.expiresAt > now && lock.owner !== owner) return false;
    this.locks.set(key, { owner, expiresAt: now + ttlMs });
    return true;
  }

  async releaseLock(key: string, owner: string): Promise<void> {
    if (this.locks.get(key)?.owner === owner) this.locks.delete(key);
  }

  async checkHealth(): Promise<SessionStoreHealth> {
    return { ok: true, store: 'memory', details: { sessions: this.sessions.size } };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }

  /** Deletes every expired session now. Runs on a timer; callable directly. */
  sweep(now = Date.now()): number {
    for (const [key, lock] of this.locks) if (lock.expiresAt <= now) this.locks.delete(key);
    let removed = 0;
    for (const [key, entry] of this.sessions) {
      if (entry.expiresAt <= now) {
        this.remove(key);
        removed++;
      }
    }
    return removed;
  }

  private live(key: string, now: number): Entry | undefined {
    const entry = this.sessions.get(key);
    if (entry && entry.expiresAt <= now) {
      this.remove(key);
      return undefined;
    }
    return entry;
  }

  private remove(key: string): void {
    const entry = this.sessions.get(key);
    if (!entry) return;
    this.sessions.delete(key);
    this.unindex(key, entry.userId);
  }

  private index(key: string, userId: string | null): void {
    if (userId === null) return;
    let keys = this.users.get(userId);
    if (!keys) this.users.set(userId, (keys = new Set()));
    keys.add(key);
  }

  private unindex(key: string, userId: string | null): void {
    if (userId === null) return;
    const keys = this.users.get(userId);
    if (!keys) return;
    keys.delete(key);
    if (keys.size === 0) this.users.delete(userId);
  }

  private evict(): void {
    while (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next().value as string;
      this.remove(oldest);
    }
  }
}

function toRecord(key: string, entry: Entry): SessionRecord {
  return {
    key,
    data: Object.fromEntries(entry.data),
    userId: entry.userId,
    createdAt: entry.createdAt,
    lastActiveAt: entry.lastActiveAt,
    expiresAt: entry.expiresAt,
    absoluteExpiresAt: entry.absoluteExpiresAt,
    version: entry.version,
  };
}
