/**
 * Session locks as short leases, so that a lock never outlives its holder, nor an outage, by
 * more than a lease.
 *
 * - **Short lease, renewed by its holder.** With a store that offers `renewLock`, a lock is taken
 *   for {@link leaseDuration} (about half of `lockTimeout`) instead of the whole `lockTtl`, and
 *   the holder renews it every third of a lease while it holds it, up to `lockTtl` in all (a
 *   holder stuck for longer loses it, as before). A holder that vanishes (crash, partition, the
 *   node that kept the lock failed over) blocks the session for at most one lease.
 * - **Uncertain locks are released once the store answers.** A release that failed, and an
 *   acquire that failed or timed out (it may still have been applied, or be applied later), are
 *   retried as an owner-checked release, with backoff, until the store answers. The owner check
 *   makes that safe: it never frees someone else's lock.
 * - **A wait that an outage ended is a 503, not a 409.** An acquire the store applied after its
 *   caller gave up (a client library's resend once the node is back) can leave a lock that no
 *   request holds, after every cleanup ran. For `lockTtl` and a lease after an acquire or a release
 *   on a session failed, {@link SessionLockLeases.troubled} says so, and a wait for that session's
 *   lock that runs out is reported as the store being unavailable rather than as "busy".
 *
 * The engine's lock call sites use one {@link SessionLockLeases} per store: `acquire()` in the
 * poll loop, `release()` where the lock is given back. Nothing here knows HTTP or Nest.
 */

/** What the leases need from a store: the optional lock methods of `SessionStore`. */
export interface LockLeaseStore {
  acquireLock?(key: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLock?(key: string, owner: string): Promise<void>;
  renewLock?(key: string, owner: string, ttlMs: number): Promise<boolean>;
}

/** The lock settings the leases follow (resolved `SessionModule` options). */
export interface LockLeaseOptions {
  /** Longest a holder may keep a lock, renewals included. */
  readonly lockTtl: number;
  /** Longest a request waits for a lock; a lease is shorter, so a stale lock ends in time. */
  readonly lockTimeout: number;
  /** Where the leases report a lock lost while held; never given a key or an owner. */
  readonly warn?: (message: string) => void;
}

/** The shortest lease: renewals every third of it must fit a slow store's round trip. */
const MIN_LEASE_MS = 1_000;
/** The first retry of an uncertain release, doubling up to {@link RETRY_MAX_MS}. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2_000;

/**
 * The lease of one lock: half of `lockTimeout`, at least 1 s, at most `lockTtl`. Half, so that a
 * request that starts waiting when a holder vanished gets the lock before its own wait ends.
 */
export function leaseDuration(lockTtl: number, lockTimeout: number): number {
  return Math.min(lockTtl, Math.max(MIN_LEASE_MS, Math.floor(lockTimeout / 2)));
}

interface Held {
  readonly timer: NodeJS.Timeout;
}

interface Uncertain {
  readonly key: string;
  readonly owner: string;
  readonly since: number;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Acquires, renews and releases session locks on a store as leases (see the module notes).
 * @example
 * const leases = new SessionLockLeases(store, { lockTtl: 30_000, lockTimeout: 5_000 });
 * while (!(await leases.acquire(key, owner))) await sleep(10);
 * try { ... } finally { await leases.release(key, owner); }
 */
export class SessionLockLeases {
  /** The TTL each acquire and renewal asks the store for. */
  readonly leaseMs: number;
  private readonly renewable: boolean;
  private readonly held = new Map<string, Held>();
  private readonly uncertain = new Map<string, Uncertain>();
  /** When a lock call on a key last failed, oldest first; kept for {@link horizonMs}. */
  private readonly failures = new Map<string, number>();
  /** How long after a failed lock call the store may still hold a lock left by it. */
  private readonly horizonMs: number;
  private closed = false;

  constructor(
    private readonly store: LockLeaseStore,
    private readonly options: LockLeaseOptions,
  ) {
    this.renewable = typeof store.renewLock === 'function';
    this.leaseMs = this.renewable
      ? leaseDuration(options.lockTtl, options.lockTimeout)
      : options.lockTtl;
    this.horizonMs = options.lockTtl + this.leaseMs;
  }

  /** Locks whose release is still being retried (a store outage left them uncertain). */
  get uncertainCount(): number {
    return this.uncertain.size;
  }

  /** Sessions with a failed lock call still within the horizon (pruned as failures come). */
  get troubledCount(): number {
    return this.failures.size;
  }

