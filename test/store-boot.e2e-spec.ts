import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { SessionConfigError, SessionStoreUnavailableError } from '../src/index.js';
import { PostgresSessionStore } from '../src/postgres/index.js';
import { RedisSessionStore } from '../src/redis/index.js';
import { randomStorageKey } from '../src/testing/index.js';
import { capturingLogger } from './support/logger.js';
import { describeWithService } from './support/services.js';

/**
 * Failures at boot (issue 12): the cause is logged once, without secrets, and while the store is
 * known to be down every call is refused at once instead of waiting for a timeout.
 */

const describePostgres = await describeWithService('postgres');

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let log: ReturnType<typeof capturingLogger>;
beforeEach(() => {
  log = capturingLogger();
  Logger.overrideLogger(log);
});
afterEach(() => {
  Logger.overrideLogger(false);
});

async function lineMatching(pattern: RegExp, within = 5_000): Promise<string> {
  const started = Date.now();
  for (;;) {
    const line = log.lines.find((l) => pattern.test(l));
    if (line) return line;
    if (Date.now() - started > within) throw new Error(`no log line matching ${pattern}`);
    await sleep(20);
  }
}

/** After the first failure, calls are refused at once; and the cause was logged only once. */
async function failsFastAndLogsOnce(call: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await call().catch(() => undefined);
  await lineMatching(pattern);
  for (let i = 0; i < 5; i++) {
    const started = Date.now();
    await expect(call()).rejects.toBeInstanceOf(SessionStoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(100);
  }
  expect(log.lines.filter((l) => pattern.test(l))).toHaveLength(1);
}

describePostgres('PostgresSessionStore failing at boot', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    [
      'a closed port',
      async () => `postgres://postgres:hunter2@127.0.0.1:${await closedPort()}/test`,
      /unreachable: .*ECONNREFUSED/,
    ],
    [
      'a missing database',
      async () => 'postgres://postgres:hunter2@127.0.0.1:5432/no_such_database_x',
      /unreachable: .*database "no_such_database_x" does not exist/,
    ],
    [
      'a missing role',
      async () => 'postgres://no_such_role_x:hunter2@127.0.0.1:5432/test',
      /unreachable: .*role "no_such_role_x" does not exist/,
    ],
  ];
  for (const [label, url, pattern] of cases) {
    it(`logs the cause of ${label} once, without the password, and then refuses at once`, async () => {
      const store = new PostgresSessionStore({ connectionString: await url(), schema: 'boot_x' });
      try {
        await failsFastAndLogsOnce(() => store.load(randomStorageKey()), pattern);
        expect(log.lines.join('\n')).not.toContain('hunter2');
        expect((await store.checkHealth()).ok).toBe(false);
      } finally {
        await store.close();
      }
    });
  }
});

describe('RedisSessionStore failing at boot', () => {
  it('logs a closed port once, without the password, and refuses at once (no 1 s wait per request)', async () => {
    const store = new RedisSessionStore({
      url: `redis://default:hunter2@127.0.0.1:${await closedPort()}`,
    });
    try {
      await failsFastAndLogsOnce(
        () => store.load(randomStorageKey()),
        /unreachable: .*ECONNREFUSED/,
      );
      expect(log.lines.join('\n')).not.toContain('hunter2');
    } finally {
      await store.close();
    }
  });

  it('rejects unknown client shapes and bad durability options at construction, saying what to change', () => {
    const fake = { isReady: true, sendCommand: async () => null };
    expect(
      () => new RedisSessionStore({ client: { sendCommand: async () => null } as never }),
    ).toThrow(SessionConfigError);
    expect(
      () => new RedisSessionStore({ client: fake, waitForReplicas: { replicas: 0, timeout: 100 } }),
    ).toThrow(/waitForReplicas.replicas/);
    expect(
      () =>
        new RedisSessionStore({
          client: fake,
          commandTimeout: 500,
          waitForReplicas: { replicas: 1, timeout: '1s' },
        }),
    ).toThrow(/must be below commandTimeout/);
    expect(
      () => new RedisSessionStore({ client: fake, waitForReplicas: { replicas: 1 } as never }),
    ).toThrow(/timeout is required/);
  });

  it('warns at construction when a node-redis client passed in cannot drop a hung connection', () => {
    const client = { isReady: true, sendCommand: async () => null, options: { socket: {} } };
    new RedisSessionStore({ client });
    expect(log.lines.join('\n')).toMatch(/socket\.socketTimeout/);
    log.lines.length = 0;
    const healing = { ...client, options: { socket: { socketTimeout: 1500 } } };
    new RedisSessionStore({ client: healing });
    expect(log.lines).toEqual([]);
  });
});
