import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  Controller,
  Get,
  Injectable,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
  type NestInterceptor,
} from '@nestjs/common';
import { of, type Observable } from 'rxjs';
import request from 'supertest';
import { Session, SessionGuard, SessionService } from '../src/index.js';
import { SessionTokenSigner } from '../src/transport/session-token.js';
import { createFixtureApp, sessionCookie, sessionSetCookie } from './support/app.js';
import { CountingStore } from './support/counting-store.js';

describe('Session lifecycle (e2e)', () => {
  let app: INestApplication;
  let store: CountingStore;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    store = new CountingStore();
    app = await createFixtureApp({ store });
    http = request(app.getHttpServer());
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });
  beforeEach(() => store.reset());

  async function newSession(data: Record<string, unknown> = { name: 'ann' }): Promise<string> {
    const res = await http.post('/set').send(data).expect(200);
    const cookie = sessionCookie(res);
    expect(cookie).toBeDefined();
    store.reset();
    return cookie!;
  }

  describe('laziness', () => {
    it('costs no store call and sets no cookie on a route that never touches the session', async () => {
      const cookie = await newSession();
      const res = await http.get('/plain').set('Cookie', cookie).expect(200);
      expect(store.total).toBe(0);
      expect(res.headers['set-cookie']).toBeUndefined();
    });

    it('sets no cookie and stores nothing for a new session that was only read (CK-11)', async () => {
      const res = await http.get('/read').expect(200);
      expect(res.body).toEqual({ data: {}, isNew: true });
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(store.calls.save).toBeUndefined();
    });

    it('reads an existing session with exactly one store call and writes nothing', async () => {
      const cookie = await newSession();
      const res = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(res.body).toEqual({ data: { name: 'ann' }, isNew: false });
      expect(store.calls).toEqual({ load: 1 });
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(res.headers.vary).toMatch(/Cookie/);
    });
  });

  describe('commit', () => {
    it('writes only the changed top-level keys (ST-2)', async () => {
      const cookie = await newSession({ name: 'ann', counter: 1, cart: ['a'] });
      await http
        .post('/set')
        .set('Cookie', cookie)
        .send({ counter: 2, cart: ['a'] })
        .expect(200);
      expect(store.saves).toHaveLength(1);
      expect(store.saves[0].set).toEqual({ counter: '2' });
      expect(store.saves[0].unset).toEqual([]);
    });

    it('detects in-place changes of nested values (ST-5)', async () => {
      const cookie = await newSession({ profile: { tags: ['a'] } });
      await http.post('/push-tag').set('Cookie', cookie).send({ tag: 'b' }).expect(200);
      expect(store.saves[0].set).toEqual({ profile: '{"tags":["a","b"]}' });
      const res = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(res.body.data.profile).toEqual({ tags: ['a', 'b'] });
    });

    it('writes removed keys as removals', async () => {
      const cookie = await newSession({ name: 'ann', counter: 1 });
      await http.post('/unset').set('Cookie', cookie).send({ key: 'counter' }).expect(200);
      expect(store.saves[0].set).toEqual({});
      expect(store.saves[0].unset).toEqual(['counter']);
      const res = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(res.body.data).toEqual({ name: 'ann' });
    });

    it('writes nothing when a handler assigns the values the session already has', async () => {
      const cookie = await newSession({ name: 'ann' });
      await http.post('/set').set('Cookie', cookie).send({ name: 'ann' }).expect(200);
      expect(store.calls.save).toBeUndefined();
    });

    it('has saved the session before the response arrives, so the next request sees it', async () => {
      const res = await http.post('/set').send({ name: 'fast' }).expect(200);
      // No delay: the store write finished before the first byte was sent.
      const read = await http.get('/read').set('Cookie', sessionCookie(res)!).expect(200);
      expect(read.body.data).toEqual({ name: 'fast' });
    });

    it('rolls back the changes of a handler that throws (LC-8)', async () => {
      const cookie = await newSession({ name: 'ann' });
      const res = await http
        .post('/throw')
        .set('Cookie', cookie)
        .send({ name: 'evil' })
        .expect(500);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(store.calls.save).toBeUndefined();
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual({ name: 'ann' });
    });

    it('rolls back the changes of an async handler that rejects (LC-8)', async () => {
      const cookie = await newSession({ name: 'ann' });
      await http.post('/throw-async').set('Cookie', cookie).send({ name: 'evil' }).expect(500);
      expect(store.calls.save).toBeUndefined();
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual({ name: 'ann' });
    });

    it('commits what a handler returning an Observable changed, before the response', async () => {
      const cookie = await newSession({ name: 'ann' });
      await http
        .post('/observable')
        .set('Cookie', cookie)
        .send({ name: 'bob' })
        .expect(200, { ok: true });
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual({ name: 'bob' });
    });

    it('does not create a session for a failing handler on a new visitor', async () => {
      const res = await http.post('/throw').send({ name: 'evil' }).expect(500);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(store.size).toBeGreaterThanOrEqual(0);
      expect(store.calls.save).toBeUndefined();
    });

    it('refuses a session over maxSize with 413 and saves nothing (ST-10)', async () => {
      const cookie = await newSession({ name: 'ann' });
      const res = await http.post('/big').set('Cookie', cookie).send({ size: 70_000 }).expect(413);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(store.calls.save).toBeUndefined();
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual({ name: 'ann' });
    });

    it('lets a route that writes the response itself save first', async () => {
      const res = await http.post('/res-write').expect(200);
      const read = await http.get('/read').set('Cookie', sessionCookie(res)!).expect(200);
      expect(read.body.data).toEqual({ name: 'written' });
    });

    it('does not store a new session whose cookie could no longer be sent', async () => {
      const res = await http.post('/res-write-unsaved').expect(200);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(store.calls.save).toBeUndefined();
    });
  });

  describe('the handle', () => {
    it('gives one value with @Session(key) and the id with @SessionId()', async () => {
      const cookie = await newSession({ name: 'ann' });
      const value = await http.get('/value').set('Cookie', cookie).expect(200);
      expect(value.body).toEqual({ name: 'ann' });
      const id = await http.get('/id').set('Cookie', cookie).expect(200);
      const token = decodeURIComponent(cookie.split('=')[1]).split('.')[0];
      expect(id.body.id).toBe(SessionTokenSigner.storageKey(token));
      expect(cookie).not.toContain(id.body.id);
    });

    it('keeps the handle internals out of req.session: same-named keys are data, serialising shows data only', async () => {
      const cookie = await newSession({ name: 'ann' });
      const res = await http.post('/req-internals').set('Cookie', cookie).expect(200);
      expect(res.body.json).toEqual({ name: 'ann', token: 'app-token', state: 'app-state' });
      expect([...res.body.keys].sort()).toEqual(['name', 'state', 'token']);
      expect(res.body.loadGivesReqSession).toBe(true);
      expect(sessionCookie(res)).toBeUndefined();
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual({ name: 'ann', token: 'app-token', state: 'app-state' });
    });

    it('does not let application code assign the session id (TOK-10)', async () => {
      const cookie = await newSession({ name: 'ann' });
      const { body } = await http.get('/id').set('Cookie', cookie).expect(200);
      const service = app.get(SessionService);
      await service.withSession(body.id as string, (session) => {
        expect(() => {
          (session as { id: string }).id = 'chosen-by-the-app';
        }).toThrow(TypeError);
        expect(session.id).toBe(body.id);
      });
    });

    it('is req.session, and loads on demand for handlers that use @Req()', async () => {
      const cookie = await newSession({ name: 'ann' });
      const res = await http.get('/req-session').set('Cookie', cookie).expect(200);
      expect(res.body).toEqual({ name: 'ann' });
    });

    it('saves changes made through req.session in a handler that takes only @Req()', async () => {
      const first = await http.post('/req-write').expect(200, { counter: 1 });
      const cookie = sessionCookie(first)!;
      expect(cookie).toBeDefined();
      await http.post('/req-write').set('Cookie', cookie).expect(200, { counter: 2 });
      await http.post('/req-write').set('Cookie', cookie).expect(200, { counter: 3 });
    });

    it("works with Nest's built-in @Session(), data keys as properties", async () => {
      const first = await http.get('/nest-session').expect(200);
      expect(first.body).toEqual({ counter: 1, viaData: 1 });
      const cookie = sessionCookie(first)!;
      const second = await http.get('/nest-session').set('Cookie', cookie).expect(200);
      expect(second.body).toEqual({ counter: 2, viaData: 2 });
    });

    it("supports Passport's callback regenerate/save and property access", async () => {
      const cookie = await newSession({ name: 'before-login' });
      const res = await http.post('/passport-login').set('Cookie', cookie).expect(200);
      expect(res.body).toEqual({ passport: { user: 'p1' } });
      const newCookie = sessionCookie(res)!;
      expect(newCookie).not.toBe(cookie);
      // The callback form starts empty, like express-session.
      const read = await http.get('/read').set('Cookie', newCookie).expect(200);
      expect(read.body.data).toEqual({ passport: { user: 'p1' } });
      await http.get('/guarded').set('Cookie', cookie).expect(401);
    });

    it('reload() drops pending changes and reads the store again', async () => {
      const cookie = await newSession({ name: 'ann' });
      const res = await http.post('/reload').set('Cookie', cookie).expect(200);
      expect(res.body).toEqual({ name: 'ann' });
      expect(store.calls.save).toBeUndefined();
    });

    it('reload() after regenerate() keeps the stored session and its cookie', async () => {
      // A refreshed cookie (maxAge) after the reload must still name the stored session.
      const refreshing = await createFixtureApp({ cookie: { maxAge: '1h' } });
      try {
        const client = request(refreshing.getHttpServer());
        const cookie = sessionCookie(await client.post('/set').send({ name: 'ann' }))!;
        const before = (await client.get('/id').set('Cookie', cookie).expect(200)).body.id;
        const res = await client.post('/regenerate-reload').set('Cookie', cookie).expect(200);
        expect(res.body.id).toBe(before);
        const next = sessionCookie(res) ?? cookie;
        const read = await client.get('/read').set('Cookie', next).expect(200);
        expect(read.body).toEqual({ data: { name: 'after reload' }, isNew: false });
      } finally {
        await refreshing.close();
      }
    });
  });

  describe('regenerate and destroy', () => {
    it('gives a new id, ends the old one, and keeps the data by default (LC-1)', async () => {
      const cookie = await newSession({ name: 'ann', cart: ['a'] });
      const res = await http.post('/regenerate').set('Cookie', cookie).expect(200);
      expect(res.body.before).not.toBe(res.body.after);
      const newCookie = sessionCookie(res)!;
      expect(newCookie).toBeDefined();
      expect(store.saves).toHaveLength(1);
      expect(store.saves[0].previousKey).toBe(res.body.before);
      const read = await http.get('/read').set('Cookie', newCookie).expect(200);
      expect(read.body.data).toEqual({ name: 'ann', cart: ['a'] });
      const old = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(old.body).toEqual({ data: {}, isNew: true });
    });

    it('starts empty with keep: false', async () => {
      const cookie = await newSession({ name: 'ann', cart: ['a'] });
      const res = await http
        .post('/login')
        .set('Cookie', cookie)
        .send({ userId: 'u1', keep: false });
      const read = await http.get('/read').set('Cookie', sessionCookie(res)!).expect(200);
      expect(read.body.data).toEqual({ userId: 'u1' });
    });

    it('keeps a fixed id planted before login dead after it (LC-2, TOK-6)', async () => {
      const planted = await newSession({ cart: ['x'] });
      const login = await http.post('/login').set('Cookie', planted).send({ userId: 'victim' });
      const victimCookie = sessionCookie(login)!;
      expect(victimCookie).not.toBe(planted);
      await http.get('/guarded').set('Cookie', victimCookie).expect(200);
      const attacker = await http.get('/read').set('Cookie', planted).expect(200);
      expect(attacker.body).toEqual({ data: {}, isNew: true });
      await http.get('/guarded').set('Cookie', planted).expect(401);
    });

    it('gives a different user logging in on the same browser an empty session (LC-2)', async () => {
      const a = await http.post('/login').send({ userId: 'alice' }).expect(200);
      const aliceCookie = sessionCookie(a)!;
      await http
        .post('/set')
        .set('Cookie', aliceCookie)
        .send({ cart: ['alice-item'] })
        .expect(200);
      const b = await http.post('/login').set('Cookie', aliceCookie).send({ userId: 'bob' });
      const read = await http.get('/read').set('Cookie', sessionCookie(b)!).expect(200);
      expect(read.body.data).toEqual({ userId: 'bob' });
      await http.get('/guarded').set('Cookie', aliceCookie).expect(401);
    });

    it('rotates the id whenever the user changes, even without regenerate()', async () => {
      const cookie = await newSession({ name: 'anon' });
      const res = await http.post('/set').set('Cookie', cookie).send({ userId: 'u9' }).expect(200);
      const rotated = sessionCookie(res)!;
      expect(rotated).toBeDefined();
      expect(rotated).not.toBe(cookie);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
      const read = await http.get('/read').set('Cookie', rotated).expect(200);
      expect(read.body.data).toEqual({ name: 'anon', userId: 'u9' });
    });

    it('rotates the id and leaves the user index when the user key is removed (LC-2)', async () => {
      const service = app.get(SessionService);
      const login = await http.post('/login').send({ userId: 'leaver' }).expect(200);
      const cookie = sessionCookie(login)!;
      await http
        .post('/set')
        .set('Cookie', cookie)
        .send({ cart: ['kept'] })
        .expect(200);
      const res = await http.post('/unset').set('Cookie', cookie).send({ key: 'userId' });
      const rotated = sessionCookie(res)!;
      expect(rotated).not.toBe(cookie);
      await http.get('/guarded').set('Cookie', cookie).expect(401);
      const read = await http.get('/read').set('Cookie', rotated).expect(200);
      expect(read.body.data).toEqual({ cart: ['kept'] });
      expect(await service.listForUser('leaver')).toEqual([]);
    });

    it('destroys the record, clears the cookie with the same attributes, and the old cookie is dead (LC-4, CK-10)', async () => {
      const cookie = await newSession({ name: 'ann' });
      const res = await http.post('/destroy').set('Cookie', cookie).expect(200);
      const cleared = sessionSetCookie(res)!;
      expect(cleared).toMatch(/^sid=;/);
      expect(cleared).toMatch(/Max-Age=0/);
      expect(cleared).toMatch(/Expires=Thu, 01 Jan 1970/);
      expect(cleared).toMatch(/Path=\//);
      expect(cleared).toMatch(/HttpOnly/);
      expect(store.calls.destroy).toBe(1);
      // Replay after logout.
      await http.get('/guarded').set('Cookie', cookie).expect(401);
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.isNew).toBe(true);
    });
  });

  describe('touch', () => {
    it('does not write on reads within touchAfter (TO-5)', async () => {
      const cookie = await newSession();
      for (let i = 0; i < 5; i++) await http.get('/read').set('Cookie', cookie).expect(200);
      expect(store.calls.touch).toBeUndefined();
      expect(store.calls.save).toBeUndefined();
    });

    it('writes only the timestamp when asked to touch', async () => {
      const cookie = await newSession();
      await http.post('/touch').set('Cookie', cookie).expect(200);
      expect(store.calls).toEqual({ load: 1, touch: 1 });
    });
  });

  describe('concurrency', () => {
    it('keeps the writes of concurrent requests that change different keys (ST-2)', async () => {
      const cookie = await newSession({ base: 1 });
      const keys = Array.from({ length: 20 }, (_, i) => `key${i}`);
      await Promise.all(
        keys.map((key, i) =>
          http
            .post('/slow-set')
            .set('Cookie', cookie)
            .send({ [key]: i })
            .expect(200),
        ),
      );
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      for (const [i, key] of keys.entries()) expect(read.body.data[key]).toBe(i);
      expect(read.body.data.base).toBe(1);
    });

    it('does not let a slow request resurrect a session destroyed meanwhile (LC-6)', async () => {
      const cookie = await newSession({ name: 'ann' });
      // supertest sends on then(): start the slow request now.
      const slow = http
        .post('/slow-set')
        .set('Cookie', cookie)
        .send({ late: true })
        .then((r) => r);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await http.post('/destroy').set('Cookie', cookie).expect(200);
      const res = await slow;
      expect(res.status).toBe(409);
      expect(res.headers['set-cookie']).toBeUndefined();
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.isNew).toBe(true);
    });
  });
});

