// Store clients and store construction for the bench apps. When a store's constructor changes,
// this is the one file to adapt.
import { Unavailable, env, libImport, optionalImport } from './common.mjs';

/**
 * The node-redis package the apps use: the current major (6, installed as the `redis-6` alias so the
 * tests keep their own `redis`), or BENCH_REDIS_CLIENT (e.g. `redis` for the tests' v5).
 */
export const redisPackage = process.env.BENCH_REDIS_CLIENT || 'redis-6';

/** `client` (node-redis or ioredis) once connected, or Unavailable when Redis is not reachable. */
async function connected(client) {
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new Unavailable(
      `Redis at ${env.redisUrl} is not reachable (${error.code ?? error.message})`,
    );
  }
  return client;
}

/** A connected node-redis client (connect-redis and RedisSessionStore both take one). */
export async function redisClient() {
  const { createClient } = await optionalImport(redisPackage, 'createClient');
  // Set up as docs/redis.md shows (no offline queue: fail fast while disconnected).
  const client = createClient({
    url: env.redisUrl,
    disableOfflineQueue: true,
    socket: { connectTimeout: 2000, reconnectStrategy: false },
  });
  return connected(client);
}

/**
 * A connected ioredis client, set up as docs/redis.md shows (no offline queue, socket timeout,
 * auto-pipelining).
 */
export async function ioredisClient() {
  const { Redis } = await optionalImport('ioredis', 'Redis');
  const client = new Redis(env.redisUrl, {
    enableOfflineQueue: false,
    connectTimeout: 2000,
    socketTimeout: 1000,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  return connected(client);
}

/**
 * Deletes this app's keys (everything under its unique prefix) so runs leave nothing behind.
 * `client`: node-redis or ioredis.
 */
export async function deletePrefix(client, prefix) {
  const pages = client.scanStream
    ? client.scanStream({ match: `${prefix}*`, count: 1000 })
    : client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 });
  let batch = [];
  for await (const keys of pages) {
    batch.push(...keys);
    if (batch.length >= 1000) {
      await client.unlink(batch);
      batch = [];
    }
  }
  if (batch.length) await client.unlink(batch);
}

/** A pg Pool that has answered one query. */
export async function pgPool() {
  const pg = await optionalImport('pg');
  const Pool = pg.Pool ?? pg.default?.Pool;
  const pool = new Pool({
    connectionString: env.databaseUrl,
    max: 10,
    connectionTimeoutMillis: 2000,
  });
  pool.on('error', () => {});
  try {
    await pool.query('select 1');
  } catch (error) {
    await pool.end().catch(() => {});
    throw new Unavailable(
      `PostgreSQL at ${env.databaseUrl} is not reachable (${error.code ?? error.message})`,
    );
  }
  return pool;
}

/**
 * A nestjs-sessions store: `{ store, close }`. `store` is `undefined` for the module's default
 * memory store (what an app gets without a `store` option).
 */
export async function nestjsSessionsStore(kind) {
  switch (kind) {
    case 'memory':
      return { store: undefined, close: async () => {} };
    case 'redis':
    case 'ioredis': {
      const { RedisSessionStore } = await libImport('redis', 'RedisSessionStore');
      const client = kind === 'redis' ? await redisClient() : await ioredisClient();
      const store = construct(RedisSessionStore, { client, prefix: env.prefix });
      return {
        store,
        close: async () => {
          await store.close?.();
          await deletePrefix(client, env.prefix).catch(() => {});
          await client.quit().catch(() => {});
        },
      };
    }
    case 'postgres': {
      const { PostgresSessionStore } = await libImport('postgres', 'PostgresSessionStore');
      const pool = await pgPool();
      const table = `bench_sessions_${process.pid}`;
      const store = construct(PostgresSessionStore, { pool, tableName: table, createTable: true });
      // Whatever the store calls its schema step, run it before the first request.
      for (const step of ['ensureTable', 'init', 'initialize', 'migrate', 'ensureSchema']) {
        if (typeof store[step] === 'function') {
          await store[step]();
          break;
        }
      }
      return {
        store,
        close: async () => {
          await store.close?.();
          await pool.query(`drop table if exists ${table}, ${table}_locks cascade`).catch(() => {});
          await pool.end().catch(() => {});
        },
      };
    }
    default:
      throw new Error(`unknown store '${kind}'`);
  }
}

function construct(Store, options) {
  try {
    return new Store(options);
  } catch (error) {
    throw new Unavailable(
      `${Store.name} refused the bench's options ${Object.keys(options).join(', ')} (${error.message}); adapt bench/apps/stores.mjs`,
    );
  }
}
