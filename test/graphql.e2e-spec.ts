import 'reflect-metadata';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { GraphQLModule } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { Test } from '@nestjs/testing';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient as createWsClient } from 'graphql-ws';
import { createClient } from 'redis';
import WebSocket from 'ws';
import request from 'supertest';
import {
  MemorySessionStore,
  SessionConfigError,
  SessionModule,
  SessionService,
  type Session,
  type SessionStore,
} from '../src/index.js';
import { RedisSessionStore } from '../src/redis/index.js';
import { TEST_SECRET, initApp, sessionCookie, sessionSetCookie } from './support/app.js';
import { SERVICES, describeWithService } from './support/services.js';
import { locklessStore } from './support/stores.js';
import { SessionResolver, SessionSubscriptionResolver } from './fixtures/graphql.resolvers.js';

/**
 * Sessions in GraphQL resolvers (code-first, `autoSchemaFile: true`): Apollo on Express and
 * Mercurius on Fastify, each on the memory store and on Redis. The spec boots its own apps on both
 * adapters, so Jest runs it once (EXPRESS_ONLY in jest.config.js).
 */

const describeRedis = await describeWithService('redis');
const run = randomBytes(4).toString('hex');
const redisPrefix = `test:graphql:${run}:`;

type Driver = 'Apollo on Express' | 'Mercurius on Fastify';

interface StoreCase {
  readonly name: 'memory' | 'redis';
  readonly describe: typeof describe;
  create(): SessionStore;
}

const STORES: StoreCase[] = [
  { name: 'memory', describe, create: () => new MemorySessionStore() },
  {
    name: 'redis',
    describe: describeRedis,
    create: () =>
      new RedisSessionStore({
        url: SERVICES.redis.url,
        prefix: `${redisPrefix}${randomBytes(3).toString('hex')}:`,
      }),
  },
];

/** A store seen through a proxy that counts calls and can be taken down (every call throws). */
interface Observed {
  readonly store: SessionStore;
  readonly calls: Record<string, number>;
  down: boolean;
}

const READS = ['load', 'loadSync'];
const WRITES = ['save', 'saveSync', 'touch', 'destroy'];

