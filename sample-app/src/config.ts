import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';

/** The sample app's settings, read from the environment. */
export interface SampleConfig {
  /** HTTP_ADAPTER: the web framework under Nest (default `express`). */
  adapter: 'express' | 'fastify';
  port: number;
  secret: string;
  /** SESSION_STORE: where sessions live; `cookie` is the stateless sealed-cookie mode. */
  store: 'memory' | 'redis' | 'postgres' | 'cookie';
  redisUrl: string;
  databaseUrl: string;
  /** SESSION_PG_SCHEMA: schema of the PostgreSQL session table (default `public`). */
  pgSchema?: string;
  /** SESSION_PG_TABLE: name of the PostgreSQL session table (default `sessions`). */
  pgTable?: string;
  /**
   * SESSION_KEY_PREFIX: prefix of every Redis key the session store writes (default `sess:`).
   * Give each app, or each test run sharing one Redis, its own.
   */
  keyPrefix?: string;
}

/**
 * Where a start without SESSION_SECRET keeps the development secret it generated, so that the
 * cluster workers it forks (they inherit the environment) share it: one start, one secret.
 */
export const GENERATED_SECRET_ENV = 'SAMPLE_APP_GENERATED_SECRET';

/**
 * Reads HTTP_ADAPTER, PORT, SESSION_SECRET, SESSION_STORE, REDIS_URL, DATABASE_URL and SESSION_KEY_PREFIX.
 * Without SESSION_SECRET (outside production) it generates a random secret for this start, with a
 * warning, and records it in `env` for the workers of this start: sessions do not survive a
 * restart, and a cookie from one developer's instance is worthless on another's.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const adapter = (env.HTTP_ADAPTER || 'express') as SampleConfig['adapter'];
  if (adapter !== 'express' && adapter !== 'fastify') {
    throw new Error(`HTTP_ADAPTER must be express or fastify (got "${adapter}")`);
  }
  const store = (env.SESSION_STORE ?? 'memory') as SampleConfig['store'];
  if (!['memory', 'redis', 'postgres', 'cookie'].includes(store)) {
    throw new Error(`SESSION_STORE must be memory, redis, postgres or cookie (got "${store}")`);
  }
  let secret = env.SESSION_SECRET;
  if (!secret) {
    if (env.NODE_ENV === 'production') {
      throw new Error('SESSION_SECRET is required in production (32+ random characters)');
    }
    secret = env[GENERATED_SECRET_ENV];
    if (!secret) {
      secret = randomBytes(32).toString('base64url');
      env[GENERATED_SECRET_ENV] = secret;
      new Logger('SampleApp').warn(
        'SESSION_SECRET is not set: using a random development secret for this start, so ' +
          'sessions end when the app restarts. Set SESSION_SECRET (32+ random characters) to ' +
          'keep them; it is required in production.',
      );
    }
  }
  return {
    adapter,
    port: Number(env.PORT ?? 3000),
    secret,
    store,
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    pgSchema: env.SESSION_PG_SCHEMA || undefined,
    pgTable: env.SESSION_PG_TABLE || undefined,
    keyPrefix: env.SESSION_KEY_PREFIX || undefined,
  };
}
