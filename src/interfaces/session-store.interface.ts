/**
 * A session as a store keeps it. Values of `data` are JSON texts, one per top-level key, so a store
 * can save and compare keys independently (a Redis hash field, a `jsonb` key, a map entry).
 */
export interface SessionRecord {
  /** The storage key: a hash of the session token, never the token itself. */
  readonly key: string;
  /** Top-level session keys mapped to their JSON text. */
  readonly data: Record<string, string>;
  /** The user the session belongs to (the data key named by `userKey`), or `null`. */
  readonly userId: string | null;
  /** Epoch milliseconds. Never changes after creation. */
  readonly createdAt: number;
  /** Epoch milliseconds of the last recorded activity (written at most once per `touchAfter`). */
  readonly lastActiveAt: number;
  /** Epoch milliseconds after which the record must not be returned: the earlier of idle and absolute expiry. */
  readonly expiresAt: number;
  /** Epoch milliseconds of the absolute expiry; `expiresAt` never goes past it. */
  readonly absoluteExpiresAt: number;
  /** Incremented on every write; used by optimistic concurrency. */
  readonly version: number;
}

/** Timestamps written with every save and touch. */
export interface SessionTimes {
  readonly lastActiveAt: number;
  readonly expiresAt: number;
}

/**
 * One atomic write: the delta of one request. A store applies all of it or none of it.
 *
 * - `create`: the record must not exist yet; it is created with `set` as its data.
 * - `update`: the record (`previousKey` when rotating, else `key`) must exist and not be expired;
 *   otherwise the store throws {@link SessionGoneError} and writes nothing (no resurrection, LC-6).
 *   When `previousKey` is given the record moves to `key` in the same step and the old key is gone
 *   (regenerate, LC-1); of two concurrent moves of one record only one succeeds (LC-7).
 * - `replace`: drop every stored key before applying `set` (a regenerate that starts empty).
 */
export interface SessionWrite extends SessionTimes {
  readonly key: string;
  readonly kind: 'create' | 'update';
  readonly previousKey?: string;
  readonly replace?: boolean;
  /** Changed or added keys with their JSON text. */
  readonly set: Readonly<Record<string, string>>;
  /** Removed keys. */
  readonly unset: readonly string[];
  /** The session's user after this write. */
  readonly userId: string | null;
  /**
   * Optimistic concurrency (`concurrency: 'optimistic'`): for each listed key, the JSON text this
   * request loaded (`null` = the key was absent). The store applies the write only if every listed
   * key still holds exactly that; otherwise it throws `SessionConflictError` and writes nothing.
   */
  readonly expect?: Readonly<Record<string, string | null>>;
  /**
   * The request holds the session's lock (`@SessionLock()`, `concurrency: 'serialize'`; the lock
   * on `previousKey ?? key`) as this owner. A store with locks applies the write only while that
   * owner still holds the lock, checked in the same atomic step, and otherwise writes nothing and
   * throws `SessionConflictError` (another owner holds it) or `SessionStoreUnavailableError`
   * (nobody does: the lease lapsed). So a write that arrives late (a client library's retry or
   * resend after the request gave up, a holder past its lease) cannot overwrite what the next
   * holder wrote.
   */
  readonly lockOwner?: string;
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
  /**
   * The record must never be evicted to make room before it expires: a revocation record, which,
   * forgotten, would make a revoked cookie valid again. A bounded store that has no room left but
   * such records refuses the write (rejects, so the request answers 503) instead.
   */
  readonly retain?: boolean;
}

/** What a store reports from its health check. */
export interface SessionStoreHealth {
  readonly ok: boolean;
  /** A short, secret-free description such as `'memory'` or `'redis 127.0.0.1:6379'`. */
  readonly store: string;
  readonly details?: Record<string, unknown>;
}

/**
 * Injection token of the module's session store (the revocation store in sealed mode), named after
 * the interface as `@nestjs/throttler` names `ThrottlerStorage`:
 * `constructor(@Inject(SessionStore) store: SessionStore)`, or `@InjectSessionStore()`.
 */
export const SessionStore: unique symbol = Symbol.for('nestjs-sessions:SessionStore');

/**
 * The repository behind every session: implement it to keep sessions anywhere. Every method is
 * atomic on its own; see `src/testing` for the contract suite a store must pass.
 *
 * Stores receive only storage keys (hashes) and JSON texts; they never see cookies or tokens.
 * Failures to reach the backend must reject (the library turns them into 503 responses); a
 * store must never pretend a session is absent because the backend is down.
 */
export interface SessionStore {
  /** Returns the record, or `null` when it does not exist or `expiresAt` has passed. Never creates anything. */
  load(key: string): Promise<SessionRecord | null>;
  /**
   * Optional, for stores that keep sessions in this process: {@link load} without a promise. The
   * runtime then loads a session without waiting for the next turn of the event loop.
   */
  loadSync?(key: string): SessionRecord | null;
  /** Applies one request's delta atomically. Rejects with `SessionGoneError` when an update finds no record. */
  save(write: SessionWrite): Promise<void>;
  /** Optional, for stores that keep sessions in this process: {@link save} without a promise (throws instead of rejecting). */
  saveSync?(write: SessionWrite): void;
  /** Writes only the activity timestamps. Resolves `false` (and writes nothing) when the record is gone. */
  touch(key: string, times: SessionTimes): Promise<boolean>;
  /** Deletes the record and its user-index entry. Deleting a missing record is not an error. */
  destroy(key: string): Promise<void>;
  /** The live sessions of one user, in no particular order. Stale index entries are pruned. */
  listForUser(userId: string): Promise<SessionRecord[]>;
  /** Deletes every session of one user except the listed keys; resolves the number deleted. */
  destroyForUser(userId: string, exceptKeys?: readonly string[]): Promise<number>;
  /**
   * Takes the per-session lock used by `concurrency: 'serialize'` and `@SessionLock()`: resolves
   * `true` when `owner` now holds it, `false` when someone else does. The lock expires after
   * `ttlMs` so a crashed holder cannot block the session forever. Needed only for those features.
   */
  acquireLock?(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock if, and only if, `owner` still holds it (atomically). */
  releaseLock?(key: string, owner: string): Promise<void>;
  /**
   * Optional: extends the lock to `ttlMs` from now if, and only if, `owner` still holds it
   * (atomically); resolves `false`, changing nothing, when it expired or is someone else's. With
   * it the library holds locks as short leases that the holder renews, so that a lock whose holder
   * vanished (or whose release was lost in an outage) ends within a lease, not within `lockTtl`.
   */
  renewLock?(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Optional: reports whether the backend answers. */
  checkHealth?(): Promise<SessionStoreHealth>;
  /** Optional: releases timers and the clients the store created itself. */
  close?(): Promise<void>;
}