function observe(backing: SessionStore): Observed {
  const observed: Observed = { store: backing, calls: {}, down: false };
  const store = new Proxy(backing, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      if (![...READS, ...WRITES].includes(prop)) return value.bind(target);
      return (...args: unknown[]) => {
        observed.calls[prop] = (observed.calls[prop] ?? 0) + 1;
        if (observed.down) throw new Error('store down');
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return Object.assign(observed, { store });
}

function count(observed: Observed, methods: string[]): number {
  return methods.reduce((sum, name) => sum + (observed.calls[name] ?? 0), 0);
}

function graphQLModule(driver: Driver) {
  return driver === 'Apollo on Express'
    ? GraphQLModule.forRoot<ApolloDriverConfig>({
        driver: ApolloDriver,
        autoSchemaFile: true,
        graphiql: false,
        allowBatchedHttpRequests: true,
        fieldResolverEnhancers: ['guards'],
        context: ({ req, res }: { req: unknown; res: unknown }) => ({ req, res }),
      })
    : GraphQLModule.forRoot<MercuriusDriverConfig>({
        driver: MercuriusDriver,
        autoSchemaFile: true,
        graphiql: false,
        allowBatchedQueries: true,
        fieldResolverEnhancers: ['guards'],
      });
}

interface Operation {
  query: string;
  variables?: Record<string, unknown>;
}

interface GraphQLError {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string };
}

interface GraphQLResult {
  data?: Record<string, unknown> | null;
  errors?: GraphQLError[];
}

const CASES = (['Apollo on Express', 'Mercurius on Fastify'] as const).flatMap((driver) =>
  STORES.map((store) => ({ driver, store })),
);

describe.each(CASES)('Sessions in GraphQL resolvers', ({ driver, store: storeCase }) => {
  storeCase.describe(`${driver}, ${storeCase.name} store`, () => {
    let app: INestApplication;
    let observed: Observed;

    beforeAll(async () => {
      observed = observe(storeCase.create());
      const moduleRef = await Test.createTestingModule({
        imports: [
          SessionModule.forRoot({ secret: TEST_SECRET, store: observed.store }),
          graphQLModule(driver),
        ],
        providers: [SessionResolver],
      }).compile();
      app = await initApp(
        moduleRef as never,
        {},
        driver === 'Apollo on Express' ? 'express' : 'fastify',
      );
    });

    afterAll(async () => {
      await app?.close();
    });

    beforeEach(() => {
      observed.down = false;
    });

    function post(body: Operation | Operation[], cookie?: string) {
      const req = request(app.getHttpServer()).post('/graphql');
      if (cookie) req.set('Cookie', cookie);
      return req.send(body);
    }

    async function gql(query: string, cookie?: string, variables?: Record<string, unknown>) {
      const res = await post({ query, variables }, cookie);
      expect(res.status).toBe(200);
      return { res, body: res.body as GraphQLResult };
    }

    async function login(userId = 'alice', role = 'user'): Promise<string> {
      const { res, body } = await gql(
        'mutation($u: String!, $r: String) { login(userId: $u, role: $r) }',
        undefined,
        {
          u: userId,
          r: role,
        },
      );
      expect(body).toEqual({ data: { login: true } });
      const cookie = sessionCookie(res);
      expect(cookie).toBeDefined();
      return cookie!;
    }

    function codes(body: GraphQLResult): (string | undefined)[] {
      return (body.errors ?? []).map((error) => error.extensions?.code);
    }

    async function sessionName(cookie: string): Promise<unknown> {
      const { body } = await gql('{ sessionName }', cookie);
      return body.data?.sessionName;
    }

    it('answers an anonymous query of a guarded resolver with an UNAUTHENTICATED error', async () => {
      const { res, body } = await gql('{ whoami { userId } }');
      expect(codes(body)).toEqual(['UNAUTHENTICATED']);
      expect(body.errors![0].path).toEqual(['whoami']);
      expect(body.data ?? null).toBeNull();
      expect(res.headers['set-cookie']).toBeUndefined();
    });

    it('sets the session cookie on a login mutation, with a new id for the logged-in session', async () => {
      const { res: anonymous } = await gql('mutation { setName(name: "before login") }');
      const before = sessionCookie(anonymous)!;
      expect(before).toBeDefined();

      const { res, body } = await gql('mutation { login(userId: "bob") }', before);
      expect(body).toEqual({ data: { login: true } });
      expect(sessionSetCookie(res)).toMatch(/HttpOnly/);
      const after = sessionCookie(res)!;
      expect(after).toBeDefined();
      expect(after).not.toBe(before);

      // The new id keeps the data; the anonymous id is gone.
      const { body: whoami } = await gql('{ whoami { userId name } }', after);
      expect(whoami).toEqual({ data: { whoami: { userId: 'bob', name: 'before login' } } });
      const { body: old } = await gql('{ whoami { userId } }', before);
      expect(codes(old)).toEqual(['UNAUTHENTICATED']);
    });

    it('answers a guarded query with the cookie; a field resolver and @SessionId() read the session', async () => {
      const cookie = await login('carol');
      await gql('mutation { setName(name: "Carol") }', cookie);
      const { body } = await gql('{ whoami { userId role name } sessionId }', cookie);
      expect(body.errors).toBeUndefined();
      expect(body.data).toEqual({
        whoami: { userId: 'carol', role: 'user', name: 'Carol' },
        sessionId: expect.stringMatching(/^[\w-]{20,}$/),
      });
      const { body: again } = await gql('{ sessionId }', cookie);
      expect(again.data?.sessionId).toBe(body.data?.sessionId);
    });

    it('answers a @RequireSession(predicate) that returns false with a FORBIDDEN error, on a query and on a field', async () => {
      const user = await login('dave', 'user');
      const { body: query } = await gql('{ adminOnly }', user);
      expect(codes(query)).toEqual(['FORBIDDEN']);
      const { body: field } = await gql('{ whoami { userId secret } }', user);
      expect(codes(field)).toEqual(['FORBIDDEN']);
      expect(field.data).toEqual({ whoami: { userId: 'dave', secret: null } });

      const admin = await login('erin', 'admin');
      const { body: allowed } = await gql('{ adminOnly whoami { secret } }', admin);
      expect(allowed).toEqual({ data: { adminOnly: 'admin', whoami: { secret: 'for admins' } } });
    });

    it.each(['setNameThenFail', 'setNameThenReject'])(
      'answers 200 with the error of a mutation that writes then fails (%s), and stores nothing of it',
      async (mutation) => {
        const cookie = await login('frank');
        await gql('mutation { setName(name: "kept") }', cookie);
        observed.calls.save = observed.calls.saveSync = 0;

        const { res, body } = await gql(`mutation { ${mutation}(name: "dropped") }`, cookie);
        expect(body.errors?.map((error) => error.path)).toEqual([[mutation]]);
        expect(res.headers['set-cookie']).toBeUndefined();
        expect(count(observed, ['save', 'saveSync'])).toBe(0);
        expect(await sessionName(cookie)).toBe('kept');
      },
    );

    it('rolls back every change of a request when one of its session resolvers fails', async () => {
      const cookie = await login('grace');
      // The guard of addTagAsUser commits nothing of what setName changed before it.
      const { body } = await gql(
        'mutation { setName(name: "lost") addTagAsUser(tag: "lost") setNameThenFail(name: "also lost") }',
        cookie,
      );
      expect(body.data).toBeNull();
      expect(body.errors).toHaveLength(1);
      const { body: read } = await gql('{ sessionName tags }', cookie);
      expect(read).toEqual({ data: { sessionName: null, tags: [] } });
    });

    it('commits the changes of a request whose only failure is in a resolver that does not use the session', async () => {
      const cookie = await login('heidi');
      const { body } = await gql('mutation { setName(name: "kept") failWithoutSession }', cookie);
      expect(body.errors).toHaveLength(1);
      expect(await sessionName(cookie)).toBe('kept');
    });

    it('commits two writing resolvers of one request once (a guarded one included), both changes visible', async () => {
      const cookie = await login('ivan');
      observed.calls.save = observed.calls.saveSync = 0;
      const { body } = await gql(
        'mutation { setName(name: "Ivan") addTagAsUser(tag: "a") }',
        cookie,
      );
      expect(body).toEqual({ data: { setName: true, addTagAsUser: true } });
      expect(count(observed, ['save', 'saveSync'])).toBe(1);
      const { body: read } = await gql('{ sessionName tags }', cookie);
      expect(read).toEqual({ data: { sessionName: 'Ivan', tags: ['a'] } });
    });

    it('keeps every change of 30 concurrent requests to a @SessionLock() mutation', async () => {
      const cookie = await login('lena');
      const add = (field: string, i: number) =>
        gql(`mutation($t: String!) { ${field}(tag: $t) }`, cookie, { t: `t${i}` });
      await Promise.all(Array.from({ length: 30 }, (_, i) => add('addTagLocked', i)));
      const { body } = await gql('{ tags }', cookie);
      expect(new Set(body.data?.tags as string[]).size).toBe(30);
    });

    it('refuses a @SessionLock() mutation with CONFLICT after an earlier one of the request changed the session unlocked', async () => {
      const cookie = await login('mona');
      const { body } = await gql(
        'mutation { setName(name: "Mona") addTagLocked(tag: "a") }',
        cookie,
      );
      expect(codes(body)).toEqual(['CONFLICT']);
      const { body: read } = await gql('{ sessionName tags }', cookie);
      expect(read).toEqual({ data: { sessionName: null, tags: [] } });
    });

    it('keeps every locked change when a parallel resolver of the request loaded the session first', async () => {
      const cookie = await login('nina');
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          post(
            [
              { query: '{ tags }' },
              {
                query: 'mutation($t: String!) { addTagLocked(tag: $t) }',
                variables: { t: `t${i}` },
              },
            ],
            cookie,
          ).expect(200),
        ),
      );
      const { body } = await gql('{ tags }', cookie);
      expect(new Set(body.data?.tags as string[]).size).toBe(20);
    });

    it("keeps the request's lock through a resolver a guard refuses, so no locked change is lost", async () => {
      const cookie = await login('pia');
      const results = await Promise.all(
        Array.from({ length: 15 }, (_, i) =>
          gql(
            'mutation($t: String!, $u: String!) { a: addTagLocked(tag: $t) adminTag(tag: "no") b: addTagLocked(tag: $u) }',
            cookie,
            { t: `a${i}`, u: `b${i}` },
          ),
        ),
      );
      for (const { body } of results) expect(codes(body)).toEqual(['FORBIDDEN']);
      const { body } = await gql('{ tags }', cookie);
      expect(new Set(body.data?.tags as string[]).size).toBe(30);
    });

    it('saves all or nothing of a batch whose unlocked write runs beside a @SessionLock() mutation', async () => {
      const cookie = await login('omar');
      const res = await post(
        [
          { query: 'mutation { setName(name: "Omar") }' },
          { query: 'mutation { addTagLocked(tag: "a") }' },
        ],
        cookie,
      ).expect(200);
      const failed = (res.body as GraphQLResult[]).some((r) => (r.errors ?? []).length > 0);
      const { body } = await gql('{ sessionName tags }', cookie);
      expect(body).toEqual(
        failed
          ? { data: { sessionName: null, tags: [] } }
          : { data: { sessionName: 'Omar', tags: ['a'] } },
      );
    });

    it('commits a batched request once, every operation on the same session', async () => {
      const cookie = await login('judy');
      observed.calls.save = observed.calls.saveSync = 0;
      const res = await post(
        [
          { query: 'mutation { setName(name: "Judy") }' },
          { query: 'mutation { addTag(tag: "x") }' },
          { query: 'mutation { addTag(tag: "y") }' },
        ],
        cookie,
      );
      expect(res.status).toBe(200);
      expect(res.body).toEqual([
        { data: { setName: true } },
        { data: { addTag: true } },
        { data: { addTag: true } },
      ]);
      expect(count(observed, ['save', 'saveSync'])).toBe(1);
      const { body } = await gql('{ sessionName tags }', cookie);
      expect(body.data?.sessionName).toBe('Judy');
      // Both operations appended to the same session (in whichever order they ran).
      expect([...(body.data?.tags as string[])].sort()).toEqual(['x', 'y']);
    });

    it('rolls back a batched request in which one operation fails after using the session', async () => {
      const cookie = await login('ken');
      const res = await post(
        [
          { query: 'mutation { setName(name: "lost") }' },
          { query: 'mutation { setNameThenFail(name: "lost too") }' },
        ],
        cookie,
      );
      expect(res.status).toBe(200);
      expect((res.body as GraphQLResult[]).map((result) => result.errors?.length ?? 0)).toEqual([
        0, 1,
      ]);
      expect(await sessionName(cookie)).toBeNull();
    });

    it('runs no session code for a query that does not use the session: no store call, no cookie', async () => {
      const cookie = await login('leo');
      for (const presented of [undefined, cookie]) {
        for (const key of Object.keys(observed.calls)) delete observed.calls[key];
        const before = count(observed, [...READS, ...WRITES]);
        const { res, body } = await gql('{ hello }', presented);
        expect(body).toEqual({ data: { hello: 'world' } });
        expect(res.headers['set-cookie']).toBeUndefined();
        expect(count(observed, [...READS, ...WRITES])).toBe(before);
      }
    });

    it('clears the cookie on a logout mutation (session.destroy())', async () => {
      const cookie = await login('mallory');
      const { res, body } = await gql('mutation { logout }', cookie);
      expect(body).toEqual({ data: { logout: true } });
      expect(sessionSetCookie(res)).toMatch(/^sid=;.*(Max-Age=0|Expires=Thu, 01 Jan 1970)/);
      const { body: after } = await gql('{ whoami { userId } }', cookie);
      expect(codes(after)).toEqual(['UNAUTHENTICATED']);
    });

    it('answers SERVICE_UNAVAILABLE (never a 500) while the store is down', async () => {
      const cookie = await login('niaj');
      observed.down = true;
      // The guard's load, and @Session()'s.
      for (const query of ['{ whoami { userId } }', '{ sessionName }']) {
        const { res, body } = await gql(query, cookie);
        expect(codes(body)).toEqual(['SERVICE_UNAVAILABLE']);
        expect(res.headers['set-cookie']).toBeUndefined();
      }
      // A mutation that must know its change was stored saves before answering.
      const { body: saved } = await gql('mutation { saveName(name: "x") }');
      expect(codes(saved)).toEqual(['SERVICE_UNAVAILABLE']);
      observed.down = false;
      const { body: back } = await gql('{ whoami { userId } }', cookie);
      expect(back).toEqual({ data: { whoami: { userId: 'niaj' } } });
    });
  });
});

