import { afterEach, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionLockLeases, leaseDuration, type LockLeaseStore } from './session-lock-lease.js';

/** Lock semantics of the stores' contract (owner-checked, expiring), kept in a map. */
function lockTable() {
  const locks = new Map<string, { owner: string; until: number }>();
  const live = (key: string) => {
    const lock = locks.get(key);
    return lock && lock.until > Date.now() ? lock : undefined;
  };
  return {
    async acquireLock(key: string, owner: string, ttl: number): Promise<boolean> {
      const lock = live(key);
      if (lock && lock.owner !== owner) return false;
      locks.set(key, { owner, until: Date.now() + ttl });
      return true;
    },
    async releaseLock(key: string, owner: string): Promise<void> {
      if (locks.get(key)?.owner === owner) locks.delete(key);
    },
    async renewLock(key: string, owner: string, ttl: number): Promise<boolean> {
      const lock = live(key);
      if (!lock || lock.owner !== owner) return false;
      lock.until = Date.now() + ttl;
      return true;
    },
  };
}

/** A lock table behind a switch: while `down`, every lock call fails like an outage. */
function switchable(options: { renew?: boolean; applyThenFail?: boolean } = {}) {
  const backing = lockTable();
  const state = { down: false, calls: 0 };
  const gate = async <R>(run: () => Promise<R>): Promise<R> => {
    state.calls++;
    if (!state.down) return run();
    // A timed-out call may still have been applied by the store: the worst case.
    if (options.applyThenFail) await run();
    throw new Error('store unavailable');
  };
  const store: LockLeaseStore = {
    acquireLock: (key, owner, ttl) => gate(() => backing.acquireLock(key, owner, ttl)),
    releaseLock: (key, owner) => gate(() => backing.releaseLock(key, owner)),
    ...(options.renew === false
      ? {}
      : { renewLock: (key, owner, ttl) => gate(() => backing.renewLock(key, owner, ttl)) }),
  };
  return { store, backing, state };
}

