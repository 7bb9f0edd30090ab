import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createClient } from 'redis';
import { describeWithService, SERVICES } from '../../../test/support/services.js';
import type { SharedCredentialStore } from '../interfaces/shared-credential-store.interface.js';
import { SharedSessionClient } from '../shared-session.client.js';
import { MemorySharedCredentialStore } from './memory-credential.store.js';
import { PostgresSharedCredentialStore } from './postgres-credential.store.js';
import { RedisSharedCredentialStore } from './redis-credential.store.js';

const describeRedis = await describeWithService('redis');
const describePostgres = await describeWithService('postgres');

const unique = () => randomBytes(6).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A store per simulated process, all on one backend, and how to clean up. */
interface Backend {
  open(): Promise<SharedCredentialStore>;
  /** Puts a login lock in the backend directly, as a process that crashed mid-login leaves it. */
  plantLock(name: string, owner: string, ttlMs: number): Promise<void>;
  cleanup(): Promise<void>;
}

/** An upstream with cookie sessions that can all be expired at once; counts logins. */
async function startUpstream() {
  const sessions = new Set<string>();
  const state = { logins: 0, url: '' };
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/login') {
      setTimeout(() => {
        const sid = unique();
        sessions.add(sid);
        state.logins++;
        res.writeHead(204, { 'set-cookie': `sid=${sid}; Path=/` }).end();
      }, 30);
      return;
    }
    const sid = /sid=(\w+)/.exec(req.headers.cookie ?? '')?.[1];
    res.writeHead(sid && sessions.has(sid) ? 200 : 401).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    state,
    expireAll: () => sessions.clear(),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The contract every SharedCredentialStore passes, plus single flight over several "processes". */
