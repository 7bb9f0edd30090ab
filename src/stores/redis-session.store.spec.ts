import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Get, HttpCode, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { createClient as createClient6 } from 'redis-6';
import request from 'supertest';
import { until } from '../../test/support/redis-processes.js';
import { SERVICES, describeWithService } from '../../test/support/services.js';
import { TcpProxy } from '../../test/support/tcp-proxy.js';
import type { SessionStore } from '../interfaces/session-store.interface.js';
import { Session } from '../session.decorators.js';
import {
  SessionConflictError,
  SessionGoneError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import { SessionModule } from '../session.module.js';
import {
  createWrite,
  describeSessionStoreContract,
  randomStorageKey,
  updateWrite as update,
} from '../testing/index.js';
import { RedisSessionStore, type RedisSessionClient } from '../redis/index.js';

const describeRedis = await describeWithService('redis');
const url = SERVICES.redis.url;

type NodeRedis = ReturnType<typeof createClient>;

// Compile-time proof that the real clients of both libraries fit the store's `client` option.
export const acceptsRealClients: (
  a: NodeRedis,
  b: ReturnType<typeof createCluster>,
  c: Redis,
  d: Cluster,
  e: ReturnType<typeof createClient6>,
) => RedisSessionClient[] = (a, b, c, d, e) => [a, b, c, d, e];

function randomPrefix(label: string): string {
  return `test:${label}:${randomBytes(5).toString('hex')}:`;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** A connected node-redis admin client for assertions and cleanup. */
async function adminClient(): Promise<NodeRedis> {
  const client = createClient({ url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Deletes every key under a prefix (SCAN, never KEYS). */
async function deletePrefix(client: NodeRedis, prefix: string): Promise<void> {
  for await (const keys of client.scanIterator({ MATCH: `${escapeGlob(prefix)}*`, COUNT: 500 })) {
    if (keys.length > 0) await client.del(keys);
  }
}

async function keysUnder(client: NodeRedis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const keys of client.scanIterator({ MATCH: `${escapeGlob(prefix)}*`, COUNT: 500 })) {
    found.push(...keys);
  }
  return found;
}

/** The contract's stores on node-redis clients from `make` (v5 or v6), each closed after its store. */
function nodeRedisStores(
  make: () => NodeRedis | ReturnType<typeof createClient6>,
  prefix: string,
): { create(): Promise<SessionStore>; cleanup(store: SessionStore): Promise<void> } {
  let client: NodeRedis | ReturnType<typeof createClient6>;
  return {
    create: async () => {
      client = make();
      client.on('error', () => undefined);
      await client.connect();
      return new RedisSessionStore({ client, prefix });
    },
    cleanup: async (store) => {
      await store.close?.();
      await client.close();
    },
  };
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// The contract, against a standalone Redis with each client kind (ST-1)
// ---------------------------------------------------------------------------------------------

describeRedis('RedisSessionStore on a standalone Redis', () => {
  let admin: NodeRedis;
  const prefixes: string[] = [];
  beforeAll(async () => {
    admin = await adminClient();
  });
  afterAll(async () => {
    for (const prefix of prefixes) await deletePrefix(admin, prefix);
    await admin.close();
  });

  describeSessionStoreContract(
    'RedisSessionStore (node-redis v5 client)',
    { describe, it, beforeAll, afterAll },
    (() => {
      const prefix = randomPrefix('nr');
      prefixes.push(prefix);
      return nodeRedisStores(() => createClient({ url, disableOfflineQueue: true }), prefix);
    })(),
  );

  describeSessionStoreContract(
    'RedisSessionStore (ioredis client)',
    { describe, it, beforeAll, afterAll },
    (() => {
      const prefix = randomPrefix('io');
      prefixes.push(prefix);
      let client: Redis;
      return {
        create: async () => {
          client = new Redis(url, { enableOfflineQueue: false, lazyConnect: true });
          await client.connect();
          return new RedisSessionStore({ client, prefix });
        },
        cleanup: async (store: SessionStore) => {
          await store.close?.();
          client.disconnect();
        },
      };
    })(),
  );

  describeSessionStoreContract(
    'RedisSessionStore (its own client, from a URL)',
    { describe, it, beforeAll, afterAll },
    (() => {
      const prefix = randomPrefix('url');
      prefixes.push(prefix);
      return {
        create: async () => new RedisSessionStore({ url, prefix }),
        cleanup: async (store: SessionStore) => store.close?.(),
      };
    })(),
  );
});

// ---------------------------------------------------------------------------------------------
// Redis-specific behaviour
// ---------------------------------------------------------------------------------------------

describeRedis('RedisSessionStore: storage, round trips and failures', () => {
  let admin: NodeRedis;
  let nodeClient: NodeRedis;
  let ioClient: Redis;
  const prefix = randomPrefix('spec');
  let store: RedisSessionStore;

  beforeAll(async () => {
    admin = await adminClient();
    nodeClient = createClient({ url, disableOfflineQueue: true });
    nodeClient.on('error', () => undefined);
    await nodeClient.connect();
    ioClient = new Redis(url, { enableOfflineQueue: false, lazyConnect: true });
    await ioClient.connect();
    store = new RedisSessionStore({ client: nodeClient, prefix });
  });
  afterAll(async () => {
    await deletePrefix(admin, prefix);
    await store.close();
    await nodeClient.close();
    ioClient.disconnect();
    await admin.close();
  });

  it('keeps one hash per session: metadata fields plus one d:<key> field per top-level key (ST-6)', async () => {
    const write = createWrite({ cart: ['a'], name: 'ann' }, { userId: 'u-1' });
    await store.save(write);
    const hash = await admin.hGetAll(prefix + write.key);
    expect(hash).toEqual({
      createdAt: String(write.createdAt),
      lastActiveAt: String(write.lastActiveAt),
      expiresAt: String(write.expiresAt),
      absoluteExpiresAt: String(write.absoluteExpiresAt),
      version: '1',
      userId: 'u-1',
      userHash: sha256('u-1'),
      'd:cart': '["a"]',
      'd:name': '"ann"',
    });
    expect(await admin.type(prefix + write.key)).toBe('hash');
  });

  it('sets the TTL on every write to expiresAt, and the user index lives as long as its longest session', async () => {
    const now = Date.now();
    const write = createWrite(
      { a: 1 },
      { userId: 'ttl-user', expiresAt: now + 60_000, absoluteExpiresAt: now + 600_000 },
    );
    await store.save(write);
    const key = prefix + write.key;
    const near = async (k: string, at: number) => {
      const pttl = await admin.pTTL(k);
      // PTTL counts down from the moment of the write; allow for the time the test took.
      expect(pttl).toBeGreaterThan(at - Date.now() - 1500);
      expect(pttl).toBeLessThanOrEqual(at - now);
    };
    await near(key, now + 60_000);
    await near(`${prefix}user:${sha256('ttl-user')}`, now + 600_000);

    await store.save(update(write, { set: { b: '2' }, expiresAt: now + 30_000 }));
    await near(key, now + 30_000);

    // touch never extends past the absolute expiry
    expect(await store.touch(write.key, { lastActiveAt: now, expiresAt: now + 9_000_000 })).toBe(
      true,
    );
    await near(key, now + 600_000);
    expect((await store.load(write.key))!.expiresAt).toBe(now + 600_000);
  });

  it.each([
    ['node-redis', () => nodeClient as RedisSessionClient],
    ['ioredis', () => ioClient as RedisSessionClient],
  ])(
    'uses one round trip per operation with %s: a save is one EVALSHA, a load one HGETALL (ST-6)',
    async (_label, client) => {
      const own = new RedisSessionStore({ client: client(), prefix });
      const warm = createWrite({ warm: true });
      await own.save(warm); // loads the script into Redis' cache if needed
      const monitor = admin.duplicate();
      monitor.on('error', () => undefined);
      await monitor.connect();
      const lines: string[] = [];
      await monitor.monitor((line: string) => {
        if (line.includes(prefix)) lines.push(line);
      });
      try {
        const write = createWrite({ a: 1, b: 2 }, { userId: 'rt-user' });
        const newKey = randomStorageKey();
        const steps: Array<[string, () => Promise<unknown>, string]> = [
          ['create', () => own.save(write), 'EVALSHA'],
          ['update', () => own.save(update(write, { set: { c: '3' }, unset: ['b'] })), 'EVALSHA'],
          [
            'regenerate',
            () => own.save(update(write, { key: newKey, previousKey: write.key })),
            'EVALSHA',
          ],
          ['load', () => own.load(newKey), 'HGETALL'],
          [
            'touch',
            () => own.touch(newKey, { lastActiveAt: 1, expiresAt: Date.now() + 5000 }),
            'EVALSHA',
          ],
          ['list', () => own.listForUser('rt-user'), 'EVALSHA'],
          ['destroy', () => own.destroy(newKey), 'EVALSHA'],
        ];
        for (const [label, step, command] of steps) {
          lines.length = 0;
          await step();
          await sleep(100); // MONITOR lines arrive asynchronously
          const fromClients = lines.filter((line) => !line.includes(' lua]'));
          expect({ label, commands: fromClients.map((line) => line.split('"')[1]) }).toEqual({
            label,
            commands: [command],
          });
        }
        // The steps inside a save run within the script (shown by MONITOR as coming from Lua).
        lines.length = 0;
        await own.save(createWrite({ z: 1 }, { userId: 'rt-user' }));
        await sleep(100);
        const inScript = lines.filter((line) => line.includes(' lua]')).map((l) => l.split('"')[1]);
        expect(inScript).toEqual(expect.arrayContaining(['HSET', 'SADD', 'PEXPIREAT']));
      } finally {
        await monitor.close().catch(() => monitor.destroy());
      }
    },
  );

  it('never returns a raw hash whose expiresAt has passed, even without a TTL (TO-3)', async () => {
    const key = randomStorageKey();
    const past = Date.now() - 1000;
    await admin.hSet(prefix + key, {
      createdAt: String(past - 5000),
      lastActiveAt: String(past - 5000),
      expiresAt: String(past),
      absoluteExpiresAt: String(past + 100_000),
      version: '3',
      userId: 'to3-user',
      userHash: sha256('to3-user'),
      'd:role': '"admin"',
    });
    await admin.sAdd(`${prefix}user:${sha256('to3-user')}`, key);
    expect(await admin.pTTL(prefix + key)).toBe(-1);

    expect(await store.load(key)).toBeNull();
    expect(
      await store.touch(key, { lastActiveAt: Date.now(), expiresAt: Date.now() + 60_000 }),
    ).toBe(false);
    const stale = createWrite({}, { key, userId: 'to3-user' });
    await expect(store.save(update(stale, { set: { role: '"user"' } }))).rejects.toBeInstanceOf(
      SessionGoneError,
    );
    expect(await admin.hGet(prefix + key, 'd:role')).toBe('"admin"'); // nothing written
    expect(await store.listForUser('to3-user')).toEqual([]);
    expect(await admin.sIsMember(`${prefix}user:${sha256('to3-user')}`, key)).toBe(0); // pruned
    expect(await store.destroyForUser('to3-user')).toBe(0);
  });

  it('treats a partial hash (no metadata) as absent', async () => {
    const key = randomStorageKey();
    await admin.hSet(prefix + key, { 'd:a': '1' });
    expect(await store.load(key)).toBeNull();
    await expect(
      store.save(update(createWrite({}, { key }), { set: { b: '1' } })),
    ).rejects.toBeInstanceOf(SessionGoneError);
  });

  it('never lets a save racing a destroy leave a partial hash behind (LC-6, ST-6)', async () => {
    for (let round = 0; round < 20; round++) {
      const write = createWrite({ a: 1 }, { userId: 'race-user' });
      await store.save(write);
      const saves = Array.from({ length: 10 }, (_, i) =>
        store.save(update(write, { set: { [`k${i}`]: String(i) } })),
      );
      const destroyed = store.destroy(write.key);
      const results = await Promise.allSettled([...saves, destroyed]);
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(SessionGoneError);
      }
      expect(await admin.exists(prefix + write.key)).toBe(0);
    }
    expect(await store.listForUser('race-user')).toEqual([]);
  });

  it('stores only hashes: no token, no cookie value and no raw user id in any key or value (TOK-2, ST-12)', async () => {
    const tokPrefix = randomPrefix('tok2');
    const tokStore = new RedisSessionStore({ client: nodeClient, prefix: tokPrefix });
    const userId = 'alice@example.com';

    @Controller()
    class LoginController {
      @Post('login')
      @HttpCode(200)
      async login(@Session() session: Session) {
        await session.regenerate();
        session.data.userId = userId;
        session.data.note = 'hello';
        return 'ok';
      }
      @Get('me')
      me(@Session() session: Session) {
        return { userId: session.data.userId, note: session.data.note };
      }
    }
    const moduleRef = await Test.createTestingModule({
      imports: [
        SessionModule.forRoot({
          secret: 'tok2-spec-9f8e7d6c5b4a39281706f5e4d3c2b1a0',
          store: tokStore,
        }),
      ],
      controllers: [LoginController],
    }).compile();
    const app: INestApplication = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      const res = await request(app.getHttpServer()).post('/login').expect(200);
      const cookie = String(res.headers['set-cookie']).split(';')[0];
      // The cookie value is `<token>.<signature>`; the store must see neither.
      const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
      const [token, signature = token] = value.split('.');
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      await request(app.getHttpServer()).get('/me').set('Cookie', cookie).expect(200, {
        userId,
        note: 'hello',
      });

      const keys = await keysUnder(admin, tokPrefix);
      expect(keys.sort()).toEqual(
        [tokPrefix + sha256(token), `${tokPrefix}user:${sha256(userId)}`].sort(),
      );
      const dump: string[] = [...keys];
      for (const key of keys) {
        if ((await admin.type(key)) === 'hash') {
          dump.push(...Object.entries(await admin.hGetAll(key)).flat());
        } else {
          dump.push(...(await admin.sMembers(key)));
        }
      }
      for (const text of dump) {
        expect(text).not.toContain(token);
        expect(text).not.toContain(signature);
      }
      expect(keys.join(' ')).not.toContain('alice');
    } finally {
      await app.close();
      await deletePrefix(admin, tokPrefix);
    }
  });

  it('refuses a write whose expected values changed, writing nothing (optimistic concurrency)', async () => {
    const write = createWrite({ cart: ['a'] });
    await store.save(write);
    await store.save(update(write, { set: { cart: '["a","b"]' }, expect: { cart: '["a"]' } }));
    await expect(
      store.save(update(write, { set: { cart: '["a","c"]' }, expect: { cart: '["a"]' } })),
    ).rejects.toBeInstanceOf(SessionConflictError);
    await expect(
      store.save(
        update(write, { set: { fresh: '1' }, expect: { fresh: null, cart: '["a","b"]' } }),
      ),
    ).resolves.toBeUndefined();
    await expect(
      store.save(update(write, { set: { fresh: '2' }, expect: { fresh: null } })),
    ).rejects.toBeInstanceOf(SessionConflictError);
    const data = (await store.load(write.key))!.data;
    expect(data).toEqual({ cart: '["a","b"]', fresh: '1' });
  });

  it('takes, refuses, renews, releases and expires per-session locks', async () => {
    const key = randomStorageKey();
    expect(await store.acquireLock(key, 'one', 5000)).toBe(true);
    expect(await store.acquireLock(key, 'two', 5000)).toBe(false);
    expect(await store.acquireLock(key, 'one', 5000)).toBe(true); // re-entrant renewal
    await store.releaseLock(key, 'two'); // not the holder: no effect
    expect(await store.acquireLock(key, 'two', 5000)).toBe(false);
    await store.releaseLock(key, 'one');
    expect(await store.acquireLock(key, 'two', 150)).toBe(true);
    await sleep(300);
    expect(await store.acquireLock(key, 'three', 5000)).toBe(true); // the crashed holder's lock expired
    await store.releaseLock(key, 'three');
    expect(await admin.exists(`${prefix}lock:${key}`)).toBe(0);
  });

  it('reports health with PING', async () => {
    const health = await store.checkHealth();
    expect(health).toMatchObject({ ok: true, store: 'redis (node-redis)' });
    const owned = new RedisSessionStore({ url: 'redis://user:hunter2@127.0.0.1:6379/0', prefix });
    try {
      expect(owned.topology).toBe('single-node');
      const report = await owned.checkHealth();
      expect(report.store).toBe('redis 127.0.0.1:6379');
      expect(JSON.stringify(report)).not.toContain('hunter2');
    } finally {
      await owned.close();
    }
  });

  it('closes the client it made from a URL, and never a client it was given', async () => {
    const given = new RedisSessionStore({ client: nodeClient, prefix });
    await given.close();
    expect(nodeClient.isReady).toBe(true);
    expect(await store.load(randomStorageKey())).toBeNull();

    const owned = new RedisSessionStore({ url, prefix });
    expect(await owned.load(randomStorageKey())).toBeNull(); // connected
    await owned.close();
    await expect(owned.load(randomStorageKey())).rejects.toBeInstanceOf(
      SessionStoreUnavailableError,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// node-redis 6, the current major: its per-command timer
// ---------------------------------------------------------------------------------------------

describeRedis('RedisSessionStore with a node-redis 6 client', () => {
  let admin: NodeRedis;
  const prefix = randomPrefix('nr6');
  const proxy = new TcpProxy({ host: SERVICES.redis.host, port: SERVICES.redis.port });
  let proxyUrl: string;

  beforeAll(async () => {
    admin = await adminClient();
    proxyUrl = `redis://127.0.0.1:${await proxy.start()}`;
  });
  afterAll(async () => {
    await proxy.stop();
    await deletePrefix(admin, prefix);
    await admin.close();
  });

  describeSessionStoreContract(
    'RedisSessionStore (node-redis v6 client)',
    { describe, it, beforeAll, afterAll },
    nodeRedisStores(() => createClient6({ url, disableOfflineQueue: true }), prefix),
  );

  it('sends its commands without the per-command timer of a client that has no offline queue', async () => {
    // node-redis 6's timer only bounds a command's wait to be written: without an offline queue a
    // command is written or refused at once, so the timer (an AbortSignal each) is pure cost.
    const timers = jest.spyOn(AbortSignal, 'timeout');
    const clients = [
      createClient6({ url: proxyUrl, disableOfflineQueue: true }),
      createClient6({ url: proxyUrl }),
    ];
    try {
      const counts: number[] = [];
      for (const client of clients) {
        client.on('error', () => undefined);
        await client.connect();
        const store = new RedisSessionStore({ client, prefix });
        timers.mockClear();
        const write = createWrite({ a: 1 });
        await store.save(write);
        expect((await store.load(write.key))?.data).toEqual({ a: '1' });
        counts.push(timers.mock.calls.length);
        await store.close();
      }
      // With an offline queue (node-redis's default), the client's timer stays: see below.
      expect(counts).toEqual([0, 2]);
      timers.mockClear();
      await clients[0].get(`${prefix}other`); // the client's own commands keep theirs
      expect(timers).toHaveBeenCalledTimes(1);
    } finally {
      timers.mockRestore();
      for (const client of clients) client.destroy();
    }
  });

  it('leaves a client with an offline queue its own timeout: a command given up on while Redis was away is not sent once it is back', async () => {
    // Offline queue on (node-redis's default): a command sent while the connection is down waits
    // in it; the client's 300 ms timer must still drop it, after the store's 150 ms gave up.
    const client = createClient6({
      url: proxyUrl,
      commandOptions: { timeout: 300 },
      socket: { reconnectStrategy: () => 100 },
    });
    client.on('error', () => undefined);
    await client.connect();
    const store = new RedisSessionStore({ client, prefix, commandTimeout: 150 });
    try {
      await proxy.stop();
      await until(() => !client.isReady, 5000, 'the client to see the connection drop');
      const write = createWrite({ late: true });
      await expect(store.save(write)).rejects.toBeInstanceOf(SessionStoreUnavailableError);
      await sleep(500); // past the client's own timeout
      await proxy.start();
      await until(() => client.isReady, 5000, 'the client to reconnect');
      await sleep(200);
      expect(await admin.exists(prefix + write.key)).toBe(0);
    } finally {
      await store.close();
      client.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Without a server: fakes for the paths a live Redis cannot show on demand
// ---------------------------------------------------------------------------------------------

describe('RedisSessionStore with fake clients', () => {
  /** A node-redis-shaped client that records commands and answers through `reply`. */
  function fakeClient(reply: (args: string[]) => Promise<unknown>) {
    const sent: string[][] = [];
    const client = {
      isReady: true,
      sendCommand: (args: string[]) => {
        sent.push(args);
        return reply(args);
      },
    };
    return { client, sent };
  }

  it('reads a hash reply in every shape clients return (flat array, Map, object), Buffer and number values included (IN-2)', async () => {
    const now = Date.now();
    const fields: [string, unknown][] = [
      ['createdAt', String(now - 1000)],
      ['lastActiveAt', Buffer.from(String(now))],
      ['expiresAt', now + 60_000],
      ['absoluteExpiresAt', String(now + 3_600_000)],
      ['version', '3'],
      ['userId', Buffer.from('ann')],
      ['userHash', 'not-data'],
      ['d:role', Buffer.from('"admin"')],
      ['d:__proto__', '{"isAdmin":true}'],
      ['d:n', 5],
    ];
    const shapes = [fields.flat(), new Map(fields), Object.fromEntries(fields)];
    for (const shape of shapes) {
      const { client } = fakeClient(async () => shape);
      const record = await new RedisSessionStore({ client }).load(randomStorageKey());
      expect(record).toMatchObject({
        userId: 'ann',
        version: 3,
        createdAt: now - 1000,
        lastActiveAt: now,
        expiresAt: now + 60_000,
      });
      expect({ ...record!.data }).toEqual({
        role: '"admin"',
        n: '5',
        ['__proto__']: '{"isAdmin":true}',
      });
      expect(Object.getOwnPropertyDescriptor(record!.data, '__proto__')?.value).toBe(
        '{"isAdmin":true}',
      );
      expect(Object.getPrototypeOf(record!.data)).toBe(Object.prototype);
    }
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    // Absent, partial (no expiry) and expired hashes are no record (TO-3).
    const partial = fields.filter(([field]) => field !== 'expiresAt');
    const expired = fields.map(([f, v]): [string, unknown] => [f, f === 'expiresAt' ? now - 1 : v]);
    for (const shape of [null, [], new Map(), {}, partial.flat(), new Map(expired)]) {
      const { client } = fakeClient(async () => shape);
      expect(await new RedisSessionStore({ client }).load(randomStorageKey())).toBeNull();
    }
  });

  it('falls back to EVAL when Redis lost its scripts (NOSCRIPT), then uses EVALSHA again', async () => {
    const loaded = new Set<string>();
    const { client, sent } = fakeClient(async (args) => {
      if (args[0] === 'EVALSHA' && !loaded.has(args[1])) {
        throw new Error('NOSCRIPT No matching script. Please use EVAL.');
      }
      if (args[0] === 'EVAL') {
        loaded.add(createHash('sha1').update(args[1]).digest('hex'));
      }
      return [1, null];
    });
    const store = new RedisSessionStore({ client });
    await store.save(createWrite({ a: 1 }));
    expect(sent.map((args) => args[0])).toEqual(['EVALSHA', 'EVAL']);
    sent.length = 0;
    await store.save(createWrite({ a: 1 }));
    expect(sent.map((args) => args[0])).toEqual(['EVALSHA']);
  });

  it('rejects within commandTimeout when Redis does not answer (FAIL-3)', async () => {
    const { client } = fakeClient(() => new Promise(() => undefined));
    const store = new RedisSessionStore({ client, commandTimeout: 200 });
    const started = Date.now();
    await expect(store.load(randomStorageKey())).rejects.toBeInstanceOf(
      SessionStoreUnavailableError,
    );
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(600);
    expect(await store.checkHealth()).toMatchObject({ ok: false });
  });

  it('wraps client failures as SessionStoreUnavailableError and keeps credentials out of reports (FAIL-1)', async () => {
    const { client } = fakeClient(async () => {
      throw new Error('connect failed for redis://admin:s3cr3t@10.0.0.1:6379');
    });
    const store = new RedisSessionStore({ client });
    const error = await store.load(randomStorageKey()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionStoreUnavailableError);
    const health = await store.checkHealth();
    expect(health.ok).toBe(false);
    expect(JSON.stringify(health)).not.toContain('s3cr3t');
  });

  it('never sends a key that is not a storage hash to Redis (TOK-5)', async () => {
    const { client, sent } = fakeClient(async () => null);
    const store = new RedisSessionStore({ client });
    for (const key of ['*', '../x', 'a b', 'x'.repeat(200), '{tag}', 'a\r\nDEL x', '']) {
      expect(await store.load(key)).toBeNull();
      expect(await store.touch(key, { lastActiveAt: 1, expiresAt: 2 })).toBe(false);
      await store.destroy(key);
      await expect(store.save(createWrite({}, { key }))).rejects.toThrow(TypeError);
    }
    expect(sent).toEqual([]);
  });

  it('detects the client kind by duck typing and refuses anything else', () => {
    expect(() => new RedisSessionStore({ client: {} as RedisSessionClient })).toThrow(
      /kind the store does not know/,
    );
    expect(() => new RedisSessionStore({} as never)).toThrow(/exactly one of/);
    expect(
      () => new RedisSessionStore({ url, client: fakeClient(async () => null).client }),
    ).toThrow(/exactly one of/);
    expect(() => new RedisSessionStore({ url: 'http://x' })).toThrow(/redis:\/\//);
    expect(
      () =>
        new RedisSessionStore({ client: fakeClient(async () => null).client, commandTimeout: -1 }),
    ).toThrow(/commandTimeout/);
    const io = { isCluster: true, call: async () => null };
    expect(new RedisSessionStore({ client: io }).topology).toBe('per-session-slot');
    expect(new RedisSessionStore({ client: io, prefix: '{app}:sess:' }).topology).toBe(
      'single-slot',
    );
    // A brace that is no hash tag would split a session's keys (session, lock) across slots.
    for (const prefix of ['app{}:', 'a{b:', 'a}b:']) {
      expect(() => new RedisSessionStore({ client: io, prefix })).toThrow(/no Cluster hash tag/);
    }
    const nodeCluster = { masters: [], getRandomNode: () => null, sendCommand: async () => null };
    expect(new RedisSessionStore({ client: nodeCluster }).topology).toBe('per-session-slot');
    expect(new RedisSessionStore({ client: { isCluster: false, call: io.call } }).topology).toBe(
      'single-node',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Redis Cluster: a throwaway 3-master cluster on free ports, when redis-server is installed
// ---------------------------------------------------------------------------------------------

const haveRedisBinaries =
  spawnSync('redis-server', ['--version']).status === 0 &&
  spawnSync('redis-cli', ['--version']).status === 0;
if (!haveRedisBinaries)
  console.warn('Skipping Redis Cluster tests: redis-server/redis-cli not found');
const describeCluster = haveRedisBinaries ? describeRedis : describe.skip;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Three masters on ports p, p+1, p+2 (their bus ports +10000 free too), slots spread by redis-cli. */
async function startCluster(): Promise<{ ports: number[]; stop(): Promise<void> }> {
  let base = 0;
  for (let attempt = 0; attempt < 50 && base === 0; attempt++) {
    const candidate = 20_000 + Math.floor((randomBytes(2).readUInt16BE() / 65_536) * 9_000);
    const ports = [0, 1, 2].flatMap((i) => [candidate + i, candidate + i + 10_000]);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) base = candidate;
  }
  if (base === 0) throw new Error('no free ports for a test cluster');
  const ports = [base, base + 1, base + 2];
  const dir = mkdtempSync(join(tmpdir(), 'sess-cluster-'));
  const children: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--cluster-node-timeout',
        '5000',
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    for (const child of children) child.kill('SIGKILL');
    await sleep(50);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      for (let i = 0; ; i++) {
        if (
          spawnSync('redis-cli', ['-p', String(port), 'ping'])
            .stdout?.toString()
            .includes('PONG')
        )
          break;
        if (i > 100) throw new Error(`cluster node ${port} did not start`);
        await sleep(50);
      }
    }
    const created = spawnSync('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    if (created.status !== 0) throw new Error(`cluster create failed: ${created.stderr}`);
    for (let i = 0; ; i++) {
      const states = ports.map((port) =>
        spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info']).stdout.toString(),
      );
      if (states.every((s) => s.includes('cluster_state:ok'))) break;
      if (i > 200) throw new Error('cluster did not become ready');
      await sleep(50);
    }
    return { ports, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

describeCluster('RedisSessionStore on a Redis Cluster', () => {
  let cluster: Promise<{ ports: number[]; stop(): Promise<void> }> | undefined;
  const getCluster = () => (cluster ??= startCluster());
  afterAll(async () => {
    if (cluster) await (await cluster).stop();
  });

  describeSessionStoreContract(
    'RedisSessionStore (node-redis cluster, a slot per session)',
    { describe, it, beforeAll, afterAll },
    (() => {
      let client: ReturnType<typeof createCluster>;
      return {
        create: async () => {
          const { ports } = await getCluster();
          client = createCluster({
            rootNodes: ports.map((port) => ({ url: `redis://127.0.0.1:${port}` })),
          });
          client.on('error', () => undefined);
          await client.connect();
          const store = new RedisSessionStore({ client, prefix: randomPrefix('nrc') });
          expect(store.topology).toBe('per-session-slot');
          return store;
        },
        cleanup: async () => {
          await client.close();
        },
      };
    })(),
  );

  describeSessionStoreContract(
    'RedisSessionStore (ioredis Cluster, a slot per session)',
    { describe, it, beforeAll, afterAll },
    (() => {
      let client: Cluster;
      return {
        create: async () => {
          const { ports } = await getCluster();
          client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
          await new Promise((resolve, reject) => {
            client.once('ready', resolve);
            client.once('error', reject);
          });
          const store = new RedisSessionStore({ client, prefix: randomPrefix('ioc') });
          expect(store.topology).toBe('per-session-slot');
          return store;
        },
        cleanup: async () => {
          client.disconnect();
        },
      };
    })(),
  );

  describeSessionStoreContract(
    'RedisSessionStore (ioredis Cluster, hash-tagged prefix: one slot, one script per operation)',
    { describe, it, beforeAll, afterAll },
    (() => {
      let client: Cluster;
      return {
        create: async () => {
          const { ports } = await getCluster();
          client = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
          await new Promise((resolve, reject) => {
            client.once('ready', resolve);
            client.once('error', reject);
          });
          const store = new RedisSessionStore({
            client,
            prefix: `{${randomBytes(4).toString('hex')}}:sess:`,
          });
          expect(store.topology).toBe('single-slot');
          return store;
        },
        cleanup: async () => {
          client.disconnect();
        },
      };
    })(),
  );

  it('spreads sessions over slots, and keeps a regenerated session whole when it changes slot', async () => {
    const { ports } = await getCluster();
    const client = createCluster({
      rootNodes: ports.map((port) => ({ url: `redis://127.0.0.1:${port}` })),
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const prefix = randomPrefix('slots');
      const store = new RedisSessionStore({ client, prefix });
      const slotOf = async (key: string) =>
        Number(
          spawnSync('redis-cli', [
            '-p',
            String(ports[0]),
            'cluster',
            'keyslot',
            key,
          ]).stdout.toString(),
        );
      // Find a regenerate whose old and new keys live on different slots.
      // With a `__proto__` key, which must move as plain data too (IN-2).
      const write = createWrite(
        Object.fromEntries([
          ['a', 1],
          ['b', 2],
          ['__proto__', 'p'],
        ]),
        { userId: 'slot-user' },
      );
      await store.save(write);
      let newKey = randomStorageKey();
      while ((await slotOf(prefix + newKey)) === (await slotOf(prefix + write.key))) {
        newKey = randomStorageKey();
      }
      await store.save(
        update(write, { key: newKey, previousKey: write.key, set: { c: '3' }, unset: ['a'] }),
      );
      expect(await store.load(write.key)).toBeNull();
      const moved = await store.load(newKey);
      expect(moved).toMatchObject({
        data: { b: '2', c: '3' },
        userId: 'slot-user',
        createdAt: write.createdAt,
        version: 2,
      });
      expect(Object.getOwnPropertyDescriptor(moved!.data, '__proto__')?.value).toBe('"p"');
      // A `__proto__` key in the regenerating write itself.
      let third = randomStorageKey();
      while ((await slotOf(prefix + third)) === (await slotOf(prefix + newKey))) {
        third = randomStorageKey();
      }
      await store.save(
        update(
          { ...write, key: newKey, userId: 'slot-user' },
          { key: third, previousKey: newKey, set: Object.fromEntries([['__proto__', '"q"']]) },
        ),
      );
      const again = await store.load(third);
      expect(Object.getOwnPropertyDescriptor(again!.data, '__proto__')?.value).toBe('"q"');
      expect(Object.getPrototypeOf(again!.data)).toBe(Object.prototype);
      expect((await store.listForUser('slot-user')).map((r) => r.key)).toEqual([third]);
      expect(await store.destroyForUser('slot-user')).toBe(1);
      expect(await store.load(third)).toBeNull();
    } finally {
      await client.close();
    }
  });
});
