import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication } from '@nestjs/common';
import { createClient } from 'redis';
import request from 'supertest';
import { SESSION_STORE, SessionStoreUnavailableError, type SessionStore } from '../src/index.js';
import { RedisSessionStore } from '../src/redis/index.js';
import { sessionCookie } from './support/app.js';
import { bootSampleApp } from './support/sample-app.js';

/** RedisSessionStore's default bound on one store call (`commandTimeout`). */
const STORE_TIMEOUT = 1000;
/** What a loaded 2-core test machine adds to a request on top of the store's timeout. */
const SLACK = 400;

const haveRedisServer = spawnSync('redis-server', ['--version']).status === 0;
if (!haveRedisServer) console.warn('Skipping the Redis outage test: redis-server is not installed');
const describeOutage = haveRedisServer ? describe : describe.skip;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A private redis-server on its own port (the shared one on 6379 is never touched), persisting
 * every write to an append-only file in a temp dir, so that a kill and restart keeps the data like
 * a production Redis with AOF would.
 */
class OwnRedis {
  private child: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'sess-outage-'));
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        '--daemonize',
        'no',
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 200; i++) {
      const pong = spawnSync('redis-cli', ['-p', String(this.port), 'ping']).stdout?.toString();
      if (pong?.includes('PONG')) return;
      await sleep(25);
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  /** Kills the server outright (SIGKILL: no shutdown save; the AOF already has every write). */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Makes the server accept connections but answer nothing for `ms` (CLIENT PAUSE ALL). */
  async pause(ms: number): Promise<void> {
    const client = createClient({ url: this.url });
    client.on('error', () => undefined);
    await client.connect();
    await client.sendCommand(['CLIENT', 'PAUSE', String(ms), 'ALL']);
    client.destroy();
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Times one request. */
async function timed(req: request.Test): Promise<{ res: request.Response; ms: number }> {
  const started = Date.now();
  const res = await req;
  return { res, ms: Date.now() - started };
}

describeOutage('Sample app with Redis: store outage (FAIL-1, FAIL-2, FAIL-3)', () => {
  let redis: OwnRedis;
  let app: INestApplication;
  let store: SessionStore;
  let http: ReturnType<typeof request>;
  let alice: string;
  let revoked: string;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort());
    await redis.start();
    ({ app, http } = await bootSampleApp({
      SESSION_SECRET: randomBytes(32).toString('base64url'),
      SESSION_STORE: 'redis',
      REDIS_URL: redis.url,
      SESSION_KEY_PREFIX: `outage:${randomBytes(4).toString('hex')}:`,
    }));
    store = app.get<SessionStore>(SESSION_STORE);
  });

  afterAll(async () => {
    await app?.close();
    await redis?.dispose();
  });

  const login = (username: string, password: string) =>
    http.post('/auth/login').send({ username, password });

  it('serves sessions from its own Redis server', async () => {
    expect(store).toBeInstanceOf(RedisSessionStore);
    const res = await login('alice', 'wonderland').expect(200);
    alice = sessionCookie(res)!;
    expect(alice).toBeDefined();
    await http.post('/cart/items').set('Cookie', alice).send({ item: 'book' }).expect(200);
    await http
      .get('/whoami')
      .set('Cookie', alice)
      .expect(200)
      .expect((r) => expect(r.body).toMatchObject({ username: 'alice' }));

    // A session logged out before the outage must stay dead through it and after it.
    const other = await login('admin', 'admin-secret').expect(200);
    revoked = sessionCookie(other)!;
    await http.post('/auth/logout').set('Cookie', revoked).expect(200);
    await http.get('/whoami').set('Cookie', revoked).expect(401);
    await http.get('/health').expect(200);
  });

  it('answers 503 within the timeout while Redis hangs, sends no cookie, keeps GET / up (FAIL-1, FAIL-2, FAIL-3)', async () => {
    await redis.pause(3000);
    const [whoami, fresh, health, home] = await Promise.all([
      timed(http.get('/whoami').set('Cookie', alice)),
      timed(login('alice', 'wonderland')),
      timed(http.get('/health')),
      timed(http.get('/')),
    ]);

    expect(whoami.res.status).toBe(503);
    expect(whoami.res.body.message).toBe(
      'Sessions are temporarily unavailable; please retry shortly',
    );
    expect(whoami.res.headers['set-cookie']).toBeUndefined();
    // Bounded by the store's timeout (FAIL-3), not by the 3 s pause.
    expect(whoami.ms).toBeGreaterThanOrEqual(STORE_TIMEOUT - 50);
    expect(whoami.ms).toBeLessThan(STORE_TIMEOUT * 1.1 + SLACK);

    // No silent fall-back to memory: a login cannot succeed without the store.
    expect(fresh.res.status).toBe(503);
    expect(fresh.res.headers['set-cookie']).toBeUndefined();
    expect(fresh.ms).toBeLessThan(STORE_TIMEOUT * 1.1 + SLACK);

    expect(health.res.status).toBe(503);
    expect(health.res.body).toMatchObject({ status: 'down', store: { ok: false } });
    expect(health.ms).toBeLessThan(STORE_TIMEOUT * 1.1 + SLACK);

    // A route that never touches the session does not wait for the store at all.
    expect(home.res.status).toBe(200);
    expect(home.res.headers['set-cookie']).toBeUndefined();
    expect(home.ms).toBeLessThan(SLACK);

    // When the pause ends the same connection works again.
    await sleep(2200);
    await http.get('/whoami').set('Cookie', alice).expect(200);
  });

  it('answers 503 at once while Redis is down, never accepting a session, and keeps GET / up (FAIL-1, FAIL-2)', async () => {
    await redis.kill();
    const whoami = await timed(http.get('/whoami').set('Cookie', alice));
    expect(whoami.res.status).toBe(503);
    expect(whoami.res.headers['set-cookie']).toBeUndefined();
    expect(whoami.ms).toBeLessThan(STORE_TIMEOUT * 1.1 + SLACK);

    // A revoked session is not let in either: "unknown" is never read as "valid".
    const old = await http.get('/whoami').set('Cookie', revoked);
    expect(old.status).toBe(503);

    const fresh = await login('alice', 'wonderland');
    expect(fresh.status).toBe(503);
    expect(fresh.headers['set-cookie']).toBeUndefined();

    const cart = await http.post('/cart/items').set('Cookie', alice).send({ item: 'pen' });
    expect(cart.status).toBe(503);
    expect(cart.headers['set-cookie']).toBeUndefined();

    const health = await http.get('/health');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({
      status: 'down',
      store: { ok: false, store: `redis 127.0.0.1:${redis.port}` },
    });
    expect(JSON.stringify(health.body)).not.toContain('redis://');

    await http.get('/').expect(200);
  });

  it('recovers by itself when Redis returns, with everything stored before the outage (FAIL-1)', async () => {
    await redis.start();
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      healthy = (await http.get('/health')).status === 200;
      if (!healthy) await sleep(100);
    }
    expect(healthy).toBe(true);

    await http
      .get('/whoami')
      .set('Cookie', alice)
      .expect(200)
      .expect((r) => expect(r.body).toMatchObject({ username: 'alice', role: 'user' }));
    // The change attempted during the outage was not half-applied; the one before it survived.
    await http
      .get('/cart')
      .set('Cookie', alice)
      .expect(200, { items: ['book'] });
    await http.get('/whoami').set('Cookie', revoked).expect(401);

    const again = await login('alice', 'wonderland').expect(200);
    expect(sessionCookie(again)).toBeDefined();
  });
});

describeOutage('RedisSessionStore started while Redis is down (FAIL-1, FAIL-3)', () => {
  let redis: OwnRedis;
  let store: RedisSessionStore;

  beforeAll(async () => {
    redis = new OwnRedis(await freePort()); // not started yet: the port is closed
    store = new RedisSessionStore({ url: redis.url });
  });
  afterAll(async () => {
    await store?.close();
    await redis?.dispose();
  });

  it('rejects within the timeout while nothing listens, then connects by itself once Redis starts', async () => {
    const key = randomBytes(32).toString('base64url');
    const started = Date.now();
    await expect(store.load(key)).rejects.toBeInstanceOf(SessionStoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(STORE_TIMEOUT * 1.1 + SLACK);
    expect(await store.checkHealth()).toMatchObject({ ok: false });

    await redis.start();
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = (await store.checkHealth()).ok;
      if (!ok) await sleep(100);
    }
    expect(ok).toBe(true);
    expect(await store.load(key)).toBeNull();
  });
});