/** Counts visits in the session from outside the handler: a guard, an interceptor, a middleware. */
type VisitRequest = { session: Session<{ visits?: number }>; url?: string };

async function countVisit(req: VisitRequest): Promise<void> {
  await req.session.load();
  req.session.data.visits = (req.session.data.visits ?? 0) + 1;
}

@Injectable()
class VisitGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<VisitRequest>();
    await countVisit(req);
    // Counts, then turns away the visitor of /outside/denied: a denied request keeps nothing.
    return !(req.url ?? '').endsWith('/denied');
  }
}

@Injectable()
class VisitInterceptor implements NestInterceptor {
  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    await countVisit(context.switchToHttp().getRequest<VisitRequest>());
    return next.handle();
  }
}

/** Answers from a cache: the handler never runs. */
@Injectable()
class CachedInterceptor implements NestInterceptor {
  intercept(): Observable<unknown> {
    return of('cached');
  }
}

@Controller('outside')
class OutsideController {
  @Get('cached')
  @UseGuards(SessionGuard, VisitGuard)
  @UseInterceptors(CachedInterceptor)
  cached(@Session() session: Session<{ visits?: number }>) {
    return `never: ${session.data.visits}`;
  }

  @Get('guarded')
  @UseGuards(VisitGuard)
  guarded() {
    return 'ok';
  }