function credentialStoreContract(label: string, makeBackend: () => Promise<Backend>): void {
  describe(label, () => {
    let backend: Backend;
    let store: SharedCredentialStore;
    let other: SharedCredentialStore;
    let name: string;

    beforeAll(async () => {
      backend = await makeBackend();
      store = await backend.open();
      other = await backend.open();
    });

    afterAll(async () => {
      await backend.cleanup();
    });

    const fresh = () => (name = `up-${unique()}`);

    it('returns null for an upstream never written', async () => {
      expect(await store.get(fresh())).toBeNull();
    });

    it('keeps the record, and another connection reads the same', async () => {
      fresh();
      const record = {
        generation: 3,
        credential: '{"v":1,"cookies":null,"headers":[]}',
        updatedAt: 1_700_000_000_123,
        failures: 2,
        retryAt: 1_700_000_009_999,
      };
      expect(await store.acquireLock(name, 'owner-a', 5_000)).toBe(true);
      expect(await store.set(name, record, 'owner-a')).toBe(true);
      expect(await other.get(name)).toEqual(record);
      expect(
        await store.set(
          name,
          { generation: 4, credential: null, updatedAt: 1_700_000_001_000, failures: 0 },
          'owner-a',
        ),
      ).toBe(true);
      await store.releaseLock(name, 'owner-a');
      expect(await other.get(name)).toEqual({
        generation: 4,
        credential: null,
        updatedAt: 1_700_000_001_000,
        failures: 0,
      });
    });

    it('gives the lock to one owner at a time, and only the owner releases it', async () => {
      fresh();
      expect(await store.acquireLock(name, 'owner-a', 5_000)).toBe(true);
      expect(await other.acquireLock(name, 'owner-b', 5_000)).toBe(false);
      expect(await other.releaseLock(name, 'owner-b')).toBe(false);
      expect(await other.acquireLock(name, 'owner-b', 5_000)).toBe(false);
      expect(await store.releaseLock(name, 'owner-a')).toBe(true);
      expect(await store.releaseLock(name, 'owner-a')).toBe(false);
      expect(await other.acquireLock(name, 'owner-b', 5_000)).toBe(true);
      await other.releaseLock(name, 'owner-b');
    });

    it('does not let the lock disturb the record', async () => {
      fresh();
      expect(await store.acquireLock(name, 'owner-a', 5_000)).toBe(true);
      expect(await store.get(name)).toBeNull();
      await store.set(
        name,
        { generation: 1, credential: 'c', updatedAt: 1, failures: 0 },
        'owner-a',
      );
      await store.releaseLock(name, 'owner-a');
      expect(await store.get(name)).toMatchObject({ generation: 1, credential: 'c' });
    });

    it('writes the record only while the writer holds an unexpired lock', async () => {
      fresh();
      const record = (generation: number) => ({
        generation,
        credential: `c${generation}`,
        updatedAt: generation,
        failures: 0,
      });
      expect(await store.set(name, record(1), 'owner-a')).toBe(false);
      expect(await store.get(name)).toBeNull();
      expect(await store.acquireLock(name, 'owner-a', 600)).toBe(true);
      expect(await other.set(name, record(1), 'owner-b')).toBe(false);
      expect(await store.set(name, record(1), 'owner-a')).toBe(true);
      await sleep(700);
      // A holder that outlived its lock writes nothing, before and after the next one took over.
      expect(await store.set(name, record(9), 'owner-a')).toBe(false);
      expect(await other.acquireLock(name, 'owner-b', 5_000)).toBe(true);
      expect(await store.set(name, record(9), 'owner-a')).toBe(false);
      expect(await other.set(name, record(2), 'owner-b')).toBe(true);
      expect(await store.get(name)).toMatchObject({ generation: 2, credential: 'c2' });
      await other.releaseLock(name, 'owner-b');
      expect(await other.set(name, record(3), 'owner-b')).toBe(false);
    });

    it('expires a lock whose holder never releases it (crashed holder)', async () => {
      fresh();
      expect(await store.acquireLock(name, 'crashed', 600)).toBe(true);
      expect(await other.acquireLock(name, 'next', 5_000)).toBe(false);
      await sleep(700);
      expect(await other.acquireLock(name, 'next', 5_000)).toBe(true);
      // The crashed holder, come back, cannot release the new owner's lock.
      expect(await store.releaseLock(name, 'crashed')).toBe(false);
      expect(await store.acquireLock(name, 'third', 5_000)).toBe(false);
      expect(await other.releaseLock(name, 'next')).toBe(true);
    });

    it('grants exactly one of many simultaneous lock requests', async () => {
      fresh();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? store : other).acquireLock(name, `o${i}`, 5_000),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('lets four clients (four "processes") on their own connections log in once after expiry', async () => {
      fresh();
      const upstream = await startUpstream();
      const clients: SharedSessionClient[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          clients.push(
            new SharedSessionClient({
              name,
              baseUrl: upstream.state.url,
              store: await backend.open(),
              logger: false,
              login: async (ctx) => {
                const res = await ctx.post('/login');
                if (!res.ok) throw new Error('refused');
              },
            }),
          );
        }
        await clients[0].get('/data');
        upstream.expireAll();
        const responses = await Promise.all(
          clients.flatMap((client) => Array.from({ length: 25 }, () => client.get('/data'))),
        );
        expect(responses.every((r) => r.status === 200)).toBe(true);
        expect(upstream.state.logins).toBe(2);
        expect(clients.map((c) => c.generation)).toEqual([2, 2, 2, 2]);
      } finally {
        clients.forEach((client) => client.close());
        await upstream.close();
      }
    });

    it('gets past a lock planted by a crashed holder once it expires', async () => {
      fresh();
      const upstream = await startUpstream();
      const client = new SharedSessionClient({
        name,
        baseUrl: upstream.state.url,
        store: await backend.open(),
        logger: false,
        loginTimeout: 600,
        lockTtl: 1_000,
        login: async (ctx) => {
          const res = await ctx.post('/login');
          if (!res.ok) throw new Error('refused');
        },
      });
      try {
        // As long as the lock can live: the waiters must outlast it rather than give up at loginTimeout.
        await backend.plantLock(name, 'crashed-process', 1_000);
        const started = Date.now();
        const responses = await Promise.all(Array.from({ length: 10 }, () => client.get('/data')));
        const elapsed = Date.now() - started;
        expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
        expect(upstream.state.logins).toBe(1);
        expect(elapsed).toBeGreaterThanOrEqual(900);
        expect(elapsed).toBeLessThan(3_000);
      } finally {
        client.close();
        await upstream.close();
      }
    });
  });
}

