import { afterEach, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { WsAdapter } from '@nestjs/platform-ws';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { io as connectIo, type Socket as IoSocket } from 'socket.io-client';
import WebSocket from 'ws';
import {
  MemorySessionStore,
  SessionModule,
  SessionService,
  sessionRoom,
  userRoom,
  type SessionEvent,
  type SessionModuleOptions,
  type SessionStore,
} from '../src/index.js';
import { RedisSessionStore } from '../src/redis/index.js';
import { GatewayAuthController, SessionGateway } from './fixtures/session.gateway.js';
import { TEST_SECRET } from './support/app.js';
import { SERVICES, describeWithService } from './support/services.js';
import { overriding } from './support/stores.js';

// Sessions in WebSocket gateways: read from the handshake cookie, loaded afresh for every message,
// changes committed after the handler. Each test boots its own app(s) and closes every socket.

interface Transport {
  readonly name: string;
  readonly kind: 'socket.io' | 'ws';
  readonly http: 'express' | 'fastify';
}

const TRANSPORTS: Transport[] = [
  { name: 'socket.io on Express', kind: 'socket.io', http: 'express' },
  { name: 'socket.io on Fastify', kind: 'socket.io', http: 'fastify' },
  { name: 'ws on Express', kind: 'ws', http: 'express' },
];

const RUN = randomBytes(4).toString('hex');
const describeRedis = await describeWithService('redis');

interface StoreKind {
  readonly name: 'memory' | 'redis';
  readonly describe: typeof describe;
  /** Stores that share their sessions: one per app of a test (instances behind a balancer). */
  shared(): () => SessionStore;
}

const STORES: StoreKind[] = [
  {
    name: 'memory',
    describe,
    shared: () => {
      const store = new MemorySessionStore();
      return () => store;
    },
  },
  {
    name: 'redis',
    describe: describeRedis,
    shared: () => {
      const prefix = `test:websocket:${RUN}:${randomBytes(3).toString('hex')}:`;
      return () => new RedisSessionStore({ url: SERVICES.redis.url, prefix });
    },
  },
];

/** A message's answer: the reply `{ event, data }`, or the `exception` event. */
interface Answer {
  readonly event: string;
  readonly data: unknown;
}

/** One connected client of either transport. */
interface Client {
  ask(event: string, data?: unknown): Promise<Answer>;
  /** Resolves when the server closes the connection. */
  readonly closed: Promise<void>;
  close(): void;
}

const apps: INestApplication[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const app of apps.splice(0)) await app.close();
});

/** Boots an app with the fixture gateway on `transport`, listening on 127.0.0.1. */
async function boot(transport: Transport, options: Partial<SessionModuleOptions>) {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ secret: TEST_SECRET, ...options })],
    controllers: [GatewayAuthController],
    providers: [SessionGateway],
  }).compile();
  const app =
    transport.http === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  if (transport.kind === 'ws') app.useWebSocketAdapter(new WsAdapter(app));
  apps.push(app);
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  const base = `http://127.0.0.1:${address.port}`;
  return {
    app,
    base,
    service: app.get(SessionService),
    gateway: app.get(SessionGateway),
    connect: (cookie?: string) => connect(transport, base, cookie),
  };
}

async function connect(transport: Transport, base: string, cookie?: string): Promise<Client> {
  const headers: Record<string, string> = cookie ? { Cookie: cookie } : {};
  const client =
    transport.kind === 'socket.io'
      ? await connectSocketIo(base, headers)
      : await connectWs(base, headers);
  clients.push(client);
  return client;
}

async function connectSocketIo(base: string, headers: Record<string, string>): Promise<Client> {
  const socket: IoSocket = connectIo(base, {
    transports: ['websocket'],
    extraHeaders: headers,
    reconnection: false,
    forceNew: true,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.once('disconnect', () => resolve()));
  return {
    ask: (event, data) =>
      new Promise((resolve) => {
        const done = (answer: Answer) => {
          socket.off(event, onReply);
          socket.off('exception', onException);
          resolve(answer);
        };
        const onReply = (reply: unknown) => done({ event, data: reply });
        const onException = (error: unknown) => done({ event: 'exception', data: error });
        socket.on(event, onReply);
        socket.on('exception', onException);
        socket.emit(event, data ?? {});
      }),
    closed,
    close: () => socket.disconnect(),
  };
}

async function connectWs(base: string, headers: Record<string, string>): Promise<Client> {
  const socket = new WebSocket(base.replace('http', 'ws'), { headers });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    ask: (event, data) =>
      new Promise((resolve) => {
        socket.once('message', (raw) => resolve(JSON.parse(String(raw)) as Answer));
        socket.send(JSON.stringify({ event, data: data ?? {} }));
      }),
    closed,
    close: () => socket.terminate(),
  };
}