  @Get('denied')
  @UseGuards(VisitGuard)
  denied() {
    return 'never';
  }

  @Get('intercepted')
  @UseInterceptors(VisitInterceptor)
  intercepted() {
    return 'ok';
  }

  @Get('visits')
  visits(@Session('visits') visits: number | undefined) {
    return { visits: visits ?? 0 };
  }
}

describe('Sessions used outside the route handler (e2e)', () => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    app = await createFixtureApp({}, { controllers: [OutsideController] });
    http = request(app.getHttpServer());
  });
  afterAll(() => app.close());

  async function visits(cookie: string): Promise<number> {
    const res = await http.get('/outside/visits').set('Cookie', cookie).expect(200);
    return res.body.visits as number;
  }

  it('saves what a guard wrote on a route whose handler does not take the session', async () => {
    const first = await http.get('/outside/guarded').expect(200);
    const cookie = sessionCookie(first)!;
    expect(cookie).toBeDefined();
    await http.get('/outside/guarded').set('Cookie', cookie).expect(200);
    expect(await visits(cookie)).toBe(2);
  });

  it('saves what an interceptor wrote before the handler', async () => {
    const first = await http.get('/outside/intercepted').expect(200);
    const cookie = sessionCookie(first)!;
    expect(cookie).toBeDefined();
    await http.get('/outside/intercepted').set('Cookie', cookie).expect(200);
    expect(await visits(cookie)).toBe(2);
  });

  it('saves what a guard wrote on a hooked route whose handler an interceptor skipped', async () => {
    const first = await http.get('/outside/guarded').expect(200);
    const cookie = sessionCookie(first)!;
    const cached = await http.get('/outside/cached').set('Cookie', cookie).expect(200);
    expect(cached.text).toBe('cached');
    expect(await visits(cookie)).toBe(2);
  });

  it('rolls back what a guard wrote when the request fails', async () => {
    const first = await http.get('/outside/guarded').expect(200);
    const cookie = sessionCookie(first)!;
    const denied = await http.get('/outside/denied').set('Cookie', cookie).expect(403);
    expect(denied.headers['set-cookie']).toBeUndefined();
    expect(await visits(cookie)).toBe(1);
  });

  it('saves what middleware wrote, before the response ends', async () => {
    const withMiddleware = await createFixtureApp(
      {},
      { controllers: [OutsideController] },
      {
        beforeInit: (app) =>
          app.use((req: VisitRequest, _res: unknown, next: () => void) => {
            if ((req.url ?? '').startsWith('/outside/visits')) return next();
            void countVisit(req).then(next);
          }),
      },
    );
    try {
      const client = request(withMiddleware.getHttpServer());
      const first = await client.get('/plain').expect(200);
      const cookie = sessionCookie(first)!;
      expect(cookie).toBeDefined();
      await client.get('/plain').set('Cookie', cookie).expect(200);
      const read = await client.get('/outside/visits').set('Cookie', cookie).expect(200);
      expect(read.body.visits).toBe(2);
    } finally {
      await withMiddleware.close();
    }
  });
});

describe('Clear-Site-Data on logout (e2e)', () => {
  it('sends it with the response of destroy() when asked, and only then (CK-13)', async () => {
    for (const [clearSiteData, expected] of [
      [true, '"cookies", "storage"'],
      [undefined, undefined],
    ] as const) {
      const app = await createFixtureApp({ clearSiteData });
      try {
        const http = request(app.getHttpServer());
        const created = await http.post('/set').send({ name: 'ann' }).expect(200);
        expect(created.headers['clear-site-data']).toBeUndefined();
        const cookie = sessionCookie(created)!;
        const gone = await http.post('/destroy').set('Cookie', cookie).expect(200);
        expect(gone.headers['clear-site-data']).toBe(expected);
      } finally {
        await app.close();
      }
    }
  });
});
