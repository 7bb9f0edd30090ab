import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import type { SessionModuleOptions } from '../src/index.js';
import {
  SessionTestClock,
  SessionTestingModule,
  createSessionCookie,
} from '../src/testing/index.js';
import { FixtureController } from './fixtures/fixture.controller.js';
import { initApp, sessionCookie } from './support/app.js';

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function boot(options: Partial<SessionModuleOptions> = {}) {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionTestingModule.forRoot(options)],
    controllers: [FixtureController],
  }).compile();
  app = await initApp(moduleRef as never);
  return { http: request(app.getHttpServer()), clock: app.get(SessionTestClock) };
}

describe('SessionTestingModule', () => {
  it('crosses the idle timeout on its clock, without waiting (TO-1)', async () => {
    const { http, clock } = await boot();
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'u1' }).expect(200))!;
    clock.advance('29m');
    await http.get('/guarded').set('Cookie', cookie).expect(200);
    clock.advance('29m'); // activity at 29 min moved the idle expiry on
    await http.get('/guarded').set('Cookie', cookie).expect(200);
    clock.advance('31m');
    await http.get('/guarded').set('Cookie', cookie).expect(401);
  });

  it('crosses the absolute timeout however active the session is (TO-2)', async () => {
    const { http, clock } = await boot({ absoluteTimeout: '1h', idleTimeout: '30m' });
    const cookie = sessionCookie(await http.post('/login').send({ userId: 'u2' }).expect(200))!;
    for (let i = 0; i < 3; i++) {
      clock.advance('19m');
      await http.get('/guarded').set('Cookie', cookie).expect(200);
    }
    clock.advance('3m'); // 60 minutes after the login, 3 after the last request
    await http.get('/guarded').set('Cookie', cookie).expect(401);
  });

  it('makes logged-in cookies with createSessionCookie, in store and sealed mode', async () => {
    for (const mode of ['store', 'sealed'] as const) {
      const { http, clock } = await boot({ mode });
      const cookie = await createSessionCookie(app!, { userId: 'admin', role: 'admin' });
      await http.get('/admin').set('Cookie', cookie).expect(200);
      clock.advance('31m');
      await http.get('/admin').set('Cookie', cookie).expect(401);
      await app!.close();
      app = undefined;
    }
  });

  it('refuses a clock step that is not a duration, saying what it takes', async () => {
    const { clock } = await boot();
    expect(() => clock.advance('soon')).toThrow(/positive number of milliseconds/);
    const before = clock.now();
    clock.set(before + 5000);
    expect(clock.now()).toBe(before + 5000);
  });
});
