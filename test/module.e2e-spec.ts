import { afterEach, describe, expect, it, jest } from '@jest/globals';
import {
  Controller,
  Get,
  HttpException,
  Injectable,
  Logger,
  Module,
  type INestApplication,
  type Type,
} from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  AllowAnonymous,
  InjectSessionStore,
  SessionStore,
  SESSION_STORE,
  MemorySessionStore,
  Session,
  SessionConfigError,
  SessionGuard,
  SessionModule,
  SessionService,
  type SessionDenialReason,
  type SessionModuleOptions,
  type SessionOptionsFactory,
} from '../src/index.js';
import { createSessionCookie } from '../src/testing/index.js';
import { FixtureController } from './fixtures/fixture.controller.js';
import { QuickStartController } from './fixtures/quick-start.controller.js';
import { TEST_SECRET, initApp, sessionCookie } from './support/app.js';

@Injectable()
class AppConfig {
  readonly secret = TEST_SECRET;
}

@Module({ providers: [AppConfig], exports: [AppConfig] })
class ConfigModule {}

@Injectable()
class SessionConfig implements SessionOptionsFactory {
  constructor(private readonly config: AppConfig) {}
  createSessionOptions(): SessionModuleOptions {
    return { secret: this.config.secret, cookie: { name: 'app_sid' } };
  }
}

@Module({
  imports: [ConfigModule],
  providers: [SessionConfig],
  exports: [SessionConfig],
})
class SessionConfigModule {}

/** A feature module that uses the guard and the service without importing SessionModule. */
@Controller('feature')
class FeatureController {
  constructor(private readonly sessions: SessionService) {}
  @Get()
  async feature(@Session() session: Session) {
    const guard = await this.sessions.get(session.id);
    return { viaService: guard?.data ?? null };
  }
}
@Module({ controllers: [FeatureController] })
class FeatureModule {}

@Controller('open')
class OpenController {
  @Get('public')
  @AllowAnonymous()
  public() {
    return 'public';
  }
  @Get('private')
  private() {
    return 'private';
  }
}

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function boot(
  imports: unknown[],
  controllers: Type[] = [FixtureController],
  providers: unknown[] = [],
) {
  const moduleRef = await Test.createTestingModule({
    imports: imports as Type[],
    controllers,
    providers: providers as Type[],
  }).compile();
  app = await initApp(moduleRef as never);
  return request(app.getHttpServer());
}

async function roundTrip(http: ReturnType<typeof request>, name = 'sid') {
  const res = await http.post('/set').send({ name: 'ann' }).expect(200);
  const cookie = sessionCookie(res, name);
  expect(cookie).toBeDefined();
  const read = await http.get('/read').set('Cookie', cookie!).expect(200);
  expect(read.body.data).toEqual({ name: 'ann' });
}