describe.each(['Apollo on Express', 'Mercurius on Fastify'] as const)(
  "Sessions in GraphQL resolvers, 'sealed' mode (%s)",
  (driver) => {
    let app: INestApplication;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          SessionModule.forRoot({ secret: TEST_SECRET, mode: 'sealed' }),
          graphQLModule(driver),
        ],
        providers: [SessionResolver],
      }).compile();
      app = await initApp(
        moduleRef as never,
        {},
        driver === 'Apollo on Express' ? 'express' : 'fastify',
      );
    });

    afterAll(async () => {
      await app?.close();
    });

    const gql = (query: string, cookie?: string) => {
      const req = request(app.getHttpServer()).post('/graphql');
      if (cookie) req.set('Cookie', cookie);
      return req.send({ query }).expect(200);
    };

    it('carries the session in the cookie and sends no cookie for a mutation that failed', async () => {
      const login = await gql('mutation { login(userId: "peggy") setName(name: "kept") }');
      const cookie = sessionCookie(login)!;
      expect(cookie).toBeDefined();

      const failed = await gql('mutation { setNameThenFail(name: "dropped") }', cookie);
      expect((failed.body as GraphQLResult).errors).toHaveLength(1);
      expect(failed.headers['set-cookie']).toBeUndefined();

      const read = await gql('{ whoami { userId name } }', cookie);
      expect(read.body).toEqual({ data: { whoami: { userId: 'peggy', name: 'kept' } } });
    });
  },
);

