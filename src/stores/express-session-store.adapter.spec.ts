import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import { createClient } from 'redis';
import { SERVICES, describeWithService } from '../../test/support/services.js';
import type { SessionStore } from '../interfaces/session-store.interface.js';
import { SessionGoneError, SessionStoreUnavailableError } from '../session.errors.js';
import {
  createWrite,
  describeSessionStoreContract,
  randomStorageKey,
  updateWrite as update,
} from '../testing/index.js';
import {
  ExpressSessionStoreAdapter,
  type ExpressSessionStoreLike,
} from './express-session-store.adapter.js';

const describeRedis = await describeWithService('redis');
type NodeRedis = ReturnType<typeof createClient>;

// Compile-time proof that real express-session stores fit the adapter.
export const acceptsRealStores: (
  a: RedisStore,
  b: session.MemoryStore,
) => ExpressSessionStoreLike[] = (a, b) => [a, b];

/**
 * Two app instances sharing one express-session store: each call goes to the next of two
 * adapters, as requests would through a load balancer. Each adapter only serializes its own calls.
 */
function twoInstances(a: SessionStore, b: SessionStore): SessionStore {
  let turn = 0;
  const next = () => (turn++ % 2 === 0 ? a : b);
  return {
    load: (key) => next().load(key),
    save: (write) => next().save(write),
    touch: (key, times) => next().touch(key, times),
    destroy: (key) => next().destroy(key),
    listForUser: (userId) => next().listForUser(userId),
    destroyForUser: (userId, except) => next().destroyForUser(userId, except),
  };
}

/** What the express-session API cannot give at all (see the adapter's JSDoc). */
const NO_LOCKS_REASON =
  "express-session stores have no atomic set-if-absent, so the adapter offers no session locks (concurrency: 'serialize' and @SessionLock() need a built-in store)";
const NO_LOCKS = {
  'grants a session lock': NO_LOCKS_REASON,
  'lockOwner fencing': NO_LOCKS_REASON,
};

/** Why the cross-instance cases cannot hold through the express-session API (see the adapter's JSDoc). */
const ACROSS_INSTANCES = {
  ...NO_LOCKS,
  'keeps both writes when concurrent requests change different keys (ST-2)':
    'express-session stores only offer whole-record get/set: two instances writing one session at once lose one change (the adapter serializes within one process only)',
  'concurrent optimistic writes':
    'express-session stores have no compare-and-set: the optimistic check is a separate read, so two instances can both pass it',
  'lets only one of two concurrent regenerates win (LC-7)':
    'express-session stores have no compare-and-set or rename: two instances regenerating one session at once can both succeed',
};

// ---------------------------------------------------------------------------------------------
// express-session's own MemoryStore: needs no server
// ---------------------------------------------------------------------------------------------

describeSessionStoreContract(
  "ExpressSessionStoreAdapter (express-session's MemoryStore, one instance)",
  { describe, it, beforeAll, afterAll },
  { create: async () => new ExpressSessionStoreAdapter(new session.MemoryStore()), skip: NO_LOCKS },
);

// ---------------------------------------------------------------------------------------------
// connect-redis with a node-redis v5 client
// ---------------------------------------------------------------------------------------------

