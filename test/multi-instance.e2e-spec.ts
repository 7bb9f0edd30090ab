import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { SERVICES, describeWithService, type ServiceName } from './support/services.js';

/**
 * Several sample-app processes sharing one store, as behind a load balancer, and `WORKERS=N` (one
 * port, N processes via node:cluster). The app is built once, into a private temp dir, so that a
 * build or test running at the same time in this checkout cannot change the files under test.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** One secret for every instance: they must all verify each other's cookies. */
const SECRET = randomBytes(32).toString('base64url');
const RUN = randomBytes(5).toString('hex');

// ---------------------------------------------------------------------------------------------
// The stores under test: adding PostgreSQL is one entry.
// ---------------------------------------------------------------------------------------------

interface SharedStore {
  /** The SESSION_STORE value. */
  readonly name: 'redis' | 'postgres';
  /** The server it needs (skipped, or failed in CI, when it is down). */
  readonly service: ServiceName;
  /** Environment that points every instance of this run at the same, private part of the store. */
  env(): Record<string, string>;
  /** Deletes what this run stored. */
  cleanup(): Promise<void>;
}

const redisPrefix = `e2e:multi:${RUN}:`;
const pgSchema = `e2e_multi_${RUN}`.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
const STORES: SharedStore[] = [
  {
    name: 'redis',
    service: 'redis',
    env: () => ({ REDIS_URL: SERVICES.redis.url, SESSION_KEY_PREFIX: redisPrefix }),
    cleanup: async () => {
      const client = createClient({ url: SERVICES.redis.url });
      client.on('error', () => undefined);
      await client.connect();
      for await (const keys of client.scanIterator({ MATCH: `${redisPrefix}*`, COUNT: 500 })) {
        if (keys.length > 0) await client.del(keys);
      }
      await client.close();
    },
  },
  {
    name: 'postgres',
    service: 'postgres',
    env: () => ({ DATABASE_URL: SERVICES.postgres.url, SESSION_PG_SCHEMA: pgSchema }),
    cleanup: async () => {
      const pool = new pg.Pool({ connectionString: SERVICES.postgres.url });
      await pool.query(`DROP SCHEMA IF EXISTS ${pgSchema} CASCADE`);
      await pool.end();
    },
  },
];

const available = new Map<string, typeof describe>();
for (const store of STORES) available.set(store.name, await describeWithService(store.service));

// ---------------------------------------------------------------------------------------------
// Building and running the sample app
// ---------------------------------------------------------------------------------------------

let built: Promise<string> | undefined;
let buildDir: string | undefined;

/**
 * Builds the library and the sample app into a temp dir (once per run) and resolves the path of
 * its main.js. The temp dir gets a copy of package.json (so `nestjs-sessions` resolves to this
 * build by self-reference) and a link to node_modules.
 */
function buildSampleApp(): Promise<string> {
  built ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sess-sample-'));
    buildDir = dir;
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: pkg.name, type: 'module', exports: pkg.exports }),
    );
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    writeFileSync(
      join(dir, 'tsconfig.sample.json'),
      JSON.stringify({
        extends: join(ROOT, 'sample-app/tsconfig.json'),
        compilerOptions: {
          rootDir: join(ROOT, 'sample-app/src'),
          outDir: join(dir, 'sample-app/dist'),
          paths: {
            'nestjs-sessions': [join(dir, 'dist/index.d.ts')],
            'nestjs-sessions/*': [join(dir, 'dist/*/index.d.ts')],
          },
        },
        include: [join(ROOT, 'sample-app/src')],
      }),
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    for (const args of [
      ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')],
      ['-p', join(dir, 'tsconfig.sample.json')],
    ]) {
      const result = spawnSync(process.execPath, [tsc, ...args], { cwd: ROOT, encoding: 'utf8' });
      // Type errors elsewhere in a checkout under work still emit JavaScript; say so, and go on
      // only if the files were written.
      if (result.status !== 0)
        console.warn(`tsc ${args.join(' ')}:\n${result.stdout}${result.stderr}`);
    }
    const main = join(dir, 'sample-app/dist/main.js');
    if (!existsSync(main) || !existsSync(join(dir, 'dist/redis/index.js'))) {
      throw new Error(`The sample app did not build into ${dir}`);
    }
    return main;
  })();
  return built;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** A running sample-app process (or cluster primary). */
