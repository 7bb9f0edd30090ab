/**
 * The shared credential of one upstream as a {@link SharedCredentialStore} keeps it. Every process
 * using the upstream reads the same record; a login writes a new one with `generation + 1`.
 */
export interface SharedCredentialRecord {
  /**
   * Increases by one with every successful login. `0` means no login has succeeded yet. A request
   * that failed on generation `G` triggers a login only while the store still holds `G`.
   */
  readonly generation: number;
  /**
   * The serialised credential (cookie jar and headers), opaque to stores; `null` before the first
   * successful login. Treat it like a password: it is the upstream session.
   */
  readonly credential: string | null;
  /** Epoch milliseconds of the last write. */
  readonly updatedAt: number;
  /** Failed logins in a row since the last successful one. @default 0 */
  readonly failures?: number;
  /** Epoch milliseconds before which nobody may try to log in again (backoff after failures). */
  readonly retryAt?: number;
}

/**
 * Where the shared credential of each upstream lives, with the lock that makes one process at a
 * time log in. Built in: {@link MemorySharedCredentialStore} (one process),
 * {@link RedisSharedCredentialStore} and {@link PostgresSharedCredentialStore} (many processes).
 *
 * Every method is atomic on its own. Failures to reach the backend must reject: the client turns
 * them into a 503 and never assumes anything about the credential.
 *
 * @example
 * class MyStore implements SharedCredentialStore {
 *   async get(name) { ... }
 *   async set(name, record, owner) { ... }   // write only while owner holds the lock
 *   async acquireLock(name, owner, ttlMs) { ... } // set-if-absent with an expiry
 *   async releaseLock(name, owner) { ... }        // compare-and-delete
 * }
 */
export interface SharedCredentialStore {
  /** The record of upstream `name`, or `null` when none was ever written. */
  get(name: string): Promise<SharedCredentialRecord | null>;
  /**
   * Replaces the record of upstream `name` if, and only if, `owner` still holds an unexpired login
   * lock (atomically: compare and write). Resolves `true` when written; `false`, writing nothing,
   * when the lock expired or belongs to someone else, so a holder that outlived its lock can never
   * overwrite the login of the process that took the lock over.
   */
  set(name: string, record: SharedCredentialRecord, owner: string): Promise<boolean>;
  /**
   * Takes the login lock of upstream `name` for `owner` (a random token) unless an unexpired lock
   * exists. Resolves `true` when taken. The lock ends by itself after `ttlMs`, so a crashed holder
   * blocks nobody for longer than that.
   */
  acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * Releases the lock if, and only if, `owner` still holds it (atomically: compare and delete).
   * Resolves `true` when it did; `false` when the lock expired or belongs to someone else.
   */
  releaseLock(name: string, owner: string): Promise<boolean>;
  /** Frees what the store created itself. A store never closes clients it was given. */
  close?(): Promise<void>;
}