/** What a graphql-ws subscription delivered: its results, and its error if it failed. */
interface Delivered {
  results: GraphQLResult[];
  error?: unknown;
}

/** Subscribes over graphql-ws with the cookie on the WebSocket handshake, until it ends. */
function subscribe(url: string, cookie: string | undefined, query: string): Promise<Delivered> {
  class CookieWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, cookie ? { headers: { cookie } } : {});
    }
  }
  const client = createWsClient({ url, webSocketImpl: CookieWebSocket, retryAttempts: 0 });
  return new Promise<Delivered>((resolve) => {
    const results: GraphQLResult[] = [];
    client.subscribe<Record<string, unknown>>(
      { query },
      {
        next: (result) => results.push(result as GraphQLResult),
        error: (error) => resolve({ results, error }),
        complete: () => resolve({ results }),
      },
    );
  }).finally(() => client.dispose());
}

/**
 * GraphQL with subscriptions over graphql-ws, wired as the README shows: the session of the
 * handshake's Cookie header, resolved once per connection and carried in the context as `session`.
 */
function graphQLWithSubscriptions(driver: Driver) {
  if (driver === 'Apollo on Express') {
    return GraphQLModule.forRootAsync<ApolloDriverConfig>({
      driver: ApolloDriver,
      inject: [SessionService],
      useFactory: (sessions: SessionService) => ({
        autoSchemaFile: true,
        graphiql: false,
        fieldResolverEnhancers: ['guards'],
        subscriptions: {
          'graphql-ws': {
            onConnect: async (ctx) => {
              const extra = ctx.extra as { request: IncomingMessage; session?: Session };
              extra.session = await sessions.fromRequest(extra.request);
            },
          },
        },
        context: ({ req, res, extra }: Record<string, Record<string, unknown>>) =>
          extra ? { req: extra.request, session: extra.session } : { req, res },
      }),
    });
  }
  return GraphQLModule.forRootAsync<MercuriusDriverConfig>({
    driver: MercuriusDriver,
    inject: [SessionService],
    useFactory: (sessions: SessionService) => ({
      autoSchemaFile: true,
      graphiql: false,
      fieldResolverEnhancers: ['guards'],
      subscription: {
        context: async (_socket, request) => ({ session: await sessions.fromRequest(request) }),
      },
    }),
  });
}

