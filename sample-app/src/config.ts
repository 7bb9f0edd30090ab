import { Logger } from '@nestjs/common';

/** The sample app's settings, read from the environment. */
export interface SampleConfig {
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

const DEVELOPMENT_SECRET = 'nestjs-sessions-sample-app-dev-only-3b9f1c7e2a54d8f6';

/** Reads PORT, SESSION_SECRET, SESSION_STORE, REDIS_URL, DATABASE_URL and SESSION_KEY_PREFIX. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const store = (env.SESSION_STORE ?? 'memory') as SampleConfig['store'];
  if (!['memory', 'redis', 'postgres', 'cookie'].includes(store)) {
    throw new Error(`SESSION_STORE must be memory, redis, postgres or cookie (got "${store}")`);
  }
  let secret = env.SESSION_SECRET;
  if (!secret) {
    if (env.NODE_ENV === 'production') {
      throw new Error('SESSION_SECRET is required in production (32+ random characters)');
    }
    new Logger('SampleApp').warn(
      'SESSION_SECRET is not set: using a development secret. Never do this in production.',
    );
    secret = DEVELOPMENT_SECRET;
  }
  return {
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
