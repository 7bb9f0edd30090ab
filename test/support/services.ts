import { describe } from '@jest/globals';
import { connect } from 'node:net';

/** The real servers some tests need, on loopback. */
export const SERVICES = {
  redis: {
    host: '127.0.0.1',
    port: 6379,
    url: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  },
  postgres: {
    host: '127.0.0.1',
    port: 5432,
    url: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  },
} as const;

export type ServiceName = keyof typeof SERVICES;

/** CI sets SESSION_TEST_SERVICES=required: a missing service then fails the run instead of skipping. */
const required = process.env.SESSION_TEST_SERVICES === 'required';

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * `describe` when the service answers; otherwise `describe.skip` with a printed reason, or a thrown
 * error when services are required (CI).
 * @example const describeRedis = await describeWithService('redis');
 */
export async function describeWithService(name: ServiceName): Promise<typeof describe> {
  const { host, port } = SERVICES[name];
  if (await reachable(host, port)) return describe;
  const reason = `${name} is not reachable at ${host}:${port}`;
  if (required) throw new Error(`${reason}, and SESSION_TEST_SERVICES=required`);
  console.warn(`Skipping ${name} tests: ${reason}. Start it to run them.`);
  return describe.skip as unknown as typeof describe;
}

/** Drops a test's PostgreSQL schema and everything in it (a no-op when it does not exist). */
export async function dropPostgresSchema(schema: string): Promise<void> {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: SERVICES.postgres.url });
  try {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await pool.end();
  }
}