describeRedis('ExpressSessionStoreAdapter over connect-redis', () => {
  let client: NodeRedis;
  const prefixes: string[] = [];
  const connectRedis = (label: string) => {
    const prefix = `test:adapter:${label}:${randomBytes(5).toString('hex')}:`;
    prefixes.push(prefix);
    return { store: new RedisStore({ client, prefix }), prefix };
  };

  beforeAll(async () => {
    client = createClient({ url: SERVICES.redis.url, disableOfflineQueue: true });
    client.on('error', () => undefined);
    await client.connect();
  });
  afterAll(async () => {
    for (const prefix of prefixes) {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
        if (keys.length > 0) await client.del(keys);
      }
    }
    await client.close();
  });

  describeSessionStoreContract(
    'ExpressSessionStoreAdapter (connect-redis, one instance)',
    { describe, it, beforeAll, afterAll },
    {
      create: async () => new ExpressSessionStoreAdapter(connectRedis('one').store),
      skip: NO_LOCKS,
    },
  );

  // The same contract as seen by two instances: what holds, and (skipped, with the reason) what cannot.
  describeSessionStoreContract(
    'ExpressSessionStoreAdapter (connect-redis, two instances)',
    { describe, it, beforeAll, afterAll },
    {
      create: async () => {
        const { store } = connectRedis('two');
        return twoInstances(
          new ExpressSessionStoreAdapter(store),
          new ExpressSessionStoreAdapter(store),
        );
      },
      skip: ACROSS_INSTANCES,
    },
  );

  describe('storage', () => {
    it('hands connect-redis the session expiry as cookie.expires, so the Redis TTL follows it', async () => {
      const { store, prefix } = connectRedis('ttl');
      const adapter = new ExpressSessionStoreAdapter(store);
      const now = Date.now();
      const write = createWrite(
        { a: 1 },
        { expiresAt: now + 90_000, absoluteExpiresAt: now + 600_000 },
      );
      await adapter.save(write);
      const ttl = await client.ttl(prefix + write.key);
      expect(ttl).toBeGreaterThan(85);
      expect(ttl).toBeLessThanOrEqual(90);
      await adapter.touch(write.key, { lastActiveAt: Date.now(), expiresAt: Date.now() + 300_000 });
      expect(await client.ttl(prefix + write.key)).toBeGreaterThan(290);
    });

    it('keeps records under hashes only: no raw user id in any sid (ST-12)', async () => {
      const { store, prefix } = connectRedis('sids');
      const adapter = new ExpressSessionStoreAdapter(store);
      const write = createWrite({ a: 1 }, { userId: 'bob@example.com' });
      await adapter.save(write);
      const keys: string[] = [];
      for await (const batch of client.scanIterator({ MATCH: `${prefix}*` })) keys.push(...batch);
      const userHash = createHash('sha256').update('bob@example.com').digest('base64url');
      expect(keys.sort()).toEqual([prefix + write.key, `${prefix}user.${userHash}`].sort());
      const stored = JSON.parse((await client.get(prefix + write.key))!);
      expect(stored.nestjsSessions).toMatchObject({
        data: [['a', '1']],
        userId: 'bob@example.com',
        version: 1,
      });
    });

    it('never returns a record whose expiresAt passed, even when the store still holds it (TO-3)', async () => {
      const { store, prefix } = connectRedis('to3');
      const adapter = new ExpressSessionStoreAdapter(store);
      const key = randomStorageKey();
      const past = Date.now() - 1000;
      await client.set(
        prefix + key,
        JSON.stringify({
          cookie: { expires: new Date(Date.now() + 60_000) },
          nestjsSessions: {
            v: 1,
            data: [['role', '"admin"']],
            userId: null,
            createdAt: past,
            lastActiveAt: past,
            expiresAt: past,
            absoluteExpiresAt: past + 60_000,
            version: 1,
          },
        }),
      );
      expect(await adapter.load(key)).toBeNull();
      await expect(
        adapter.save(update(createWrite({}, { key }), { set: { x: '1' } })),
      ).rejects.toBeInstanceOf(SessionGoneError);
      expect(
        await adapter.touch(key, { lastActiveAt: Date.now(), expiresAt: Date.now() + 1000 }),
      ).toBe(false);
    });

    it('ignores records it did not write (a plain express-session session under the same sid)', async () => {
      const { store, prefix } = connectRedis('foreign');
      const adapter = new ExpressSessionStoreAdapter(store);
      const key = randomStorageKey();
      await client.set(
        prefix + key,
        JSON.stringify({ cookie: {}, userId: 'admin', role: 'admin' }),
      );
      expect(await adapter.load(key)).toBeNull();
    });

    it('reports health through the wrapped store', async () => {
      const adapter = new ExpressSessionStoreAdapter(connectRedis('health').store);
      expect(await adapter.checkHealth()).toMatchObject({
        ok: true,
        store: 'express-session adapter (RedisStore)',
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Failures, with hand-made stores
// ---------------------------------------------------------------------------------------------

describe('ExpressSessionStoreAdapter failures', () => {
  it('rejects within its timeout when the store never calls back (FAIL-3)', async () => {
    const silent: ExpressSessionStoreLike = {
      get: () => undefined,
      set: () => undefined,
      destroy: () => undefined,
    };
    const adapter = new ExpressSessionStoreAdapter(silent, { timeout: 150 });
    const started = Date.now();
    await expect(adapter.load(randomStorageKey())).rejects.toBeInstanceOf(
      SessionStoreUnavailableError,
    );
    expect(Date.now() - started).toBeLessThan(500);
    expect(await adapter.checkHealth()).toMatchObject({ ok: false });
  });

  it('turns callback errors, throws and rejected promises into SessionStoreUnavailableError (FAIL-1)', async () => {
    const failing = (how: 'callback' | 'throw' | 'reject'): ExpressSessionStoreLike => {
      const fail = (_sid: string, cb?: (e?: unknown) => void) => {
        if (how === 'callback') return cb?.(new Error('backend down'));
        if (how === 'throw') throw new Error('backend down');
        return Promise.reject(new Error('backend down'));
      };
      return { get: fail, set: (sid, _s, cb) => fail(sid, cb), destroy: fail };
    };
    for (const how of ['callback', 'throw', 'reject'] as const) {
      const adapter = new ExpressSessionStoreAdapter(failing(how));
      await expect(adapter.load(randomStorageKey())).rejects.toBeInstanceOf(
        SessionStoreUnavailableError,
      );
      await expect(adapter.save(createWrite({ a: 1 }))).rejects.toBeInstanceOf(
        SessionStoreUnavailableError,
      );
    }
  });

  it('never passes a key that is not a storage hash to the store (TOK-5)', async () => {
    const calls: string[] = [];
    const spy: ExpressSessionStoreLike = {
      get: (sid, cb) => (calls.push(sid), cb(null, null)),
      set: (sid, _s, cb) => (calls.push(sid), cb?.()),
      destroy: (sid, cb) => (calls.push(sid), cb?.()),
    };
    const adapter = new ExpressSessionStoreAdapter(spy);
    for (const key of ['*', '../etc', 'user.x', 'a b', '']) {
      expect(await adapter.load(key)).toBeNull();
      await adapter.destroy(key);
      expect(await adapter.touch(key, { lastActiveAt: 1, expiresAt: 2 })).toBe(false);
      await expect(adapter.save(createWrite({}, { key }))).rejects.toThrow(TypeError);
    }
    expect(calls).toEqual([]);
  });

  it('refuses something that is not an express-session store', () => {
    expect(() => new ExpressSessionStoreAdapter({} as ExpressSessionStoreLike)).toThrow(
      /get, set and destroy/,
    );
    expect(
      () => new ExpressSessionStoreAdapter(new session.MemoryStore(), { timeout: 'soon' }),
    ).toThrow(/timeout/);
  });
});