describe('SessionModule configuration (e2e)', () => {
  it('injects the store under the SessionStore token, with @InjectSessionStore() as with @Inject(SESSION_STORE)', async () => {
    @Injectable()
    class UsesStore {
      constructor(@InjectSessionStore() readonly store: SessionStore) {}
    }
    const store = new MemorySessionStore();
    const moduleRef = await Test.createTestingModule({
      imports: [SessionModule.forRoot({ secret: TEST_SECRET, store })],
      providers: [UsesStore],
    }).compile();
    expect(moduleRef.get(UsesStore).store).toBe(store);
    expect(moduleRef.get(SessionStore)).toBe(store);
    expect(moduleRef.get(SESSION_STORE)).toBe(store);
    await moduleRef.close();
    await store.close();
  });

  it('works with forRoot', async () => {
    await roundTrip(await boot([SessionModule.forRoot({ secret: TEST_SECRET })]));
  });

  it('works with forRootAsync useFactory and inject', async () => {
    const http = await boot([
      SessionModule.forRootAsync({
        imports: [ConfigModule],
        inject: [AppConfig],
        useFactory: (config: AppConfig) => ({ secret: config.secret }),
      }),
    ]);
    await roundTrip(http);
  });

  it('works with forRootAsync useClass', async () => {
    const http = await boot([
      SessionModule.forRootAsync({ imports: [ConfigModule], useClass: SessionConfig }),
    ]);
    await roundTrip(http, 'app_sid');
  });

  it('works with forRootAsync useExisting', async () => {
    const http = await boot([
      SessionModule.forRootAsync({ imports: [SessionConfigModule], useExisting: SessionConfig }),
    ]);
    await roundTrip(http, 'app_sid');
  });

  it('is global by default: feature modules use the service and decorators without importing it', async () => {
    const http = await boot([SessionModule.forRoot({ secret: TEST_SECRET }), FeatureModule]);
    const res = await http.post('/set').send({ name: 'ann' }).expect(200);
    const feature = await http.get('/feature').set('Cookie', sessionCookie(res)!).expect(200);
    expect(feature.body).toEqual({ viaService: { name: 'ann' } });
  });

  it('fails at boot with a message that says what to change', async () => {
    await expect(boot([SessionModule.forRoot({ secret: 'too-short' })])).rejects.toThrow(
      SessionConfigError,
    );
    await expect(
      boot([
        SessionModule.forRoot({
          secret: TEST_SECRET,
          cookie: { name: '__Host-x', domain: 'a.com', secure: true },
        }),
      ]),
    ).rejects.toThrow(/may not have a domain. Remove 'cookie.domain'/);
    await expect(
      boot([
        SessionModule.forRootAsync({
          useFactory: async () => ({ secret: TEST_SECRET, cookie: { sameSite: 'none' as const } }),
        }),
      ]),
    ).rejects.toThrow(/needs 'cookie.secure: true'/);
  });

  it('guards every route as APP_GUARD, except those marked @AllowAnonymous()', async () => {
    const http = await boot(
      [SessionModule.forRoot({ secret: TEST_SECRET })],
      [OpenController],
      [{ provide: APP_GUARD, useClass: SessionGuard }],
    );
    await http.get('/open/public').expect(200);
    await http.get('/open/private').expect(401);
    const cookie = await createSessionCookie(app!, { userId: 'u1' });
    await http.get('/open/private').set('Cookie', cookie).expect(200);
  });

  it('records activity for APP_GUARD routes that do not otherwise use the session', async () => {
    const { MemorySessionStore } = await import('../src/index.js');
    const store = new MemorySessionStore();
    const http = await boot(
      [SessionModule.forRoot({ secret: TEST_SECRET, store, touchAfter: 1 })],
      [OpenController],
      [{ provide: APP_GUARD, useClass: SessionGuard }],
    );
    const cookie = await createSessionCookie(app!, { userId: 'u1' });
    const id = (await store.listForUser('u1'))[0].key;
    const before = (await store.load(id))!.lastActiveAt;
    await new Promise((resolve) => setTimeout(resolve, 10));
    await http.get('/open/private').set('Cookie', cookie).expect(200);
    expect((await store.load(id))!.lastActiveAt).toBeGreaterThan(before);
    await store.close();
  });

  it('hooks only the routes that use the session, keeping their metadata and direct calls', async () => {
    const { isHookedRoute } = await import('../src/session.metadata.js');
    const { PATH_METADATA } = await import('@nestjs/common/constants.js');
    const http = await boot(
      [SessionModule.forRoot({ secret: TEST_SECRET })],
      [FixtureController, OpenController],
    );
    const hooked = (name: string, cls: Type) => isHookedRoute(cls.prototype[name]);
    expect(hooked('plain', FixtureController)).toBe(false);
    expect(hooked('read', FixtureController)).toBe(true);
    expect(hooked('guarded', FixtureController)).toBe(true);
    expect(hooked('admin', FixtureController)).toBe(true);
    expect(hooked('nestSession', FixtureController)).toBe(true);
    expect(hooked('public', OpenController)).toBe(false);
    const read = FixtureController.prototype.read as unknown as (...args: unknown[]) => unknown;
    expect(read.name).toBe('read');
    expect(Reflect.getMetadata(PATH_METADATA, read)).toBe('read');
    // Called directly, as a unit test does, a hooked handler is just the handler.
    const fake = { data: { name: 'n' }, isNew: false };
    expect(read.call(app!.get(FixtureController), fake)).toEqual({
      data: { name: 'n' },
      isNew: false,
    });
    await http.get('/plain').expect(200);
    // A second app in the same process uses the same hook, and it still works there.
    const second = await boot(
      [SessionModule.forRoot({ secret: TEST_SECRET })],
      [FixtureController],
    );
    expect(FixtureController.prototype.read).toBe(read);
    await second.get('/read').expect(200, { data: {}, isNew: true });
  });

  it('lets a subclass choose status codes and messages in one method', async () => {
    @Injectable()
    class TeapotGuard extends SessionGuard {
      protected override createException(reason: SessionDenialReason) {
        return new HttpException({ reason }, 418);
      }
    }
    const http = await boot(
      [SessionModule.forRoot({ secret: TEST_SECRET })],
      [OpenController],
      [{ provide: APP_GUARD, useClass: TeapotGuard }],
    );
    const res = await http.get('/open/private').expect(418);
    expect(res.body).toEqual({ reason: 'missing' });
  });
});