describe.each(CASES)('Subscriptions over graphql-ws', ({ driver, store: storeCase }) => {
  storeCase.describe(`${driver}, ${storeCase.name} store`, () => {
    let app: INestApplication;
    let url: string;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          SessionModule.forRoot({ secret: TEST_SECRET, store: storeCase.create() }),
          graphQLWithSubscriptions(driver),
        ],
        providers: [SessionResolver, SessionSubscriptionResolver],
      }).compile();
      const platform = driver === 'Apollo on Express' ? 'express' : 'fastify';
      app = await initApp(moduleRef as never, {}, platform);
      await app.listen(0, '127.0.0.1');
      const { port } = app.getHttpServer().address() as AddressInfo;
      url = `ws://127.0.0.1:${port}/graphql`;
    });

    afterAll(async () => {
      await app?.close();
    });

    it('reads the session of the WebSocket connection in a guarded subscription', async () => {
      const res = await request(app.getHttpServer())
        .post('/graphql')
        .send({ query: 'mutation { login(userId: "olivia") }' });
      const cookie = sessionCookie(res)!;
      expect(cookie).toBeDefined();
      const delivered = await subscribe(url, cookie, 'subscription { greetings }');
      expect(delivered).toEqual({
        results: [{ data: { greetings: 'hello olivia' } }, { data: { greetings: 'bye olivia' } }],
      });
    });

    it('refuses the subscription of a connection without a session with UNAUTHENTICATED', async () => {
      const delivered = await subscribe(url, undefined, 'subscription { greetings }');
      const errors = [
        ...delivered.results.flatMap((result) => result.errors ?? []),
        ...(Array.isArray(delivered.error) ? (delivered.error as GraphQLError[]) : []),
      ];
      expect(errors.map((error) => error.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    });
  });
});

