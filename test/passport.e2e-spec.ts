import { afterAll, afterEach, expect, it } from '@jest/globals';
import {
  Controller,
  Get,
  HttpCode,
  Injectable,
  Post,
  Req,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { AuthGuard, PassportModule, PassportSerializer, PassportStrategy } from '@nestjs/passport';
import { Test } from '@nestjs/testing';
import passport from 'passport';
import { Strategy } from 'passport-local';
import request from 'supertest';
import {
  MemorySessionStore,
  SessionModule,
  SessionService,
  type SessionStore,
} from '../src/index.js';
import { createSessionCookie } from '../src/testing/index.js';
import { TEST_SECRET, initApp, sessionCookie } from './support/app.js';
import { overriding, storesUnderTest } from './support/stores.js';

/** What the NestJS docs' Passport recipe stores: a user, found by name and password. */
interface User {
  id: string;
  username: string;
}

const USERS: Record<string, { password: string; user: User }> = {
  alice: { password: 'wonderland', user: { id: 'u-alice', username: 'alice' } },
};

@Injectable()
class LocalStrategy extends PassportStrategy(Strategy) {
  validate(username: string, password: string): User {
    const entry = USERS[username];
    if (!entry || entry.password !== password) throw new UnauthorizedException();
    return entry.user;
  }
}

/** The session keeps the user's id; each request gets the user back from it. */
@Injectable()
class SessionSerializer extends PassportSerializer {
  serializeUser(user: User, done: (err: Error | null, id?: string) => void): void {
    done(null, user.id);
  }

  deserializeUser(id: string, done: (err: Error | null, user?: User | false) => void): void {
    const entry = Object.values(USERS).find(({ user }) => user.id === id);
    done(null, entry ? entry.user : false);
  }
}

/** The docs' LocalAuthGuard: authenticate, then log in (req.logIn) so the session keeps the user. */
@Injectable()
class LocalAuthGuard extends AuthGuard('local') {
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const result = (await super.canActivate(context)) as boolean;
    await super.logIn(context.switchToHttp().getRequest());
    return result;
  }
}

@Injectable()
class AuthenticatedGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToHttp().getRequest<{ isAuthenticated(): boolean }>().isAuthenticated();
  }
}

type PassportRequest = {
  user?: User;
  sessionID?: string;
  logout(done: (err?: unknown) => void): void;
};

@Controller('auth')
class AuthController {
  constructor(private readonly sessions: SessionService) {}

  @Post('login')
  @HttpCode(200)
  @UseGuards(LocalAuthGuard)
  login(@Req() req: PassportRequest) {
    return { user: req.user, sessionID: req.sessionID };
  }

  @Get('me')
  @UseGuards(AuthenticatedGuard)
  me(@Req() req: PassportRequest) {
    return req.user;
  }

  @Get('devices')
  @UseGuards(AuthenticatedGuard)
  async devices(@Req() req: PassportRequest) {
    return { count: (await this.sessions.listForUser(req.user!.id)).length };
  }

  @Post('logout')
  @HttpCode(200)
  logout(@Req() req: PassportRequest): Promise<string> {
    return new Promise((resolve, reject) =>
      req.logout((err) => (err ? reject(err) : resolve('bye'))),
    );
  }

  @Get('open')
  open() {
    return 'open';
  }
}

const { stores, dropSchema } = await storesUnderTest('passport');
afterAll(async () => {
  await dropSchema();
});

let app: INestApplication | undefined;
let store: SessionStore | undefined;
afterEach(async () => {
  await app?.close();
  await store?.close?.();
  app = undefined;
  store = undefined;
});

async function boot(create: () => SessionStore, eager: boolean) {
  store = create();
  const moduleRef = await Test.createTestingModule({
    imports: [
      SessionModule.forRoot({ secret: TEST_SECRET, store, eager, userKey: 'passport.user' }),
      PassportModule.register({ session: true }),
    ],
    controllers: [AuthController],
    providers: [LocalStrategy, SessionSerializer],
  }).compile();
  // main.ts as the NestJS docs wire Passport sessions.
  app = await initApp(
    moduleRef as never,
    { beforeInit: (a) => a.use(passport.session()) },
    'express',
  );
  return request(app.getHttpServer());
}

for (const { name, describe: describeStore, create } of stores.filter(
  (s) => s.name !== 'postgres',
)) {
  describeStore(`Passport sessions with eager: true (${name}, e2e, Express)`, () => {
    it('logs in with req.logIn, keeps req.user on the next request, logs out with req.logout, and the old cookie dies', async () => {
      const http = await boot(create, true);
      await http.get('/auth/open').expect(200);
      await http.post('/auth/login').send({ username: 'alice', password: 'nope' }).expect(401);
      const login = await http
        .post('/auth/login')
        .send({ username: 'alice', password: 'wonderland' })
        .expect(200);
      expect(login.body.user).toEqual(USERS.alice.user);
      expect(typeof login.body.sessionID).toBe('string');
      const cookie = sessionCookie(login)!;
      const me = await http.get('/auth/me').set('Cookie', cookie).expect(200);
      expect(me.body).toEqual(USERS.alice.user);
      // The session is indexed under the user id Passport keeps (userKey: 'passport.user').
      const devices = await http.get('/auth/devices').set('Cookie', cookie).expect(200);
      expect(devices.body).toEqual({ count: 1 });
      const out = await http.post('/auth/logout').set('Cookie', cookie).expect(200);
      await http.get('/auth/me').set('Cookie', cookie).expect(403);
      const after = sessionCookie(out);
      if (after) await http.get('/auth/me').set('Cookie', after).expect(403);
    });

    it('sets no cookie and needs no store for requests without one', async () => {
      const http = await boot(create, true);
      const res = await http.get('/auth/open').expect(200);
      expect(res.headers['set-cookie']).toBeUndefined();
    });
  });
}

it('without eager, a synchronous read of req.session that must wait for the store names eager: true', async () => {
  // A store that answers only asynchronously (as Redis and PostgreSQL do).
  const backing = new MemorySessionStore();
  store = overriding(backing, { close: () => backing.close() });
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ secret: TEST_SECRET, store })],
    controllers: [AuthController],
  }).compile();
  const errors: string[] = [];
  app = await initApp(
    moduleRef as never,
    {
      beforeInit: (a) =>
        a.use((req: { session: { x?: unknown } }, _res: unknown, next: (e?: unknown) => void) => {
          try {
            void req.session.x;
          } catch (error) {
            errors.push((error as Error).message);
          }
          next();
        }),
    },
    'express',
  );
  const cookie = await createSessionCookie(app, { n: 1 });
  await request(app.getHttpServer()).get('/auth/open').set('Cookie', cookie).expect(200);
  expect(errors).toEqual([expect.stringContaining('eager: true')]);
});
