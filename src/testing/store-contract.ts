import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  SessionConflictError,
  SessionGoneError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import type { SessionStore, SessionWrite } from '../interfaces/session-store.interface.js';

/** The test-framework functions the contract suite registers its tests with (Jest, Vitest, node:test). */
export interface SessionStoreContractFramework {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>): void;
  beforeAll(fn: () => Promise<void>): void;
  afterAll(fn: () => Promise<void>): void;
}

/** How the contract suite gets the store under test. */
export interface SessionStoreContractOptions {
  /** Creates the store (with its own key prefix / schema so runs cannot collide). Called once. */
  create(): Promise<SessionStore>;
  /** Cleans up after the suite: delete test data, close clients. */
  cleanup?(store: SessionStore): Promise<void>;
  /**
   * Tests the store cannot honour, skipped with a stated reason (reported by the framework as
   * skipped, the reason in the title). Keys are substrings of test titles, e.g. a requirement id.
   * Use it only for guarantees the backend cannot give, and say so in your store's docs.
   * @default {}
   * @example { skip: { 'LC-7': 'the backend has no compare-and-set; regenerate races are last-writer-wins' } }
   */
  skip?: Readonly<Record<string, string>>;
}

/** A fresh random storage key, shaped like the real ones. */
export function randomStorageKey(): string {
  return randomBytes(32).toString('base64url');
}

/** A `create` write for a new session with the given data (values are JSON-encoded for you). */
export function createWrite(
  data: Record<string, unknown> = {},
  overrides: Partial<SessionWrite> = {},
): SessionWrite {
  const now = Date.now();
  return {
    kind: 'create',
    key: randomStorageKey(),
    set: encode(data),
    unset: [],
    userId: null,
    createdAt: now,
    lastActiveAt: now,
    expiresAt: now + 60_000,
    absoluteExpiresAt: now + 3_600_000,
    ...overrides,
  };
}

// fromEntries defines own properties: a `__proto__` key is kept as data, not dropped (IN-2).
function encode(data: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.keys(data).map((key) => [key, JSON.stringify(data[key])]));
}

/**
 * An `update` write of the session `base` created: times refreshed, no delta unless given (`setData`
 * is JSON-encoded for you; `set` is taken as JSON texts).
 */
export function updateWrite(
  base: SessionWrite,
  changes: Partial<SessionWrite> & { setData?: Record<string, unknown> } = {},
): SessionWrite {
  const now = Date.now();
  const { setData, ...rest } = changes;
  return {
    ...base,
    kind: 'update',
    set: encode(setData ?? {}),
    unset: [],
    previousKey: undefined,
    replace: undefined,
    lastActiveAt: now,
    expiresAt: now + 60_000,
    ...rest,
  };
}

function decode(data: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(Object.keys(data).map((key) => [key, JSON.parse(data[key])]));
}

/**
 * Registers the store contract: every behaviour a {@link SessionStore} must have for the library's
 * guarantees to hold (delta writes, no resurrection, atomic regenerate, expiry on read, the user
 * index, hostile data). Run it for your own store:
 *
 * @example
 * import { describe, it, beforeAll, afterAll } from '@jest/globals';
 * describeSessionStoreContract('MyStore', { describe, it, beforeAll, afterAll }, {
 *   create: async () => new MyStore(...),
 *   cleanup: (store) => store.close?.(),
 * });
 */