describe('Boot checks', () => {
  it('refuses to boot on an HTTP adapter other than Express or Fastify, saying what to change', async () => {
    class OtherAdapter extends ExpressAdapter {
      override getInstance<T = unknown>(): T {
        return {} as T;
      }
    }
    const moduleRef = await Test.createTestingModule({
      imports: [SessionModule.forRoot({ secret: TEST_SECRET })],
    }).compile();
    const other = moduleRef.createNestApplication(new OtherAdapter(), { logger: false });
    await expect(other.init()).rejects.toThrow(/is neither Express nor Fastify/);
    await moduleRef.close();
  });

  it('warns when sessions are kept in memory in production, created by the module or given (CFG-2)', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const env = process.env.NODE_ENV;
    const memoryWarnings = async (NODE_ENV: string, options: Partial<SessionModuleOptions>) => {
      process.env.NODE_ENV = NODE_ENV;
      warn.mockClear();
      const moduleRef = await Test.createTestingModule({
        imports: [SessionModule.forRoot({ secret: TEST_SECRET, ...options })],
      }).compile();
      await moduleRef.close();
      return warn.mock.calls.filter(([message]) => /kept in memory/.test(String(message))).length;
    };
    try {
      expect(await memoryWarnings('production', {})).toBe(1);
      const given = new MemorySessionStore();
      expect(await memoryWarnings('production', { store: given })).toBe(1);
      expect(await memoryWarnings('development', { store: given })).toBe(0);
      await given.close();
    } finally {
      process.env.NODE_ENV = env;
      warn.mockRestore();
    }
  });
});

describe('The quick start, as written (e2e)', () => {
  it('creates a session, reads it behind the guard, and checks the admin predicate', async () => {
    const http = await boot(
      [SessionModule.forRoot({ secret: TEST_SECRET })],
      [QuickStartController],
    );
    const created = await http.post('/quick-start/create_session/ann').expect(201);
    expect(created.text).toBe('Created session for ann');
    const cookie = sessionCookie(created)!;
    const who = await http.get('/quick-start/whoami').set('Cookie', cookie).expect(200);
    expect(who.body).toEqual({ username: 'ann' });
    await http.get('/quick-start/whoami').expect(401);
    await http.get('/quick-start/admin').set('Cookie', cookie).expect(403);
    const admin = await createSessionCookie(app!, { username: 'root', role: 'admin' });
    await http.get('/quick-start/admin').set('Cookie', admin).expect(200);
  });
});