describe('@SessionLock() on GraphQL resolvers', () => {
  it('refuses to boot with a store that cannot lock', async () => {
    const lockless = locklessStore();
    const moduleRef = await Test.createTestingModule({
      imports: [
        SessionModule.forRoot({ secret: TEST_SECRET, store: lockless }),
        graphQLModule('Apollo on Express'),
      ],
      providers: [SessionResolver],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    try {
      await expect(app.init()).rejects.toThrow(/@SessionLock\(\) needs a store with acquireLock/);
    } finally {
      await app.close().catch(() => undefined);
    }
  });
});

describe('Session guards on GraphQL field resolvers', () => {
  it("refuses to boot when Nest would not run them (no fieldResolverEnhancers: ['guards'])", async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SessionModule.forRoot({ secret: TEST_SECRET }),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          autoSchemaFile: true,
          graphiql: false,
        }),
      ],
      providers: [SessionResolver],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    try {
      const booting = app.init();
      await expect(booting).rejects.toBeInstanceOf(SessionConfigError);
      await expect(booting).rejects.toThrow(/SessionResolver\.secret would not run/);
      await expect(booting).rejects.not.toThrow(/SessionResolver\.name/);
    } finally {
      await app.close().catch(() => undefined);
    }
  });
});

afterAll(async () => {
  if (describeRedis !== describe) return;
  const client = createClient({ url: SERVICES.redis.url });
  client.on('error', () => undefined);
  await client.connect();
  for await (const keys of client.scanIterator({ MATCH: `${redisPrefix}*`, COUNT: 500 })) {
    if (keys.length > 0) await client.del(keys);
  }
  await client.close();
});