export function describeSessionStoreContract(
  name: string,
  t: SessionStoreContractFramework,
  options: SessionStoreContractOptions,
): void {
  const skip = options.skip ?? {};
  const it = (title: string, fn: () => Promise<void>): void => {
    const match = Object.keys(skip).find((part) => title.includes(part));
    if (match === undefined) return t.it(title, fn);
    const skipped = `${title} [skipped: ${skip[match]}]`;
    const itSkip = (t.it as { skip?: (name: string, fn: () => Promise<void>) => void }).skip;
    // Frameworks without it.skip still list the case, as a no-op that names the reason.
    if (typeof itSkip === 'function') itSkip.call(t.it, skipped, fn);
    else t.it(skipped, async () => undefined);
  };
  t.describe(`${name} — SessionStore contract`, () => {
    let store: SessionStore;
    const user = (label: string) => `contract-${label}-${randomBytes(6).toString('hex')}`;

    t.beforeAll(async () => {
      store = await options.create();
    });
    t.afterAll(async () => {
      if (store) await options.cleanup?.(store);
    });

    it('returns null for an unknown key and creates nothing (TOK-7)', async () => {
      const key = randomStorageKey();
      assert.equal(await store.load(key), null);
      assert.equal(await store.load(key), null);
      assert.equal(
        await store.touch(key, { lastActiveAt: 1, expiresAt: Date.now() + 1000 }),
        false,
      );
      assert.equal(await store.load(key), null);
    });

    it('creates a session and loads it back with its data and times', async () => {
      const write = createWrite({ name: 'ann', cart: ['a', 'b'], n: 1.5, ok: true, none: null });
      await store.save(write);
      const record = await store.load(write.key);
      assert.ok(record);
      assert.equal(record.key, write.key);
      assert.deepEqual(decode(record.data), {
        name: 'ann',
        cart: ['a', 'b'],
        n: 1.5,
        ok: true,
        none: null,
      });
      assert.equal(record.createdAt, write.createdAt);
      assert.equal(record.lastActiveAt, write.lastActiveAt);
      assert.equal(record.expiresAt, write.expiresAt);
      assert.equal(record.absoluteExpiresAt, write.absoluteExpiresAt);
      assert.equal(record.userId, null);
      assert.equal(typeof record.version, 'number');
    });

    it('refuses to create over an existing session', async () => {
      const write = createWrite({ a: 1 });
      await store.save(write);
      await assert.rejects(store.save({ ...write, set: encode({ a: 2 }) }), SessionGoneError);
      const record = await store.load(write.key);
      assert.deepEqual(decode(record!.data), { a: 1 });
    });

    it('applies a delta: changed keys written, removed keys gone, the rest untouched (ST-2)', async () => {
      const write = createWrite({ a: 1, b: 2, c: 3 });
      await store.save(write);
      await store.save(updateWrite(write, { setData: { b: 20, d: 4 }, unset: ['c'] }));
      const record = await store.load(write.key);
      assert.deepEqual(decode(record!.data), { a: 1, b: 20, d: 4 });
      assert.ok(record!.version > 0);
    });

    it('answers the same through loadSync/saveSync, when it offers them, as through load/save', async () => {
      if (!store.loadSync && !store.saveSync) return;
      assert.ok(store.loadSync && store.saveSync, 'offer both loadSync and saveSync, or neither');
      const write = createWrite({ a: 1 });
      assert.equal(store.saveSync(write), undefined);
      assert.deepEqual(store.loadSync(write.key), await store.load(write.key));
      store.saveSync(updateWrite(write, { setData: { b: 2 }, unset: ['a'] }));
      assert.deepEqual(decode(store.loadSync(write.key)!.data), { b: 2 });
      assert.throws(() => store.saveSync!(write), SessionGoneError);
      await store.destroy(write.key);
      assert.equal(store.loadSync(write.key), null);
      assert.throws(
        () => store.saveSync!(updateWrite(write, { setData: { c: 3 } })),
        SessionGoneError,
      );
    });

    it('keeps both writes when concurrent requests change different keys (ST-2)', async () => {
      const write = createWrite({ base: true });
      await store.save(write);
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      await Promise.all(
        keys.map((k, i) => store.save(updateWrite(write, { setData: { [k]: i } }))),
      );
      const data = decode((await store.load(write.key))!.data);
      for (const [i, k] of keys.entries()) assert.equal(data[k], i);
      assert.equal(data.base, true);
    });

    it('does not resurrect a destroyed session: the update fails and nothing is written (LC-6)', async () => {
      const write = createWrite({ a: 1 }, { userId: user('lc6') });
      await store.save(write);
      await store.destroy(write.key);
      await assert.rejects(store.save(updateWrite(write, { setData: { b: 2 } })), SessionGoneError);
      assert.equal(await store.load(write.key), null);
      assert.deepEqual(await store.listForUser(write.userId!), []);
    });

    it('moves a session to a new key on regenerate, atomically, with the delta (LC-1)', async () => {
      const userId = user('lc1');
      const write = createWrite({ a: 1, b: 2 }, { userId });
      await store.save(write);
      const newKey = randomStorageKey();
      await store.save(
        updateWrite(write, {
          key: newKey,
          previousKey: write.key,
          setData: { c: 3 },
          unset: ['b'],
        }),
      );
      assert.equal(await store.load(write.key), null);
      const record = await store.load(newKey);
      assert.deepEqual(decode(record!.data), { a: 1, c: 3 });
      assert.equal(record!.createdAt, write.createdAt);
      const listed = (await store.listForUser(userId)).map((r) => r.key);
      assert.deepEqual(listed, [newKey]);
    });

    it('lets only one of two concurrent regenerates win (LC-7)', async () => {
      const write = createWrite({ a: 1 });
      await store.save(write);
      const [k1, k2] = [randomStorageKey(), randomStorageKey()];
      const results = await Promise.allSettled([
        store.save(updateWrite(write, { key: k1, previousKey: write.key })),
        store.save(updateWrite(write, { key: k2, previousKey: write.key })),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(won, 1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(lost.reason instanceof SessionGoneError);
      assert.equal(await store.load(write.key), null);
      const winner = results[0].status === 'fulfilled' ? k1 : k2;
      const loser = winner === k1 ? k2 : k1;
      assert.ok(await store.load(winner));
      assert.equal(await store.load(loser), null);
    });

    it('replaces all data when a write says so', async () => {
      const write = createWrite({ a: 1, b: 2 });
      await store.save(write);
      const newKey = randomStorageKey();
      await store.save(
        updateWrite(write, {
          key: newKey,
          previousKey: write.key,
          replace: true,
          setData: { z: 26 },
        }),
      );
      assert.deepEqual(decode((await store.load(newKey))!.data), { z: 26 });
    });

    it('touch writes only the activity times and keeps the data', async () => {
      const write = createWrite({ a: 1 });
      await store.save(write);
      const lastActiveAt = Date.now() + 5;
      const expiresAt = lastActiveAt + 120_000;
      assert.equal(await store.touch(write.key, { lastActiveAt, expiresAt }), true);
      const record = await store.load(write.key);
      assert.equal(record!.lastActiveAt, lastActiveAt);
      assert.equal(record!.expiresAt, Math.min(expiresAt, write.absoluteExpiresAt));
      assert.deepEqual(decode(record!.data), { a: 1 });
    });

    it('never returns a session whose expiry has passed (TO-3)', async () => {
      const now = Date.now();
      const write = createWrite({ a: 1 }, { expiresAt: now + 150 });
      await store.save(write);
      assert.ok(await store.load(write.key));
      await sleep(300);
      assert.equal(await store.load(write.key), null);
      assert.equal(
        await store.touch(write.key, { lastActiveAt: now, expiresAt: now + 60_000 }),
        false,
      );
      await assert.rejects(store.save(updateWrite(write, { setData: { b: 1 } })), SessionGoneError);
    });

    it('indexes sessions by user: list, and destroy all except some (REV-1)', async () => {
      const [ann, bob] = [user('ann'), user('bob')];
      const annWrites = [
        createWrite({ n: 1 }, { userId: ann }),
        createWrite({ n: 2 }, { userId: ann }),
        createWrite({ n: 3 }, { userId: ann }),
      ];
      const bobWrite = createWrite({ n: 4 }, { userId: bob });
      for (const w of [...annWrites, bobWrite]) await store.save(w);
      const listed = await store.listForUser(ann);
      assert.deepEqual(listed.map((r) => r.key).sort(), annWrites.map((w) => w.key).sort());
      assert.ok(listed.every((r) => r.userId === ann));
      const ended = await store.destroyForUser(ann, [annWrites[0].key]);
      assert.equal(ended, 2);
      assert.ok(await store.load(annWrites[0].key));
      assert.equal(await store.load(annWrites[1].key), null);
      assert.equal(await store.load(annWrites[2].key), null);
      assert.ok(await store.load(bobWrite.key));
      assert.deepEqual(
        (await store.listForUser(ann)).map((r) => r.key),
        [annWrites[0].key],
      );
      assert.equal(await store.destroyForUser(user('nobody')), 0);
    });

    it('keeps the user index right through a change of user, destroy and expiry (REV-2)', async () => {
      const [ann, bob] = [user('ann'), user('bob')];
      const write = createWrite({ a: 1 }, { userId: ann });
      await store.save(write);
      await store.save(updateWrite(write, { userId: bob }));
      assert.deepEqual(await store.listForUser(ann), []);
      assert.deepEqual(
        (await store.listForUser(bob)).map((r) => r.key),
        [write.key],
      );
      await store.destroy(write.key);
      assert.deepEqual(await store.listForUser(bob), []);

      const short = createWrite({ a: 1 }, { userId: ann, expiresAt: Date.now() + 150 });
      await store.save(short);
      await sleep(300);
      assert.deepEqual(await store.listForUser(ann), []);
      assert.equal(await store.destroyForUser(ann), 0);
    });

    it('stores hostile keys as plain data, never touching prototypes (IN-2)', async () => {
      const write = createWrite();
      const set = {
        ['__proto__']: '{"polluted":true}',
        constructor: '{"prototype":{"polluted":true}}',
        'a.b': '1',
        'ключ 🔑': '"значение ✓"',
        '': '0',
      };
      const hostile = { ...write, set: Object.fromEntries(Object.entries(set)) };
      await store.save(hostile);
      const record = await store.load(write.key);
      assert.ok(record);
      assert.equal(record.data['ключ 🔑'], '"значение ✓"');
      assert.equal(record.data['a.b'], '1');
      assert.equal(
        Object.getOwnPropertyDescriptor(record.data, '__proto__')?.value,
        '{"polluted":true}',
      );
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(Object.getPrototypeOf(record.data), Object.prototype);
    });

    it('round-trips large values', async () => {
      const big = 'x'.repeat(256 * 1024);
      const write = createWrite({ big });
      await store.save(write);
      assert.equal(decode((await store.load(write.key))!.data).big, big);
    });

    it('hands out copies: changing a loaded record does not change the store (ST-9)', async () => {
      const write = createWrite({ a: 1 });
      await store.save(write);
      const record = await store.load(write.key);
      (record!.data as Record<string, string>).a = '2';
      assert.deepEqual(decode((await store.load(write.key))!.data), { a: 1 });
    });

    it('treats destroying a missing session as a no-op', async () => {
      await store.destroy(randomStorageKey());
    });

    it('applies an optimistic write only when the expected keys are unchanged (ST-3)', async () => {
      const write = createWrite({ cart: ['a'], other: 1 });
      await store.save(write);
      const loaded = (await store.load(write.key))!;
      await store.save(updateWrite(write, { setData: { cart: ['a', 'b'] } }));
      await assert.rejects(
        store.save(
          updateWrite(write, { setData: { cart: ['a', 'c'] }, expect: { cart: loaded.data.cart } }),
        ),
        SessionConflictError,
      );
      assert.deepEqual(decode((await store.load(write.key))!.data).cart, ['a', 'b']);
      // Keys nobody else changed (and absent keys) pass.
      await store.save(
        updateWrite(write, {
          setData: { other: 2, fresh: true },
          expect: { other: '1', fresh: null },
        }),
      );
      assert.deepEqual(decode((await store.load(write.key))!.data), {
        cart: ['a', 'b'],
        other: 2,
        fresh: true,
      });
    });

    it('lets exactly one of many concurrent optimistic writes with the same expectation win (ST-3)', async () => {
      const write = createWrite({ counter: 0 });
      await store.save(write);
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          store.save(updateWrite(write, { setData: { counter: i + 1 }, expect: { counter: '0' } })),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof SessionConflictError);
      }
    });

    it('grants a session lock to one owner at a time, releases it only for its owner, and expires it', async () => {
      assert.equal(typeof store.acquireLock, 'function', 'the store has no acquireLock');
      assert.equal(typeof store.releaseLock, 'function', 'the store has no releaseLock');
      const key = randomStorageKey();
      assert.equal(await store.acquireLock!(key, 'a', 300), true);
      assert.equal(await store.acquireLock!(key, 'b', 300), false);
      await store.releaseLock!(key, 'b');
      assert.equal(await store.acquireLock!(key, 'b', 300), false);
      await store.releaseLock!(key, 'a');
      assert.equal(await store.acquireLock!(key, 'b', 300), true);
      await sleep(450);
      assert.equal(await store.acquireLock!(key, 'c', 300), true);
      await store.releaseLock!(key, 'c');
      const racers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.acquireLock!(`${key}:race`, `o${i}`, 1000)),
      );
      assert.equal(racers.filter(Boolean).length, 1);
    });

    it('renews a lock lease only for its owner and only while it holds it (renewLock, when offered)', async () => {
      if (typeof store.renewLock !== 'function') return;
      const key = randomStorageKey();
      assert.equal(await store.acquireLock!(key, 'a', 300), true);
      // Another owner can neither renew nor thereby take it.
      assert.equal(await store.renewLock(key, 'b', 5000), false);
      await sleep(200);
      assert.equal(await store.renewLock(key, 'a', 600), true);
      await sleep(250);
      // 450 ms after the acquire: past the first lease, still inside the renewed one.
      assert.equal(await store.acquireLock!(key, 'b', 300), false);
      await sleep(500);
      // The renewed lease ran out: the lock is free, and a late renew by its old owner fails.
      assert.equal(await store.renewLock(key, 'a', 5000), false);
      assert.equal(await store.acquireLock!(key, 'b', 300), true);
      await store.releaseLock!(key, 'b');
      // A lock that was never taken cannot be renewed into existence.
      assert.equal(await store.renewLock(randomStorageKey(), 'a', 5000), false);
    });

    it('applies a write under a session lock only while its writer holds the lock (lockOwner fencing)', async () => {
      // With a user, so that the user-index key takes its place beside the lock's.
      const base = createWrite({ writes: [] }, { userId: `fence-${randomStorageKey()}` });
      await store.save(base);
      const key = base.key;
      assert.equal(await store.acquireLock!(key, 'a', 5000), true);
      await store.save(updateWrite(base, { setData: { writes: [1] }, lockOwner: 'a' }));
      await store.releaseLock!(key, 'a');
      assert.equal(await store.acquireLock!(key, 'b', 5000), true);
      await store.save(updateWrite(base, { setData: { writes: [1, 2] }, lockOwner: 'b' }));
      // A's write arrives late (a client's resend after its request gave up): refused, nothing
      // written, so B's acknowledged write stands.
      await assert.rejects(
        store.save(updateWrite(base, { setData: { writes: [1, 3] }, lockOwner: 'a' })),
        (error: unknown) => error instanceof SessionConflictError,
      );
      // Even when its optimistic expectation still holds.
      await assert.rejects(
        store.save(
          updateWrite(base, {
            setData: { writes: [1, 3] },
            expect: { writes: JSON.stringify([1, 2]) },
            lockOwner: 'a',
          }),
        ),
        (error: unknown) => error instanceof SessionConflictError,
      );
      assert.deepEqual(decode((await store.load(key))!.data), { writes: [1, 2] });
      await store.releaseLock!(key, 'b');
      // Nobody holds it now (released, or a lease that lapsed): refused as unavailable (503).
      await assert.rejects(
        store.save(updateWrite(base, { setData: { writes: [] }, lockOwner: 'b' })),
        (error: unknown) => error instanceof SessionStoreUnavailableError,
      );
      assert.deepEqual(decode((await store.load(key))!.data), { writes: [1, 2] });
      // A late regenerate is fenced the same way: the old key keeps the session, no new key.
      assert.equal(await store.acquireLock!(key, 'c', 5000), true);
      const moved = randomStorageKey();
      await assert.rejects(
        store.save(updateWrite(base, { key: moved, previousKey: key, lockOwner: 'a' })),
        (error: unknown) => error instanceof SessionConflictError,
      );
      assert.equal(await store.load(moved), null);
      assert.deepEqual(decode((await store.load(key))!.data), { writes: [1, 2] });
      await store.save(updateWrite(base, { key: moved, previousKey: key, lockOwner: 'c' }));
      assert.deepEqual(decode((await store.load(moved))!.data), { writes: [1, 2] });
      await store.releaseLock!(key, 'c');
      await store.destroy(moved);
    });
  });
}