describe('SessionGuard and @RequireSession (e2e)', () => {
  it('answers 401 without a session, 403 when the predicate fails, 200 when it passes', async () => {
    const http = await boot([SessionModule.forRoot({ secret: TEST_SECRET })]);
    await http.get('/admin').expect(401);
    const user = await createSessionCookie(app!, { userId: 'u', role: 'user' });
    const admin = await createSessionCookie(app!, { userId: 'a', role: 'admin' });
    const forbidden = await http.get('/admin').set('Cookie', user).expect(403);
    expect(forbidden.body.message).toBeTruthy();
    await http.get('/admin').set('Cookie', admin).expect(200);
  });
});

describe('SessionService (e2e)', () => {
  it('lists, reads and ends sessions, and logs a user out everywhere else (REV-1)', async () => {
    const http = await boot([SessionModule.forRoot({ secret: TEST_SECRET })]);
    const service = app!.get(SessionService);
    const logins = [];
    for (let i = 0; i < 3; i++) {
      const res = await http.post('/login').send({ userId: 'multi' }).expect(200);
      logins.push({ cookie: sessionCookie(res)!, id: res.body.id as string });
    }
    const other = await http.post('/login').send({ userId: 'other' }).expect(200);

    const mine = await http.get('/mine').set('Cookie', logins[0].cookie).expect(200);
    expect(mine.body).toHaveLength(3);
    expect(mine.body.filter((s: { current: boolean }) => s.current)).toHaveLength(1);

    expect((await service.get(logins[1].id))?.data).toEqual({ userId: 'multi' });
    await service.invalidate(logins[1].id);
    expect(await service.get(logins[1].id)).toBeNull();
    await http.get('/guarded').set('Cookie', logins[1].cookie).expect(401);

    const ended = await http.post('/logout-others').set('Cookie', logins[0].cookie).expect(200);
    expect(ended.body).toEqual({ ended: 1 });
    await http.get('/guarded').set('Cookie', logins[0].cookie).expect(200);
    await http.get('/guarded').set('Cookie', logins[2].cookie).expect(401);
    await http.get('/guarded').set('Cookie', sessionCookie(other)!).expect(200);
    expect(await service.listForUser('multi')).toHaveLength(1);
  });

  it('ends the other sessions and renews this one after a credential change (REV-6)', async () => {
    const http = await boot([SessionModule.forRoot({ secret: TEST_SECRET })]);
    const phone = sessionCookie(await http.post('/login').send({ userId: 'pw' }).expect(200))!;
    const laptop = sessionCookie(await http.post('/login').send({ userId: 'pw' }).expect(200))!;
    const res = await http.post('/password-changed').set('Cookie', laptop).expect(200);
    const renewed = sessionCookie(res)!;
    expect(renewed).not.toBe(laptop);
    await http.get('/guarded').set('Cookie', phone).expect(401);
    await http.get('/guarded').set('Cookie', laptop).expect(401);
    await http.get('/guarded').set('Cookie', renewed).expect(200);
  });

  it('runs withSession like a request: commit on success, roll back on throw', async () => {
    const http = await boot([SessionModule.forRoot({ secret: TEST_SECRET })]);
    const service = app!.get(SessionService);
    const res = await http.post('/login').send({ userId: 'job' }).expect(200);
    const id = res.body.id as string;

    const result = await service.withSession<number, { points?: number }>(id, (session) => {
      session.data.points = 10;
      return 42;
    });
    expect(result).toBe(42);
    expect((await service.get(id))?.data).toEqual({ userId: 'job', points: 10 });

    await expect(
      service.withSession<void, { points?: number }>(id, (session) => {
        session.data.points = 99;
        throw new Error('job failed');
      }),
    ).rejects.toThrow('job failed');
    expect((await service.get(id))?.data.points).toBe(10);

    await service.invalidate(id);
    await expect(service.withSession(id, () => 1)).rejects.toMatchObject({ code: 'SESSION_GONE' });
  });
});
