import { describe } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { MemorySessionStore, type SessionStore } from '../../src/index.js';
import { PostgresSessionStore } from '../../src/postgres/index.js';
import { RedisSessionStore } from '../../src/redis/index.js';
import { SERVICES, describeWithService, dropPostgresSchema } from './services.js';

/** One of the built-in stores, as a spec runs its tests on it. */
interface StoreUnderTest {
  readonly name: 'memory' | 'redis' | 'postgres';
  /** `describe`, or one that skips with a printed reason when the service is absent (CI: fails). */
  readonly describe: typeof describe;
  /** A fresh store: its own Redis key prefix, or this run's PostgreSQL schema. */
  create(): SessionStore;
}

/**
 * The memory, Redis and PostgreSQL stores for a spec, with keys and schema named after `label` and
 * a random run id, so that specs and runs cannot collide. Call `dropSchema()` after the tests.
 * @example const { stores, dropSchema } = await storesUnderTest('limit');
 */
export async function storesUnderTest(
  label: string,
): Promise<{ stores: StoreUnderTest[]; dropSchema(): Promise<void> }> {
  const run = randomBytes(4).toString('hex');
  const schema = `test_${label}_${run}`;
  const describePostgres = await describeWithService('postgres');
  const stores: StoreUnderTest[] = [
    { name: 'memory', describe, create: () => new MemorySessionStore() },
    {
      name: 'redis',
      describe: await describeWithService('redis'),
      create: () =>
        new RedisSessionStore({
          url: SERVICES.redis.url,
          prefix: `test:${label}:${run}:${randomBytes(3).toString('hex')}:`,
        }),
    },
    {
      name: 'postgres',
      describe: describePostgres,
      create: () => new PostgresSessionStore({ connectionString: SERVICES.postgres.url, schema }),
    },
  ];
  const dropSchema = async () => {
    if (describePostgres === describe) await dropPostgresSchema(schema);
  };
  return { stores, dropSchema };
}

/**
 * A store that forwards every call to `backing` except the ones in `overrides`: a real store with
 * one failing method, say.
 */
export function overriding(
  backing: MemorySessionStore,
  overrides: Partial<SessionStore>,
): SessionStore {
  return {
    load: (key) => backing.load(key),
    save: (write) => backing.save(write),
    touch: (key, times) => backing.touch(key, times),
    destroy: (key) => backing.destroy(key),
    listForUser: (userId) => backing.listForUser(userId),
    destroyForUser: (userId, except) => backing.destroyForUser(userId, except),
    acquireLock: (key, owner, ttl) => backing.acquireLock(key, owner, ttl),
    releaseLock: (key, owner) => backing.releaseLock(key, owner),
    ...overrides,
  };
}

/** A store with the required methods only, none of the lock methods (for the boot checks). */
export function locklessStore(): SessionStore {
  return {
    load: async () => null,
    save: async () => undefined,
    touch: async () => false,
    destroy: async () => undefined,
    listForUser: async () => [],
    destroyForUser: async () => 0,
  };
}
