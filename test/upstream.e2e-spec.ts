import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import pg from 'pg';
import { AppModule } from '../sample-app/src/app.module.js';
import type { SampleConfig } from '../sample-app/src/config.js';
import {
  FAKE_UPSTREAM_DEMO_CREDENTIALS,
  FakeUpstream,
} from '../sample-app/src/upstream/fake-upstream.js';
import { UpstreamModule, UpstreamTarget } from '../sample-app/src/upstream/upstream.module.js';
import { describeWithService, SERVICES } from './support/services.js';

const describeRedis = await describeWithService('redis');
const describePostgres = await describeWithService('postgres');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = () => randomBytes(6).toString('hex');

const sampleConfig = (overrides: Partial<SampleConfig> = {}): SampleConfig => ({
  adapter: 'express',
  port: 0,
  secret: 'upstream-e2e-secret-0123456789-abcdefghijklmnop',
  store: 'memory',
  redisUrl: SERVICES.redis.url,
  databaseUrl: SERVICES.postgres.url,
  ...overrides,
});

interface UpstreamBody {
  data: { items: string[] };
  upstreamLogins: number;
}

/** The sample app's upstream feature, listening on an ephemeral port, with its fake upstream. */
async function startUpstreamApp(env: Record<string, string>) {
  const moduleRef = await Test.createTestingModule({
    imports: [UpstreamModule.register(sampleConfig(), env)],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  const fake = app.get(UpstreamTarget).fake!;
  const get = async () => {
    const res = await fetch(`${url.replace('[::1]', '127.0.0.1')}/upstream/data`);
    return { status: res.status, body: (await res.json()) as UpstreamBody & { message?: string } };
  };
  return { app, fake, get };
}

describe('Shared upstream session, one process (e2e)', () => {
  it('serves GET /upstream/data from the sample app with the upstream login count', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.register(sampleConfig())],
    }).compile();
    const app: INestApplication = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    try {
      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      const res = await fetch(`${url}/upstream/data`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        data: { items: ['alpha', 'beta', 'gamma'], servedAt: expect.any(String) },
        upstreamLogins: 1,
      });
    } finally {
      await app.close();
    }
  });

  it('logs in exactly once for 100 concurrent requests right after the upstream session expired', async () => {
    const { app, fake, get } = await startUpstreamApp({ UPSTREAM_SESSION_TTL_MS: '3000' });
    try {
      const first = await get();
      expect(first.status).toBe(200);
      expect(first.body.upstreamLogins).toBe(1);

      await sleep(3_100); // the upstream session has now expired by itself (and the next lasts 3 s)
      fake.setLoginDelay(100); // keep the login open while the other requests pile up
      const results = await Promise.all(Array.from({ length: 100 }, () => get()));

      expect(results.map((r) => r.status)).toEqual(Array(100).fill(200));
      expect(results.map((r) => r.body.upstreamLogins)).toEqual(Array(100).fill(2));
      expect(fake.stats().logins).toBe(2);
      expect(fake.stats().rejectedRequests).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });

  it('answers 503 while the upstream refuses logins, then recovers by itself', async () => {
    const { app, fake, get } = await startUpstreamApp({ UPSTREAM_SESSION_TTL_MS: '60000' });
    try {
      expect((await get()).status).toBe(200);
      fake.setAcceptLogins(false);
      fake.expireAll();

      const failed = await get();
      expect(failed.status).toBe(503);
      expect(failed.body.message).toMatch(
        /^Upstream "demo-upstream" is unavailable: the login failed/,
      );
      const backingOff = await get();
      expect(backingOff.status).toBe(503);
      expect(backingOff.body.message).toMatch(/a recent login failed/);
      const refusedLogins = fake.stats().failedLogins;
      expect(refusedLogins).toBe(1); // the backoff kept the second request off the login page
      for (const body of [failed.body, backingOff.body]) {
        expect(JSON.stringify(body)).not.toContain(FAKE_UPSTREAM_DEMO_CREDENTIALS.password);
      }

      fake.setAcceptLogins(true);
      const deadline = Date.now() + 5_000;
      let recovered: Awaited<ReturnType<typeof get>> | undefined;
      while (Date.now() < deadline) {
        const attempt = await get();
        if (attempt.status === 200) {
          recovered = attempt;
          break;
        }
        expect(attempt.status).toBe(503);
        await sleep(100);
      }
      expect(recovered?.body.upstreamLogins).toBe(2);
      expect(fake.stats().failedLogins).toBeLessThanOrEqual(2);
    } finally {
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Several processes: small worker scripts on the compiled library, sharing one credential store.

const WORKER = `
import { createInterface } from 'node:readline';
import {
  PostgresSharedCredentialStore,
  RedisSharedCredentialStore,
  SharedSessionClient,
} from './dist/upstream/index.js';

const env = process.env;
let store;
let closeStore;
if (env.STORE === 'ioredis') {
  const { Redis } = await import('ioredis');
  const client = new Redis(env.REDIS_URL);
  store = new RedisSharedCredentialStore({ client, prefix: env.PREFIX });
  closeStore = async () => client.disconnect();
} else if (env.STORE === 'node-redis') {
  const { createClient } = await import('redis');
  const client = await createClient({ url: env.REDIS_URL }).connect();
  store = new RedisSharedCredentialStore({ client, prefix: env.PREFIX });
  closeStore = () => client.close();
} else {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
  store = new PostgresSharedCredentialStore({ pool, tableName: env.TABLE });
  closeStore = () => pool.end();
}
const client = new SharedSessionClient({
  name: env.NAME,
  baseUrl: env.UPSTREAM_URL,
  store,
  logger: false,
  loginTimeout: Number(env.LOGIN_TIMEOUT),
  lockTtl: Number(env.LOCK_TTL),
  login: async (ctx) => {
    const res = await ctx.post('/login', { username: env.UP_USER, password: env.UP_PASSWORD });
    await res.body?.cancel();
    if (!res.ok) throw new Error('login refused ' + res.status);
  },
});
const reply = (message) => process.stdout.write(JSON.stringify(message) + '\\n');
const status = (promise) =>
  promise.then(
    async (res) => { await res.body?.cancel(); return res.status; },
    (error) => (typeof error.getStatus === 'function' ? error.getStatus() : String(error)),
  );
createInterface({ input: process.stdin }).on('line', async (line) => {
  const command = JSON.parse(line);
  if (command.op === 'burst') {
    const started = Date.now();
    const statuses = await Promise.all(
      Array.from({ length: command.count }, () => status(client.get('/data'))),
    );
    reply({ statuses, ms: Date.now() - started, generation: client.generation, logins: client.loginCount });
  } else if (command.op === 'exit') {
    client.close();
    await closeStore();
    process.exit(0);
  }
});
reply({ ready: true });
`;

interface BurstResult {
  statuses: Array<number | string>;
  ms: number;
  generation: number;
  logins: number;
}

interface Worker {
  process: ChildProcess;
  send(command: object): void;
  next<T>(timeoutMs?: number): Promise<T>;
  burst(count: number): Promise<BurstResult>;
  stop(): Promise<void>;
}

let workDir: string | undefined;

/** Compiles the upstream entry point (and what it imports) into a private directory, once. */
async function compileWorker(): Promise<string> {
  if (workDir) return workDir;
  const dir = await mkdtemp(join(tmpdir(), 'nestjs-sessions-upstream-e2e-'));
  const root = process.cwd();
  await promisify(execFile)(
    process.execPath,
    [
      join(root, 'node_modules/typescript/bin/tsc'),
      '--outDir',
      join(dir, 'dist'),
      '--rootDir',
      join(root, 'src'),
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--experimentalDecorators',
      '--emitDecoratorMetadata',
      '--skipLibCheck',
      '--noCheck',
      '--types',
      'node',
      join(root, 'src/upstream/index.ts'),
    ],
    { cwd: root },
  );
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  await writeFile(join(dir, 'worker.mjs'), WORKER);
  workDir = dir;
  return dir;
}

async function startWorker(env: Record<string, string>): Promise<Worker> {
  const dir = await compileWorker();
  const child = spawn(process.execPath, [join(dir, 'worker.mjs')], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      UP_USER: FAKE_UPSTREAM_DEMO_CREDENTIALS.username,
      UP_PASSWORD: FAKE_UPSTREAM_DEMO_CREDENTIALS.password,
      LOGIN_TIMEOUT: '3000',
      LOCK_TTL: '3500',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const queue: unknown[] = [];
  const waiters: Array<(message: unknown) => void> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const message: unknown = JSON.parse(line);
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  const next = <T>(timeoutMs = 20_000): Promise<T> => {
    if (queue.length) return Promise.resolve(queue.shift() as T);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker did not answer within ${timeoutMs} ms; stderr: ${stderr}`)),
        timeoutMs,
      );
      waiters.push((message) => {
        clearTimeout(timer);
        resolve(message as T);
      });
    });
  };
  const send = (command: object) => child.stdin!.write(`${JSON.stringify(command)}\n`);
  const worker: Worker = {
    process: child,
    send,
    next,
    burst: (count) => {
      send({ op: 'burst', count });
      return next<BurstResult>();
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      send({ op: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await next<{ ready: true }>();
  return worker;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** The cross-process scenarios, for one kind of shared store. */
function crossProcessScenarios(
  storeEnv: (index: number) => Record<string, string>,
  cleanup: () => Promise<void> = async () => undefined,
): void {
  let fake: FakeUpstream;
  let workers: Worker[] = [];
  let name: string;

  beforeAll(async () => {
    await compileWorker();
  }, 120_000);

  const start = async (count: number) => {
    fake = new FakeUpstream({ sessionTtlMs: 60_000 });
    await fake.start();
    name = `e2e-${unique()}`;
    workers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        startWorker({ UPSTREAM_URL: fake.url, NAME: name, ...storeEnv(i) }),
      ),
    );
  };

  const stop = async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    workers = [];
    await fake?.close();
    await cleanup();
  };

  it('four processes: 100 concurrent requests each, right after the session expired, cause ONE login', async () => {
    await start(4);
    try {
      expect((await workers[0].burst(1)).statuses).toEqual([200]);
      // The other processes pick the credential up from the store: no login of their own.
      for (const worker of workers.slice(1))
        expect((await worker.burst(1)).statuses).toEqual([200]);
      expect(fake.stats().logins).toBe(1);

      fake.expireAll();
      fake.setLoginDelay(150);
      const results = await Promise.all(workers.map((worker) => worker.burst(100)));

      for (const result of results) {
        expect(result.statuses).toEqual(Array(100).fill(200));
        expect(result.generation).toBe(2);
      }
      expect(fake.stats().logins).toBe(2);
      expect(fake.stats().failedLogins).toBe(0);
      // Every login came from one process or another: the first one, plus exactly one more.
      expect(results.reduce((sum, r) => sum + r.logins, 0)).toBe(2);
      expect(fake.stats().rejectedRequests).toBeGreaterThanOrEqual(4);
    } finally {
      await stop();
    }
  }, 60_000);

  it('a process killed in the middle of a login blocks the others no longer than its lock', async () => {
    await start(2);
    try {
      const [doomed, survivor] = workers;
      fake.setLoginDelay(30_000);
      const lockedAt = Date.now();
      doomed.send({ op: 'burst', count: 1 });
      await waitFor(() => fake.stats().loginsInProgress === 1, 5_000);
      await sleep(1_500);
      doomed.process.kill('SIGKILL');
      fake.setLoginDelay(0);

      const result = await survivor.burst(10);
      const lockFreedAfter = Date.now() - lockedAt;

      expect(result.statuses).toEqual(Array(10).fill(200));
      expect(result.logins).toBe(1);
      // It had to wait for the lock (3.5 s from the crashed login) and not much longer.
      expect(lockFreedAfter).toBeGreaterThanOrEqual(3_000);
      expect(lockFreedAfter).toBeLessThan(6_000);
      expect(fake.stats().logins).toBeLessThanOrEqual(2); // the killed process's login may land
    } finally {
      await stop();
    }
  }, 60_000);
}

describeRedis('Shared upstream session, four processes on Redis (e2e)', () => {
  const prefix = `test:upstream-e2e:${unique()}:`;
  crossProcessScenarios(
    (i) => ({
      STORE: i % 2 ? 'ioredis' : 'node-redis',
      REDIS_URL: SERVICES.redis.url,
      PREFIX: prefix,
    }),
    async () => {
      const redis = new Redis(SERVICES.redis.url);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    },
  );
});

describePostgres('Shared upstream session, four processes on PostgreSQL (e2e)', () => {
  const table = `test_upstream_e2e_${unique()}`;
  crossProcessScenarios(
    () => ({ STORE: 'postgres', DATABASE_URL: SERVICES.postgres.url, TABLE: table }),
    async () => {
      const pool = new pg.Pool({ connectionString: SERVICES.postgres.url, max: 1 });
      await pool.query(`DROP TABLE IF EXISTS "${table}"`);
      await pool.end();
    },
  );
});