interface Instance {
  readonly port: number;
  readonly output: () => string;
  /** Resolves the exit code once the process has ended. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

const running = new Set<Instance>();

/** Starts the built sample app and waits until `listeners` processes listen on its port. */
async function startApp(env: Record<string, string>, listeners = 1): Promise<Instance> {
  const main = await buildSampleApp();
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [main], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      SESSION_SECRET: SECRET,
      PORT: String(port),
      // The fake upstream beside each app: an ephemeral port, never PORT + 1 (another app's port).
      UPSTREAM_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const instance: Instance = {
    port,
    output: () => output,
    exited,
    stop: async () => {
      running.delete(instance);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(instance);
  const deadline = Date.now() + 60_000;
  while ((output.match(/Listening on http/g) ?? []).length < listeners) {
    if (child.exitCode !== null) throw new Error(`The sample app exited early:\n${output}`);
    if (Date.now() > deadline) {
      await instance.stop();
      throw new Error(`The sample app did not start within 60 s:\n${output}`);
    }
    await sleep(50);
  }
  return instance;
}

interface Reply {
  status: number;
  body: unknown;
  cookie: string | undefined;
}

/**
 * One HTTP request on a fresh connection (`agent: false`, `Connection: close`), so that under
 * node:cluster consecutive requests are handed to the workers in turn.
 */
function call(
  port: number,
  method: string,
  path: string,
  options: { cookie?: string; json?: unknown } = {},
): Promise<Reply> {
  return new Promise((done, fail) => {
    const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          connection: 'close',
          ...(options.cookie ? { cookie: options.cookie } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const setCookie = res.headers['set-cookie']?.find((line) => line.startsWith('sid='));
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON
          }
          done({ status: res.statusCode ?? 0, body, cookie: setCookie?.split(';')[0] });
        });
      },
    );
    req.once('error', fail);
    req.end(payload);
  });
}

async function login(port: number, username: string, password: string): Promise<string> {
  const res = await call(port, 'POST', '/auth/login', { json: { username, password } });
  expect(res.status).toBe(200);
  expect(res.cookie).toBeDefined();
  return res.cookie!;
}

