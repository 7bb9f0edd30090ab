import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication } from '@nestjs/common';
import pg from 'pg';
import request from 'supertest';
import { sessionCookie } from './support/app.js';
import { bootSampleApp } from './support/sample-app.js';
import { SERVICES, describeWithService } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

const describePg = await describeWithService('postgres');

/** The store's default bound on connecting and on one statement (PostgresSessionStore). */
const STORE_TIMEOUT = 2000;

/**
 * The sample app on PostgreSQL, with the database behind a TCP proxy that the test cuts and
 * restores: the shared server itself is never stopped.
 */
describePg('Sample app with PostgreSQL: store outage (FAIL-1, FAIL-2, FAIL-3)', () => {
  const proxy = new TcpProxy({ host: SERVICES.postgres.host, port: SERVICES.postgres.port });
  const schema = `sess_outage_${randomBytes(5).toString('hex')}`;
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  let alice: string;
  let revoked: string;

  beforeAll(async () => {
    const port = await proxy.start();
    const url = new URL(SERVICES.postgres.url);
    url.host = `127.0.0.1:${port}`;
    ({ app, http } = await bootSampleApp({
      SESSION_SECRET: randomBytes(32).toString('base64url'),
      SESSION_STORE: 'postgres',
      DATABASE_URL: url.toString(),
      SESSION_PG_SCHEMA: schema,
    }));
  });

  afterAll(async () => {
    await app?.close();
    await proxy.stop();
    const admin = new pg.Pool({ connectionString: SERVICES.postgres.url, max: 1 });
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  const login = (username: string, password: string) =>
    http.post('/auth/login').send({ username, password });

  it('serves sessions from PostgreSQL through the proxy', async () => {
    const res = await login('alice', 'wonderland').expect(200);
    alice = sessionCookie(res)!;
    expect(alice).toBeDefined();
    await http
      .get('/whoami')
      .set('Cookie', alice)
      .expect(200)
      .expect((r) => expect(r.body).toMatchObject({ username: 'alice', role: 'user' }));

    // A session that is logged out before the outage must stay dead through it.
    const other = await login('admin', 'admin-secret').expect(200);
    revoked = sessionCookie(other)!;
    await http.post('/auth/logout').set('Cookie', revoked).expect(200);
    await http.get('/whoami').set('Cookie', revoked).expect(401);

    await http.get('/health').expect(200);
  });

  it('answers 503 without Set-Cookie while the database is gone, and only where a session is needed (FAIL-1, FAIL-2)', async () => {
    await proxy.stop();

    const started = Date.now();
    const who = await http.get('/whoami').set('Cookie', alice);
    expect(who.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(STORE_TIMEOUT * 1.1);
    expect(who.headers['set-cookie']).toBeUndefined();
    expect(JSON.stringify(who.body)).toMatch(/unavailable/i);

    // Never a silent fall-back to memory: a new login is refused, not served from nowhere.
    const denied = await login('alice', 'wonderland');
    expect(denied.status).toBe(503);
    expect(denied.headers['set-cookie']).toBeUndefined();

    // The revoked session is not accepted either (nothing is assumed about it).
    expect((await http.get('/whoami').set('Cookie', revoked)).status).toBe(503);

    // Routes that never touch the session are unaffected.
    const home = await http.get('/').expect(200);
    expect(home.headers['set-cookie']).toBeUndefined();

    const health = await http.get('/health');
    expect(health.status).toBe(503);
    expect(JSON.stringify(health.body)).not.toMatch(/postgres:\/\//);
  });

  it('recovers by itself when the database is back: the old cookie works, revoked stays revoked', async () => {
    await proxy.start();
    // The store refuses at once while it knows the database is down, and probes it twice a second.
    const back = Date.now();
    while ((await http.get('/health')).status !== 200) {
      expect(Date.now() - back).toBeLessThan(10_000);
      await sleep(100);
    }

    await http
      .get('/whoami')
      .set('Cookie', alice)
      .expect(200)
      .expect((r) => expect(r.body).toMatchObject({ username: 'alice', role: 'user' }));
    await http.get('/whoami').set('Cookie', revoked).expect(401);
    await http.get('/health').expect(200);
  });

  it('answers 503 within the timeout when the database stops answering (blackhole), then recovers (FAIL-3)', async () => {
    proxy.blackhole(true);
    try {
      const started = Date.now();
      const who = await http.get('/whoami').set('Cookie', alice);
      const elapsed = Date.now() - started;
      expect(who.status).toBe(503);
      expect(who.headers['set-cookie']).toBeUndefined();
      expect(elapsed).toBeGreaterThanOrEqual(STORE_TIMEOUT * 0.9);
      expect(elapsed).toBeLessThan(STORE_TIMEOUT * 1.1);
      await http.get('/').expect(200);
    } finally {
      proxy.blackhole(false);
    }
    const back = Date.now();
    while ((await http.get('/health')).status !== 200) {
      expect(Date.now() - back).toBeLessThan(10_000);
      await sleep(100);
    }

    await http
      .get('/whoami')
      .set('Cookie', alice)
      .expect(200)
      .expect((r) => expect(r.body).toMatchObject({ username: 'alice' }));
    await http.get('/health').expect(200);
  });
});
