import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { createSessionCookie } from 'nestjs-sessions/testing';
import { AppModule } from '../src/app.module.js';

/** Nothing but app.close() after the tests: Jest must exit by itself (the stores are closed). */
describe.each(['memory', 'redis', 'ioredis'])('quick start (e2e, %s store)', (store) => {
  let app: INestApplication;

  beforeAll(async () => {
    process.env.SESSION_STORE = store;
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });
  afterAll(async () => {
    await app.close();
  });

  it('logs in with a cookie from nestjs-sessions/testing', async () => {
    const http = request(app.getHttpServer());
    await http.get('/admin').expect(401);
    const user = await createSessionCookie(app, { username: 'ann', role: 'user' });
    await http.get('/admin').set('Cookie', user).expect(403);
    const admin = await createSessionCookie(app, { username: 'root', role: 'admin' });
    await http.get('/admin').set('Cookie', admin).expect(200);
    const who = await http.get('/whoami').set('Cookie', admin).expect(200);
    expect(who.body).toEqual({ username: 'root', role: 'admin' });
  });

  it('creates, reads and deletes a session over HTTP', async () => {
    const http = request(app.getHttpServer());
    const created = await http.post('/create_session/bob').expect(200);
    expect(created.text).toBe('Created session for bob');
    const cookie = String(created.headers['set-cookie']).split(';')[0];
    await http.get('/whoami').set('Cookie', cookie).expect(200, { username: 'bob' });
    await http.post('/delete_session').set('Cookie', cookie).expect(200);
    await http.get('/whoami').set('Cookie', cookie).expect(401);
  });
});