afterAll(async () => {
  await Promise.all([...running].map((instance) => instance.stop()));
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Two instances on different ports, one store
// ---------------------------------------------------------------------------------------------

describe.each(STORES)('Sample app: many instances sharing $name', (store) => {
  const describeStore = available.get(store.name)!;

  describeStore('two processes on two ports', () => {
    let a: Instance;
    let b: Instance;

    beforeAll(async () => {
      const env = { SESSION_STORE: store.name, ...store.env() };
      [a, b] = await Promise.all([startApp(env), startApp(env)]);
    }, 180_000);
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await store.cleanup();
    });

    it('sees a login made on A from B, and changes made on B from A', async () => {
      const cookie = await login(a.port, 'alice', 'wonderland');
      const who = await call(b.port, 'GET', '/whoami', { cookie });
      expect(who).toMatchObject({ status: 200, body: { username: 'alice', role: 'user' } });

      expect(
        await call(b.port, 'POST', '/cart/items', { cookie, json: { item: 'tea' } }),
      ).toMatchObject({
        status: 200,
      });
      expect(await call(a.port, 'GET', '/cart', { cookie })).toMatchObject({
        status: 200,
        body: { items: ['tea'] },
      });
    });

    it('keeps all 50 concurrent cart adds split between A and B (no lost updates across instances)', async () => {
      const cookie = await login(a.port, 'alice', 'wonderland');
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          call(i % 2 === 0 ? a.port : b.port, 'POST', '/cart/items', {
            cookie,
            json: { item: `item-${i}` },
          }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
      const cart = await call(b.port, 'GET', '/cart', { cookie });
      expect(new Set((cart.body as { items: string[] }).items).size).toBe(50);
    });

    it('kills the session on B when it is logged out on A', async () => {
      const cookie = await login(a.port, 'alice', 'wonderland');
      expect((await call(b.port, 'GET', '/whoami', { cookie })).status).toBe(200);
      expect((await call(a.port, 'POST', '/auth/logout', { cookie })).status).toBe(200);
      expect((await call(b.port, 'GET', '/whoami', { cookie })).status).toBe(401);
      expect((await call(a.port, 'GET', '/whoami', { cookie })).status).toBe(401);
    });

    it('ends the sessions held through B when the user logs out everywhere on A (REV-1)', async () => {
      const onA = await login(a.port, 'admin', 'admin-secret');
      const onB1 = await login(b.port, 'admin', 'admin-secret');
      const onB2 = await login(b.port, 'admin', 'admin-secret');

      const listed = await call(a.port, 'GET', '/auth/sessions', { cookie: onA });
      expect(listed.status).toBe(200);
      const sessions = listed.body as Array<{ current: boolean }>;
      expect(sessions).toHaveLength(3);
      expect(sessions.filter((s) => s.current)).toHaveLength(1);

      const ended = await call(a.port, 'DELETE', '/auth/sessions', { cookie: onA });
      expect(ended).toMatchObject({ status: 200, body: { loggedOut: 2 } });
      expect((await call(b.port, 'GET', '/whoami', { cookie: onB1 })).status).toBe(401);
      expect((await call(b.port, 'GET', '/whoami', { cookie: onB2 })).status).toBe(401);
      expect((await call(b.port, 'GET', '/whoami', { cookie: onA })).status).toBe(200);
      expect(
        ((await call(b.port, 'GET', '/auth/sessions', { cookie: onA })).body as unknown[]).length,
      ).toBe(1);
    });
  });

  describeStore('WORKERS=4: one port, four processes', () => {
    let app: Instance;

    beforeAll(async () => {
      app = await startApp({ SESSION_STORE: store.name, WORKERS: '4', ...store.env() }, 4);
    }, 180_000);
    afterAll(async () => {
      await app?.stop();
      await store.cleanup();
    });

    it('runs four workers, and every worker sees every session', async () => {
      expect(app.output()).toMatch(/Starting 4 workers/);
      const pids = new Set(app.output().match(/\(pid \d+\)/g));
      expect(pids.size).toBe(4);

      // Each request is a new connection, which node:cluster hands to the next worker: a counter
      // that goes up by exactly one every time means each worker read what another one wrote.
      const first = await call(app.port, 'GET', '/session_test');
      expect(first).toMatchObject({ status: 200, body: { test_counter: 1 } });
      const cookie = first.cookie!;
      for (let n = 2; n <= 24; n++) {
        expect(await call(app.port, 'GET', '/session_test', { cookie })).toMatchObject({
          status: 200,
          body: { test_counter: n },
        });
      }

      const user = await login(app.port, 'alice', 'wonderland');
      const replies = await Promise.all(
        Array.from({ length: 40 }, () => call(app.port, 'GET', '/whoami', { cookie: user })),
      );
      expect(replies.map((r) => r.status)).toEqual(Array(40).fill(200));
    });
  });
});

// ---------------------------------------------------------------------------------------------
// The memory store cannot be shared
// ---------------------------------------------------------------------------------------------

describe('Sample app: WORKERS with the memory store', () => {
  it('refuses to start WORKERS=2 with the memory store, and says why', async () => {
    const main = await buildSampleApp();
    const child = spawn(process.execPath, [main], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'development',
        SESSION_STORE: 'memory',
        WORKERS: '2',
        PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((done) => child.once('exit', done));
    expect(code).toBe(1);
    expect(output).toContain('WORKERS=2 needs a shared session store');
    expect(output).toContain('SESSION_STORE=redis');
    expect(output).not.toMatch(/Listening on/);
  }, 180_000);
});