describe('SessionLockLeases', () => {
  const made: SessionLockLeases[] = [];
  const leasesOn = (store: LockLeaseStore, lockTtl = 30_000, lockTimeout = 2_000) => {
    const warnings: string[] = [];
    const leases = new SessionLockLeases(store, {
      lockTtl,
      lockTimeout,
      warn: (m) => warnings.push(m),
    });
    made.push(leases);
    return { leases, warnings };
  };
  afterEach(() => {
    for (const leases of made.splice(0)) leases.close();
  });

  it('takes a lease of half the lock timeout (at least 1 s, at most lockTtl)', () => {
    expect(leaseDuration(30_000, 5_000)).toBe(2_500);
    expect(leaseDuration(30_000, 500)).toBe(1_000);
    expect(leaseDuration(800, 5_000)).toBe(800);
    const { leases } = leasesOn(switchable().store, 30_000, 5_000);
    expect(leases.leaseMs).toBe(2_500);
    // Without renewLock the lock keeps its whole lockTtl, as before.
    expect(leasesOn(switchable({ renew: false }).store, 30_000, 5_000).leases.leaseMs).toBe(30_000);
  });

  it('keeps a lock past its lease while the holder renews it, and frees it on release', async () => {
    const { store, backing } = switchable();
    const { leases } = leasesOn(store);
    expect(await leases.acquire('k', 'a')).toBe(true);
    await sleep(2_300); // more than two leases of 1 s
    expect(await backing.acquireLock('k', 'b', 1_000)).toBe(false);
    await leases.release('k', 'a');
    expect(await backing.acquireLock('k', 'b', 1_000)).toBe(true);
  });

  it('frees the lock of a holder that vanished within one lease, not lockTtl (stale lock after a crash)', async () => {
    const { store, backing } = switchable();
    const { leases } = leasesOn(store);
    expect(await leases.acquire('k', 'a')).toBe(true);
    leases.close(); // the holder's process is gone: no renewals, no release
    expect(await backing.acquireLock('k', 'b', 1_000)).toBe(false);
    await sleep(1_100);
    expect(await backing.acquireLock('k', 'b', 1_000)).toBe(true);
  });

  it('retries a release that failed in an outage once the store answers (stuck lock after recovery)', async () => {
    // No renewLock: the lock has the whole 30 s lockTtl, so only the retry can free it soon.
    const { store, backing, state } = switchable({ renew: false });
    const { leases } = leasesOn(store);
    expect(await leases.acquire('k', 'a')).toBe(true);
    state.down = true;
    await leases.release('k', 'a'); // never rejects
    expect(leases.uncertainCount).toBe(1);
    await sleep(400);
    state.down = false;
    let free = false;
    for (let i = 0; i < 40 && !free; i++) {
      await sleep(100);
      free = await backing.acquireLock('k', 'b', 1_000);
    }
    expect(free).toBe(true);
    expect(leases.uncertainCount).toBe(0);
  });

  it('releases, owner-checked, a lock whose acquire timed out but was applied (acquire fate unknown)', async () => {
    const { store, backing, state } = switchable({ renew: false, applyThenFail: true });
    const { leases } = leasesOn(store);
    state.down = true;
    await expect(leases.acquire('k', 'a')).rejects.toThrow('store unavailable');
    // The store did take it, for the whole lockTtl, though the caller saw a failure.
    expect(await backing.acquireLock('k', 'b', 1_000)).toBe(false);
    state.down = false;
    let free = false;
    for (let i = 0; i < 40 && !free; i++) {
      await sleep(100);
      free = await backing.acquireLock('k', 'b', 1_000);
    }
    expect(free).toBe(true);
  });

  it('never frees another owner’s lock while cleaning up an uncertain one', async () => {
    const { store, backing, state } = switchable({ renew: false });
    const { leases } = leasesOn(store);
    state.down = true;
    await expect(leases.acquire('k', 'a')).rejects.toThrow();
    // Meanwhile another instance holds the lock.
    expect(await backing.acquireLock('k', 'b', 30_000)).toBe(true);
    state.down = false;
    await sleep(600);
    expect(leases.uncertainCount).toBe(0);
    expect(await backing.acquireLock('k', 'c', 1_000)).toBe(false);
  });

  it('stops renewing after lockTtl in all, so a stuck holder cannot keep a lock forever', async () => {
    const { store, backing } = switchable();
    const { leases } = leasesOn(store, 1_500, 2_000); // lease 1 s, lockTtl 1.5 s
    expect(await leases.acquire('k', 'a')).toBe(true);
    await sleep(2_200);
    expect(await backing.acquireLock('k', 'b', 1_000)).toBe(true);
  });

  it('warns, without naming the session, when a renewal finds the lock gone (lease lost in an outage)', async () => {
    const { store, backing } = switchable();
    const { leases, warnings } = leasesOn(store);
    expect(await leases.acquire('Qk3xKey', 'Zo9Owner')).toBe(true);
    await backing.releaseLock('Qk3xKey', 'Zo9Owner'); // as if it expired while the store was away
    await backing.acquireLock('Qk3xKey', 'b', 5_000);
    await sleep(450);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toMatch(/Qk3xKey|Zo9Owner/);
    expect(warnings[0]).toMatch(/expired while its request still held it/);
  });

  it('marks a session troubled for lockTtl and a lease after an acquire on it failed, and no other', async () => {
    const { store, state } = switchable();
    const { leases } = leasesOn(store, 1_000, 2_000); // lease 1 s: troubled for 2 s
    expect(leases.troubled('k')).toBe(false);
    state.down = true;
    await expect(leases.acquire('k', 'a')).rejects.toThrow('store unavailable');
    state.down = false;
    expect(leases.troubled('k')).toBe(true);
    expect(leases.troubled('other')).toBe(false);
    await sleep(1_000);
    expect(leases.troubled('k')).toBe(true);
    await sleep(1_400);
    expect(leases.troubled('k')).toBe(false);
  });

  it('forgets failures past the horizon as new ones come (an outage over many sessions)', async () => {
    const { store, state } = switchable({ renew: false });
    const { leases } = leasesOn(store, 200, 2_000); // troubled for 400 ms
    state.down = true;
    for (let i = 0; i < 50; i++) await leases.release(`k${i}`, 'a');
    state.down = false; // the retries succeed
    await sleep(450);
    expect(leases.troubledCount).toBe(50);
    state.down = true;
    await leases.release('late', 'a');
    state.down = false;
    expect(leases.troubledCount).toBe(1);
    expect(leases.troubled('late')).toBe(true);
  });

  it('does not mark a session troubled for a failed renewal (renewals are owner-checked)', async () => {
    const { store, state } = switchable();
    const { leases } = leasesOn(store);
    expect(await leases.acquire('k', 'a')).toBe(true);
    state.down = true;
    await sleep(450); // a renewal tick fails
    state.down = false;
    expect(leases.troubled('k')).toBe(false);
    await leases.release('k', 'a');
  });
});