/** The Cookie header a response's Set-Cookie lines make (a sealed session may span several). */
function cookieOf(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((line) => line.split(';')[0])
    .join('; ');
}

async function login(base: string, userId: string, role?: string) {
  const res = await fetch(`${base}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId, role }),
  });
  expect(res.status).toBe(200);
  const { id } = (await res.json()) as { id: string };
  return { id, cookie: cookieOf(res) };
}

async function me(base: string, cookie: string) {
  const res = await fetch(`${base}/me`, { headers: { cookie } });
  return (await res.json()) as { isNew: boolean; data: Record<string, unknown> };
}

/** Polls `check` until it holds (rooms are joined just after the connection). */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error('condition not met in time');
}

const refused = (reason: string, code: string, message: string): Answer => ({
  event: 'exception',
  data: { status: 'error', reason, code, message },
});
const MISSING = refused('missing', 'SESSION_MISSING', 'A valid session is required');
const FORBIDDEN = refused(
  'forbidden',
  'SESSION_FORBIDDEN',
  'This session may not send this message',
);

for (const transport of TRANSPORTS) {
  for (const store of STORES) {
    store.describe(
      `Sessions in a WebSocket gateway (${transport.name}, ${store.name} store)`,
      () => {
        it('reads the session from the handshake cookie, and a fresh session without one', async () => {
          const { base, connect } = await boot(transport, { store: store.shared()() });
          const { id, cookie } = await login(base, 'ada');

          const client = await connect(`theme=dark; ${cookie}`);
          expect(await client.ask('whoami')).toEqual({
            event: 'whoami',
            data: { isNew: false, userId: 'ada', id },
          });
          expect(await client.ask('sid')).toEqual({ event: 'sid', data: { id, userId: 'ada' } });

          const anonymous = await connect();
          const answer = await anonymous.ask('whoami');
          expect(answer).toMatchObject({ event: 'whoami', data: { isNew: true, userId: null } });
        });

        it('treats a forged or tampered cookie as no session', async () => {
          const { base, connect } = await boot(transport, { store: store.shared()() });
          const { cookie } = await login(base, 'mallory');
          const tampered = `${cookie.slice(0, -2)}xx`;
          for (const header of ['sid=forged.value', tampered]) {
            const client = await connect(header);
            expect(await client.ask('whoami')).toMatchObject({ data: { isNew: true } });
            expect(await client.ask('guarded')).toEqual(MISSING);
          }
        });

        it('refuses a guarded message without a session, or when the predicate says no', async () => {
          const { base, connect } = await boot(transport, { store: store.shared()() });
          const anonymous = await connect();
          expect(await anonymous.ask('guarded')).toEqual(MISSING);
          expect(await anonymous.ask('admin')).toEqual(MISSING);

          const user = await connect((await login(base, 'bob', 'user')).cookie);
          expect(await user.ask('guarded')).toEqual({ event: 'guarded', data: 'ok' });
          expect(await user.ask('admin')).toEqual(FORBIDDEN);

          const admin = await connect((await login(base, 'root', 'admin')).cookie);
          expect(await admin.ask('admin')).toEqual({ event: 'admin', data: 'root' });
        });

        it("commits a handler's change after it, for the next HTTP request to see", async () => {
          const { base, connect } = await boot(transport, { store: store.shared()() });
          const { cookie } = await login(base, 'carol');
          const client = await connect(cookie);
          expect(await client.ask('note', { note: 'hello' })).toEqual({
            event: 'note',
            data: 'hello',
          });
          expect((await me(base, cookie)).data).toEqual({ userId: 'carol', note: 'hello' });
        });

        it('rolls back the change of a handler that throws', async () => {
          const { base, connect } = await boot(transport, { store: store.shared()() });
          const { cookie } = await login(base, 'dave');
          const client = await connect(cookie);
          expect(await client.ask('note', { note: 'kept' })).toEqual({
            event: 'note',
            data: 'kept',
          });
          expect(await client.ask('fail', { note: 'lost' })).toMatchObject({
            event: 'exception',
            data: { status: 'error' },
          });
          expect((await me(base, cookie)).data).toEqual({ userId: 'dave', note: 'kept' });
        });

        it('refuses a write that needs a new cookie, with SESSION_NO_TRANSPORT, and stores nothing', async () => {
          const { service, connect } = await boot(transport, { store: store.shared()() });
          const client = await connect();
          const answer = await client.ask('sign-in');
          expect(answer).toMatchObject({
            event: 'exception',
            data: { status: 'error', code: 'SESSION_NO_TRANSPORT' },
          });
          expect(await service.listForUser('from-socket')).toEqual([]);
        });

        it('refuses the next message on an open socket once the session is logged out over HTTP', async () => {
          const { base, connect } = await boot(transport, { store: store.shared()() });
          const { cookie } = await login(base, 'erin');
          const client = await connect(cookie);
          expect(await client.ask('guarded')).toEqual({ event: 'guarded', data: 'ok' });

          const res = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie } });
          expect(res.status).toBe(200);
          expect(await client.ask('guarded')).toEqual(MISSING);
          expect(await client.ask('whoami')).toMatchObject({ data: { isNew: true, userId: null } });
        });

        it('refuses the next message once another instance revokes the session or the user', async () => {
          const stores = store.shared();
          const first = await boot(transport, { store: stores() });
          const second = await boot(transport, { store: stores() });
          const a = await login(first.base, 'frank');
          const b = await login(first.base, 'grace');
          const clientA = await first.connect(a.cookie);
          const clientB = await first.connect(b.cookie);
          expect(await clientA.ask('guarded')).toEqual({ event: 'guarded', data: 'ok' });
          expect(await clientB.ask('guarded')).toEqual({ event: 'guarded', data: 'ok' });

          await second.service.invalidate(a.id);
          expect(await clientA.ask('guarded')).toEqual(MISSING);
          await second.service.invalidateAllForUser('grace');
          expect(await clientB.ask('note', { note: 'late' })).toEqual(MISSING);
        });

        it('runs under the session lock with concurrency: serialize, and releases it after each message', async () => {
          const { base, connect } = await boot(transport, {
            store: store.shared()(),
            concurrency: 'serialize',
            lockTimeout: 2000,
          });
          const { cookie } = await login(base, 'kim');
          const client = await connect(cookie);
          expect(await client.ask('note', { note: 'one' })).toEqual({ event: 'note', data: 'one' });
          expect(await client.ask('fail', { note: 'two' })).toMatchObject({ event: 'exception' });
          expect(await client.ask('note', { note: 'three' })).toEqual({
            event: 'note',
            data: 'three',
          });
          // Each message released the lock: the HTTP request does not wait for lockTimeout.
          const started = Date.now();
          expect((await me(base, cookie)).data).toEqual({ userId: 'kim', note: 'three' });
          expect(Date.now() - started).toBeLessThan(1000);
        });

        it('commits every value of an observable handler under @SessionLock(), then releases the lock', async () => {
          // Under 'serialize' the HTTP read below takes the lock too: it would wait for a leaked one.
          const { base, connect } = await boot(transport, {
            store: store.shared()(),
            concurrency: 'serialize',
            lockTimeout: 2000,
          });
          const { cookie } = await login(base, 'lars');
          const client = await connect(cookie);
          expect(await client.ask('notes', { note: 'x' })).toEqual({ event: 'notes', data: 'x-1' });
          await eventually(async () => (await me(base, cookie)).data.note === 'x-2');
          // The lock went back when the stream ended: the HTTP request does not wait for it.
          const started = Date.now();
          expect((await me(base, cookie)).data).toEqual({ userId: 'lars', note: 'x-2' });
          expect(Date.now() - started).toBeLessThan(1000);
        });

        if (transport.kind === 'socket.io') {
          it("joins a socket to its session's and user's rooms, so a logout can disconnect them", async () => {
            const { base, gateway, connect } = await boot(transport, { store: store.shared()() });
            const server = gateway.server as unknown as {
              in(room: string): { fetchSockets(): Promise<unknown[]> };
            };
            const first = await login(base, 'heidi');
            const second = await login(base, 'heidi');
            const phone = await connect(first.cookie);
            const laptop = await connect(second.cookie);
            const other = await connect((await login(base, 'ivan')).cookie);
            await eventually(
              async () => (await server.in(userRoom('heidi')).fetchSockets()).length === 2,
            );
            expect(await server.in(sessionRoom(first.id)).fetchSockets()).toHaveLength(1);

            const res = await fetch(`${base}/logout?disconnect=session`, {
              method: 'POST',
              headers: { cookie: first.cookie },
            });
            expect(res.status).toBe(200);
            await phone.closed;
            expect(await laptop.ask('guarded')).toEqual({ event: 'guarded', data: 'ok' });

            await fetch(`${base}/logout?disconnect=user`, {
              method: 'POST',
              headers: { cookie: second.cookie },
            });
            await laptop.closed;
            expect(await other.ask('guarded')).toEqual({ event: 'guarded', data: 'ok' });
          });
        }
      },
    );
  }

  describe(`WebSocket gateway edge cases (${transport.name}, memory store)`, () => {
    it('answers "unavailable" while the store is down, and the session again once it is back', async () => {
      const backing = new MemorySessionStore();
      let down = false;
      const store = overriding(backing, {
        load: (key) => (down ? Promise.reject(new Error('connection refused')) : backing.load(key)),
      });
      const { base, connect } = await boot(transport, { store });
      const client = await connect((await login(base, 'liam')).cookie);
      down = true;
      const unavailable = refused(
        'unavailable',
        'STORE_UNAVAILABLE',
        'Sessions are temporarily unavailable; please retry shortly',
      );
      expect(await client.ask('guarded')).toEqual(unavailable);
      expect(await client.ask('whoami')).toEqual(unavailable);
      down = false;
      expect(await client.ask('whoami')).toMatchObject({ data: { isNew: false, userId: 'liam' } });
    });

    if (transport.kind === 'socket.io') {
      it('disconnects the sockets of a user from an onEvent listener (revoked, destroyed)', async () => {
        const events: { listener?: (event: SessionEvent) => void } = {};
        const { base, gateway, service, connect } = await boot(transport, {
          store: new MemorySessionStore(),
          onEvent: (event) => events.listener?.(event),
        });
        const server = gateway.server as unknown as {
          in(room: string): {
            fetchSockets(): Promise<unknown[]>;
            disconnectSockets(c: boolean): void;
          };
        };
        events.listener = (event) => {
          if ((event.type === 'revoked' || event.type === 'destroyed') && event.userId) {
            server.in(userRoom(event.userId)).disconnectSockets(true);
          }
        };
        const mia = await login(base, 'mia');
        const noah = await login(base, 'noah');
        const miaSocket = await connect(mia.cookie);
        const noahSocket = await connect(noah.cookie);
        await eventually(
          async () => (await server.in(userRoom('noah')).fetchSockets()).length === 1,
        );
        await eventually(
          async () => (await server.in(userRoom('mia')).fetchSockets()).length === 1,
        );

        await service.invalidateAllForUser('mia');
        await miaSocket.closed;
        await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: noah.cookie } });
        await noahSocket.closed;
      });
    }
  });

  describe(`Sealed sessions in a WebSocket gateway (${transport.name})`, () => {
    it('reads a sealed session, and refuses a write that would need a new seal', async () => {
      const { base, connect } = await boot(transport, { mode: 'sealed' });
      const { cookie } = await login(base, 'judy', 'admin');
      const client = await connect(cookie);
      expect(await client.ask('whoami')).toMatchObject({
        event: 'whoami',
        data: { isNew: false, userId: 'judy' },
      });
      expect(await client.ask('admin')).toEqual({ event: 'admin', data: 'judy' });
      expect(await client.ask('note', { note: 'x' })).toMatchObject({
        event: 'exception',
        data: { status: 'error', code: 'SESSION_NO_TRANSPORT' },
      });
      expect((await me(base, cookie)).data).toEqual({ userId: 'judy', role: 'admin' });
    });
  });
}