  /**
   * Whether a lock call on `key` failed within the last `lockTtl` and a lease: a lock the store
   * holds on it now may be a leftover of that outage rather than another request's.
   */
  troubled(key: string): boolean {
    const at = this.failures.get(key);
    if (at === undefined) return false;
    if (Date.now() - at <= this.horizonMs) return true;
    this.failures.delete(key);
    return false;
  }

  /**
   * One attempt to take the lock for `owner`: `true` when it now holds it (and renews it from now
   * on), `false` while someone else does. When the store fails, the attempt may still have taken
   * the lock: it is released (owner-checked) once the store answers, and the error is rethrown.
   */
  async acquire(key: string, owner: string): Promise<boolean> {
    const id = idOf(key, owner);
    // A new attempt by the same owner supersedes a pending cleanup of an earlier one.
    this.forget(id);
    let acquired: boolean;
    try {
      acquired = await this.store.acquireLock!(key, owner, this.leaseMs);
    } catch (error) {
      this.retryRelease(key, owner);
      throw error;
    }
    if (acquired) this.hold(id, key, owner);
    return acquired;
  }

  /**
   * Stops renewing and releases the lock. Never rejects: a release the store did not confirm is
   * retried until it answers (and the lease runs out meanwhile anyway).
   */
  async release(key: string, owner: string): Promise<void> {
    const id = idOf(key, owner);
    this.stopRenewing(id);
    try {
      await this.store.releaseLock!(key, owner);
    } catch {
      this.retryRelease(key, owner);
    }
  }

  /** Stops every timer: renewals and retries (the app is shutting down). */
  close(): void {
    this.closed = true;
    for (const id of [...this.held.keys()]) this.stopRenewing(id);
    for (const id of [...this.uncertain.keys()]) this.forget(id);
    this.failures.clear();
  }

  private hold(id: string, key: string, owner: string): void {
    if (!this.renewable || this.closed) return;
    this.stopRenewing(id);
    const started = Date.now();
    const every = Math.max(1, Math.floor(this.leaseMs / 3));
    const timer = setInterval(() => {
      // A holder never keeps a lock longer than lockTtl in all.
      if (Date.now() - started + this.leaseMs > this.options.lockTtl) {
        this.stopRenewing(id);
        this.options.warn?.(
          'A session lock reached lockTtl while its request still held it (a long handler or stream); it lapses within a lease, and later writes under it are refused.',
        );
        return;
      }
      this.store.renewLock!(key, owner, this.leaseMs).then(
        (kept) => {
          if (kept || !this.held.has(id)) return;
          this.stopRenewing(id);
          this.options.warn?.(
            'A session lock expired while its request still held it (the store was slow or away); another request may have taken it.',
          );
        },
        // A failed renewal is retried at the next tick; the lease covers two misses. Renewals are
        // owner-checked, so one applied late cannot leave a lock behind: not a failure to note.
        () => undefined,
      );
    }, every);
    timer.unref();
    this.held.set(id, { timer });
  }

  private stopRenewing(id: string): void {
    const held = this.held.get(id);
    if (!held) return;
    clearInterval(held.timer);
    this.held.delete(id);
  }

  /** Notes a failed lock call on `key`, and forgets failures past the horizon. */
  private failed(key: string): void {
    const now = Date.now();
    this.failures.delete(key);
    this.failures.set(key, now);
    for (const [old, at] of this.failures) {
      if (now - at <= this.horizonMs) break;
      this.failures.delete(old);
    }
  }

  /** Every failed acquire or release comes here: its lock's fate is unknown. */
  private retryRelease(key: string, owner: string): void {
    if (this.closed) return;
    this.failed(key);
    const id = idOf(key, owner);
    const entry = this.uncertain.get(id) ?? {
      key,
      owner,
      since: Date.now(),
      attempt: 0,
      timer: undefined,
    };
    // Past lockTtl and a lease, the store has let the lock expire whatever happened to it.
    if (Date.now() - entry.since > this.options.lockTtl + this.leaseMs) {
      this.forget(id);
      return;
    }
    this.uncertain.set(id, entry);
    if (entry.timer) return;
    const delay = Math.min(RETRY_FIRST_MS * 2 ** entry.attempt, RETRY_MAX_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.attempt++;
      this.store.releaseLock!(key, owner).then(
        () => {
          if (this.uncertain.get(id) === entry) this.uncertain.delete(id);
        },
        () => {
          if (this.uncertain.get(id) === entry) this.retryRelease(key, owner);
        },
      );
    }, delay);
    entry.timer.unref();
  }

  private forget(id: string): void {
    const entry = this.uncertain.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.uncertain.delete(id);
  }
}

function idOf(key: string, owner: string): string {
  return `${key}\u0000${owner}`;
}