credentialStoreContract('MemorySharedCredentialStore', async () => {
  const shared = new MemorySharedCredentialStore();
  return {
    open: async () => shared,
    plantLock: async (name, owner, ttl) => {
      await shared.acquireLock(name, owner, ttl);
    },
    cleanup: async () => undefined,
  };
});

describeRedis('Redis', () => {
  const prefix = `test:upstream-credential:${unique()}:`;

  async function cleanKeys(): Promise<void> {
    const redis = new Redis(SERVICES.redis.url);
    try {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  }

  credentialStoreContract('RedisSharedCredentialStore with node-redis v5', async () => {
    const clients: Array<ReturnType<typeof createClient>> = [];
    return {
      open: async () => {
        const client = createClient({ url: SERVICES.redis.url });
        clients.push(client);
        await client.connect();
        return new RedisSharedCredentialStore({ client, prefix });
      },
      plantLock: async (name, owner, ttl) => {
        const client = clients[0];
        await client.set(`${prefix}{${name}}:lock`, owner, { PX: ttl });
      },
      cleanup: async () => {
        await cleanKeys();
        await Promise.all(clients.map((client) => client.close()));
      },
    };
  });

  credentialStoreContract('RedisSharedCredentialStore with ioredis', async () => {
    const clients: Redis[] = [];
    return {
      open: async () => {
        const client = new Redis(SERVICES.redis.url);
        clients.push(client);
        return new RedisSharedCredentialStore({ client, prefix });
      },
      plantLock: async (name, owner, ttl) => {
        await clients[0].set(`${prefix}{${name}}:lock`, owner, 'PX', ttl);
      },
      cleanup: async () => {
        await cleanKeys();
        clients.forEach((client) => client.disconnect());
      },
    };
  });

  it('refuses something that is not a Redis client', () => {
    expect(() => new RedisSharedCredentialStore({ client: {} as never })).toThrow(
      /node-redis v5 or ioredis/,
    );
  });
});

describePostgres('PostgreSQL', () => {
  credentialStoreContract('PostgresSharedCredentialStore', async () => {
    const tableName = `test_shared_credentials_${unique()}`;
    const pools: pg.Pool[] = [];
    const pool = () => {
      const created = new pg.Pool({ connectionString: SERVICES.postgres.url, max: 3 });
      pools.push(created);
      return created;
    };
    return {
      open: async () => new PostgresSharedCredentialStore({ pool: pool(), tableName }),
      plantLock: async (name, owner, ttl) => {
        const store = new PostgresSharedCredentialStore({ pool: pools[0], tableName });
        await store.acquireLock(name, owner, ttl);
      },
      cleanup: async () => {
        await pools[0]?.query(`DROP TABLE IF EXISTS "${tableName}"`);
        await Promise.all(pools.map((p) => p.end()));
      },
    };
  });

  it('creates its table once even when several processes start together', async () => {
    const tableName = `test_shared_credentials_${unique()}`;
    const pools = Array.from(
      { length: 4 },
      () => new pg.Pool({ connectionString: SERVICES.postgres.url, max: 1 }),
    );
    try {
      const stores = pools.map((pool) => new PostgresSharedCredentialStore({ pool, tableName }));
      await Promise.all(
        stores.map(async (store, i) => {
          await store.acquireLock(`n${i}`, 'owner', 5_000);
          await store.set(`n${i}`, { generation: 1, credential: null, updatedAt: 1 }, 'owner');
        }),
      );
      expect(await stores[0].get('n3')).toMatchObject({ generation: 1 });
    } finally {
      await pools[0].query(`DROP TABLE IF EXISTS "${tableName}"`);
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it('refuses a table name that is not a plain identifier', () => {
    const pool = { query: async () => ({ rows: [], rowCount: 0 }) };
    expect(() => new PostgresSharedCredentialStore({ pool, tableName: 'x; DROP TABLE y' })).toThrow(
      /tableName/,
    );
  });
});
