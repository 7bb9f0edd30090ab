import { afterEach, describe, expect, it } from '@jest/globals';
import { UseGuards, type INestApplication } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { GraphQLModule, Query, Resolver } from '@nestjs/graphql';
import { SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { io } from 'socket.io-client';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { RequireSession, Session, SessionGuard, type SessionModuleOptions } from '../src/index.js';
import {
  SessionTestClock,
  SessionTestingModule,
  createSessionCookie,
} from '../src/testing/index.js';
import { FixtureController } from './fixtures/fixture.controller.js';
import { TEST_ADAPTER, initApp, sessionCookie } from './support/app.js';

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

@Resolver()
class MeResolver {
  @Query(() => String)
  @RequireSession()
  me(@Session('userId') userId: string) {
    return userId;
  }
}

@WebSocketGateway()
class MeGateway {
  @SubscribeMessage('me')
  @UseGuards(SessionGuard)
  me(@Session('userId') userId: string) {
    return { event: 'me', data: userId };
  }
}

// The README's resolver and gateway tests, as written there (Apollo and socket.io on Express).
const onExpress = TEST_ADAPTER === 'express' ? describe : describe.skip;
onExpress('SessionTestingModule with a resolver and a gateway (README)', () => {
  it('tests a resolver: the cookie in, the session out, UNAUTHENTICATED without', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SessionTestingModule.forRoot(),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          autoSchemaFile: true,
          context: ({ req, res }: { req: unknown; res: unknown }) => ({ req, res }),
        }),
      ],
      providers: [MeResolver],
    }).compile();
    app = await moduleRef.createNestApplication({ logger: false }).init();
    const cookie = await createSessionCookie(app, { userId: '42' });
    const http = request(app.getHttpServer());
    const res = await http.post('/graphql').set('Cookie', cookie).send({ query: '{ me }' });
    expect(res.body).toEqual({ data: { me: '42' } });
    const anonymous = await http.post('/graphql').send({ query: '{ me }' });
    expect(anonymous.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    app.get(SessionTestClock).advance('31m');
    const expired = await http.post('/graphql').set('Cookie', cookie).send({ query: '{ me }' });
    expect(expired.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });

  it('tests a gateway: the handshake cookie’s session answers, an expired one is refused', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [SessionTestingModule.forRoot()],
      providers: [MeGateway],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    const cookie = await createSessionCookie(app, { userId: '42' });
    const socket = io(await app.getUrl(), {
      transports: ['websocket'],
      extraHeaders: { Cookie: cookie },
      reconnection: false,
    });
    try {
      const ask = () =>
        new Promise((resolve) => {
          socket.once('me', (data: unknown) => resolve(data));
          socket.once('exception', (data: { reason?: string }) => resolve(data.reason));
          socket.emit('me', {});
        });
      expect(await ask()).toBe('42');
      app.get(SessionTestClock).advance('31m');
      expect(await ask()).toBe('missing');
    } finally {
      socket.disconnect();
    }
  });
});
