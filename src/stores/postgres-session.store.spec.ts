import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller, Get, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import request from 'supertest';
import { SERVICES, describeWithService } from '../../test/support/services.js';
import { SessionConflictError, SessionError, SessionGoneError } from '../session.errors.js';
import { Session } from '../session.decorators.js';
import { SessionModule } from '../session.module.js';
import {
  createWrite,
  describeSessionStoreContract,
  randomStorageKey,
  updateWrite as update,
} from '../testing/index.js';
import { PostgresSessionStore, postgresSessionSchema } from '../postgres/index.js';

const describePg = await describeWithService('postgres');
const url = SERVICES.postgres.url;
/** Every test table lives in this schema, dropped at the end. */
const schema = `sess_test_${randomBytes(5).toString('hex')}`;

let admin: pg.Pool;
const stores: PostgresSessionStore[] = [];

/** A store on the shared admin pool, in the test schema; closed after the run. */
function storeFor(
  tableName: string,
  options: Partial<ConstructorParameters<typeof PostgresSessionStore>[0]> = {},
) {
  const store = new PostgresSessionStore({
    pool: admin,
    schema,
    tableName,
    pruneInterval: false,
    ...options,
  });
  stores.push(store);
  return store;
}

/** Counts (and records) the statements pg clients send about one table (all of them without one). */
function countQueries(table?: string) {
  const texts: string[] = [];
  const values: unknown[][] = [];
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  const spy = jest.spyOn(pg.Client.prototype, 'query').mockImplementation(function (
    this: pg.Client,
    ...args: unknown[]
  ) {
    const c = args[0] as { text?: string; values?: unknown[] } | string;
    const text = typeof c === 'string' ? c : (c.text ?? '');
    if (table && !text.includes(`"${schema}"."${table}"`)) return original.apply(this, args);
    texts.push(typeof c === 'string' ? c : (c.text ?? ''));
    values.push(typeof c === 'string' ? ((args[1] as unknown[]) ?? []) : (c.values ?? []));
    return original.apply(this, args);
  } as never);
  return {
    texts,
    values,
    restore: () => spy.mockRestore(),
    reset: () => {
      texts.length = 0;
      values.length = 0;
    },
  };
}

async function insertRaw(
  table: string,
  key: string,
  expiresOffset: string,
  userId: string | null = null,
) {
  await admin.query(
    `INSERT INTO "${schema}"."${table}" (id_hash, user_id, created_at, last_active_at, expires_at, absolute_expires_at, data, version)
     VALUES ($1, $2, now() - interval '1 hour', now() - interval '1 hour', now() + $3::interval, now() + interval '1 day', '{"a": 1}', 1)`,
    [key, userId, expiresOffset],
  );
}

async function rowCount(table: string): Promise<number> {
  const result = await admin.query(`SELECT count(*)::int AS n FROM "${schema}"."${table}"`);
  return result.rows[0].n;
}

describe('postgresSessionSchema', () => {
  it('is the SQL that docs/postgres.md shows', () => {
    const docs = readFileSync(join(process.cwd(), 'docs/postgres.md'), 'utf8');
    expect(docs).toContain('```sql\n' + postgresSessionSchema() + '```');
  });

  it('creates a schema other than public, quoting every name', () => {
    const sql = postgresSessionSchema({ schema: 'auth', tableName: 'user_sessions' });
    expect(sql).toMatch(/^CREATE SCHEMA IF NOT EXISTS "auth";/);
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "auth"."user_sessions" (');
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "auth"."user_sessions_locks" (');
  });
});

describePg('PostgresSessionStore (real PostgreSQL)', () => {
  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: url, max: 5, connectionTimeoutMillis: 5000 });
  });

  afterAll(async () => {
    for (const store of stores) await store.close();
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.end();
  });

  describeSessionStoreContract(
    'PostgresSessionStore (own pool from a connection string)',
    { describe, it, beforeAll, afterAll },
    {
      create: async () =>
        new PostgresSessionStore({
          connectionString: url,
          schema,
          tableName: 'contract',
          pruneInterval: false,
        }),
      cleanup: (store) => store.close!(),
    },
  );

  describeSessionStoreContract(
    'PostgresSessionStore (passed pool)',
    { describe, it, beforeAll, afterAll },
    { create: async () => storeFor('contract_pool') },
  );

  describe('schema', () => {
    it('creates the schema, the table with the ST-7 columns and both indexes (ST-7, TO-4)', async () => {
      const own = `sess_test_${randomBytes(5).toString('hex')}`;
      try {
        const store = new PostgresSessionStore({ pool: admin, schema: own, pruneInterval: false });
        await store.ensureTable();
        const columns = await admin.query(
          `SELECT column_name, data_type, is_nullable FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = 'sessions' ORDER BY ordinal_position`,
          [own],
        );
        expect(columns.rows).toEqual([
          { column_name: 'id_hash', data_type: 'text', is_nullable: 'NO' },
          { column_name: 'user_id', data_type: 'text', is_nullable: 'YES' },
          { column_name: 'created_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
          {
            column_name: 'last_active_at',
            data_type: 'timestamp with time zone',
            is_nullable: 'NO',
          },
          { column_name: 'expires_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
          {
            column_name: 'absolute_expires_at',
            data_type: 'timestamp with time zone',
            is_nullable: 'NO',
          },
          { column_name: 'data', data_type: 'jsonb', is_nullable: 'NO' },
          { column_name: 'version', data_type: 'integer', is_nullable: 'NO' },
        ]);
        const indexes = await admin.query(
          `SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`,
          [own],
        );
        const defs = indexes.rows.map(
          (r: { tablename: string; indexname: string; indexdef: string }) =>
            `${r.tablename} ${r.indexname} ${r.indexdef.replace(/^.* USING /, '')}`,
        );
        expect(defs).toEqual([
          'sessions sessions_expires_at_idx btree (expires_at)',
          'sessions_locks sessions_locks_pkey btree (id_hash)',
          'sessions sessions_pkey btree (id_hash)',
          'sessions sessions_user_id_idx btree (user_id)',
        ]);
        await store.close();
      } finally {
        await admin.query(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
      }
    });

    it('is idempotent when several instances start at once', async () => {
      const own = `sess_test_${randomBytes(5).toString('hex')}`;
      try {
        const many = Array.from(
          { length: 6 },
          () =>
            new PostgresSessionStore({ connectionString: url, schema: own, pruneInterval: false }),
        );
        const results = await Promise.allSettled(many.map((s) => s.ensureTable()));
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        // And again, now that everything exists.
        await Promise.all(many.map((s) => s.ensureTable()));
        const write = createWrite({ a: 1 });
        await many[0].save(write);
        expect(await many[5].load(write.key)).not.toBeNull();
        await Promise.all(many.map((s) => s.close()));
      } finally {
        await admin.query(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
      }
    });

    it('runs nothing but a catalog lookup when the table already exists (least-privilege roles)', async () => {
      await storeFor('existing').ensureTable();
      const counter = countQueries();
      try {
        const store = storeFor('existing');
        await store.ensureTable();
        expect(counter.texts).toHaveLength(1);
        expect(counter.texts[0]).toMatch(/to_regclass/);
      } finally {
        counter.restore();
      }
    });

    it('with createTable: false works on a table made from the exported SQL', async () => {
      const sql = postgresSessionSchema({ schema, tableName: 'by_hand' });
      expect(sql).toContain(`CREATE TABLE IF NOT EXISTS "${schema}"."by_hand"`);
      expect(sql).toContain(`CREATE INDEX IF NOT EXISTS "by_hand_expires_at_idx"`);
      await admin.query(sql);
      await admin.query(sql); // idempotent
      const store = storeFor('by_hand', { createTable: false });
      const write = createWrite({ a: 1 });
      await store.save(write);
      expect(JSON.parse((await store.load(write.key))!.data.a)).toBe(1);
      expect(postgresSessionSchema()).toMatch(/^CREATE TABLE IF NOT EXISTS "public"."sessions"/);
    });

    it('with createTable: false fails clearly when the table is missing, and creates nothing', async () => {
      const store = storeFor('never_created', { createTable: false });
      await expect(store.load(randomStorageKey())).rejects.toThrow(/does not exist/);
      const exists = await admin.query(`SELECT to_regclass($1) AS t`, [
        `"${schema}"."never_created"`,
      ]);
      expect(exists.rows[0].t).toBeNull();
    });
  });

  describe('configuration', () => {
    const bad: Array<[string, Record<string, unknown>, RegExp]> = [
      ['an upper-case schema', { schema: 'Public' }, /'schema' must be/],
      ['a schema with SQL in it', { schema: 'x"; DROP TABLE users; --' }, /'schema' must be/],
      ['a pg_ schema', { schema: 'pg_sessions' }, /reserved/],
      ['an empty table name', { tableName: '' }, /'tableName' must be/],
      ['a table name starting with a digit', { tableName: '1sessions' }, /'tableName' must be/],
      ['a table name with a dot', { tableName: 'a.b' }, /'tableName' must be/],
      [
        'a table name too long for its index names',
        { tableName: 'a'.repeat(49) },
        /'tableName' must be/,
      ],
      ['a bad queryTimeout', { queryTimeout: -1 }, /'queryTimeout'/],
      ['a bad pruneInterval', { pruneInterval: 'soon' }, /'pruneInterval'/],
      ['a bad pruneBatchSize', { pruneBatchSize: 0 }, /'pruneBatchSize'/],
    ];
    it.each(bad)('refuses %s with a clear message', (_label, options, message) => {
      let error: unknown;
      try {
        new PostgresSessionStore({ pool: admin, pruneInterval: false, ...options });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SessionError);
      expect((error as SessionError).code).toBe('SESSION_CONFIG_INVALID');
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toMatch(/^PostgresSessionStore: /);
    });

    it('needs exactly one of pool and connectionString', () => {
      expect(() => new PostgresSessionStore({})).toThrow(/exactly one of 'pool'/);
      expect(() => new PostgresSessionStore({ pool: admin, connectionString: url })).toThrow(
        /exactly one of 'pool'/,
      );
    });

    it('validates the names in the exported SQL too', () => {
      expect(() => postgresSessionSchema({ tableName: 'x; DROP' })).toThrow(/'tableName' must be/);
    });
  });

  describe('expiry', () => {
    it('never returns an expired row inserted directly, and deletes it on read (TO-3)', async () => {
      const store = storeFor('expiry');
      await store.ensureTable();
      const key = randomStorageKey();
      await insertRaw('expiry', key, '-1 minute', 'ann-to3');
      expect(await rowCount('expiry')).toBe(1);
      expect(await store.listForUser('ann-to3')).toEqual([]);
      expect(
        await store.touch(key, { lastActiveAt: Date.now(), expiresAt: Date.now() + 60_000 }),
      ).toBe(false);
      const write = createWrite({}, { key });
      await expect(store.save(update(write, { set: { b: '2' } }))).rejects.toBeInstanceOf(
        SessionGoneError,
      );
      expect(await store.load(key)).toBeNull();
      expect(await rowCount('expiry')).toBe(0);
    });

    it('lets a create replace an expired row with the same key, but never a live one', async () => {
      const store = storeFor('expiry');
      const [expired, live] = [randomStorageKey(), randomStorageKey()];
      await insertRaw('expiry', expired, '-1 minute');
      await insertRaw('expiry', live, '1 minute');
      await store.save(createWrite({ fresh: true }, { key: expired }));
      expect((await store.load(expired))!.data).toEqual({ fresh: 'true' });
      await expect(store.save(createWrite({ fresh: true }, { key: live }))).rejects.toBeInstanceOf(
        SessionGoneError,
      );
      expect((await store.load(live))!.data).toEqual({ a: '1' });
    });

    it("judges expiry by the application's clock, not the database's", async () => {
      const store = storeFor('expiry');
      const write = createWrite({ a: 1 });
      await store.save(write);
      const now = jest.spyOn(Date, 'now').mockReturnValue(write.expiresAt);
      try {
        expect(await store.load(write.key)).toBeNull();
      } finally {
        now.mockRestore();
      }
    });

    it('touch never extends a session past its absolute expiry', async () => {
      const store = storeFor('expiry');
      const write = createWrite({ a: 1 });
      await store.save(write);
      expect(
        await store.touch(write.key, {
          lastActiveAt: Date.now(),
          expiresAt: write.absoluteExpiresAt + 10_000,
        }),
      ).toBe(true);
      expect((await store.load(write.key))!.expiresAt).toBe(write.absoluteExpiresAt);
    });
  });

  describe('pruning', () => {
    it('prune() deletes exactly the expired rows (ST-8)', async () => {
      const store = storeFor('prune_one');
      await store.ensureTable();
      const [past, future] = [randomStorageKey(), randomStorageKey()];
      await insertRaw('prune_one', past, '-1 second');
      await insertRaw('prune_one', future, '1 hour');
      expect(await store.prune()).toBe(1);
      const left = await admin.query(`SELECT id_hash FROM "${schema}"."prune_one"`);
      expect(left.rows).toEqual([{ id_hash: future }]);
      expect(await store.prune()).toBe(0);
    });

    it('prunes in batches of pruneBatchSize, one statement each (ST-8)', async () => {
      const store = storeFor('prune_batch', { pruneBatchSize: 2 });
      await store.ensureTable();
      for (let i = 0; i < 5; i++) await insertRaw('prune_batch', randomStorageKey(), '-1 second');
      await insertRaw('prune_batch', randomStorageKey(), '1 hour');
      const counter = countQueries('prune_batch');
      try {
        expect(await store.prune()).toBe(5);
        expect(counter.texts.filter((t) => t.includes('USING'))).toHaveLength(3);
      } finally {
        counter.restore();
      }
      expect(await rowCount('prune_batch')).toBe(1);
    });

    it('lets the expires_at index serve the prune statement (TO-4)', async () => {
      const store = storeFor('prune_plan');
      await store.ensureTable();
      const counter = countQueries('prune_plan');
      try {
        await store.prune();
      } finally {
        counter.restore();
      }
      const statement = counter.texts.find((t) => t.includes('USING'))!;
      const client = await admin.connect();
      try {
        await client.query('BEGIN');
        // On a tiny table a sequential scan is cheaper; forbid it to see whether the index can serve.
        await client.query('SET LOCAL enable_seqscan = off');
        const plan = await client.query(
          `EXPLAIN ${statement}`,
          counter.values[counter.texts.indexOf(statement)],
        );
        const text = plan.rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
        expect(text).toContain('prune_plan_expires_at_idx');
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
    });

    it('prunes by itself on the randomised timer', async () => {
      const store = storeFor('prune_timer', { pruneInterval: 40 });
      await store.ensureTable();
      await insertRaw('prune_timer', randomStorageKey(), '-1 second');
      await insertRaw('prune_timer', randomStorageKey(), '1 hour');
      for (let i = 0; i < 50 && (await rowCount('prune_timer')) > 1; i++) await sleep(20);
      expect(await rowCount('prune_timer')).toBe(1);
      await store.close();
    });
  });

  describe('statements and data', () => {
    it('sends exactly one statement per operation (ST-7)', async () => {
      const store = storeFor('statements');
      await store.ensureTable();
      const counter = countQueries('statements');
      const userId = `u-${randomBytes(4).toString('hex')}`;
      try {
        const write = createWrite({ a: 1, b: 2 }, { userId });
        const steps: Array<[string, () => Promise<unknown>]> = [
          ['create', () => store.save(write)],
          ['load', () => store.load(write.key)],
          ['delta update', () => store.save(update(write, { set: { c: '3' }, unset: ['a'] }))],
          [
            'touch',
            () =>
              store.touch(write.key, { lastActiveAt: Date.now(), expiresAt: Date.now() + 1000 }),
          ],
          [
            'regenerate',
            () => store.save(update(write, { key: randomStorageKey(), previousKey: write.key })),
          ],
          ['list', () => store.listForUser(userId)],
          ['destroy for user', () => store.destroyForUser(userId)],
          ['destroy', () => store.destroy(write.key)],
          [
            'gone update',
            () => store.save(update(write, { set: { d: '4' } })).catch(() => undefined),
          ],
        ];
        for (const [label, step] of steps) {
          counter.reset();
          await step();
          expect([label, counter.texts.length]).toEqual([label, 1]);
        }
      } finally {
        counter.restore();
      }
    });

    it('applies the delta in SQL: a concurrent write of another key is kept (ST-7)', async () => {
      const store = storeFor('statements');
      const write = createWrite({ a: 1, b: 2 });
      await store.save(write);
      // Another instance changes "b" between this request's load and save.
      await storeFor('statements').save(update(write, { set: { b: '20' } }));
      await store.save(update(write, { set: { c: '3' }, unset: ['a'] }));
      const record = await store.load(write.key);
      expect(record!.data).toEqual({ b: '20', c: '3' });
      expect(record!.version).toBe(3);
    });

    it('returns each value as the JSON.stringify text of its value, whatever jsonb did to it', async () => {
      const store = storeFor('statements');
      const texts = {
        obj: '{"zeta":1,"alpha":{"y":[1,2.50,{"b":null,"a":"é"}],"x":true}}',
        num: '1.0e21',
        neg: '-1.50',
        uni: '"\\u00e9\\ud83d\\ude00 \\"quoted\\""',
        deep: '[[[[{"k":"v"}]]]]',
      };
      const write = createWrite({}, { set: texts });
      await store.save(write);
      const { data } = (await store.load(write.key))!;
      for (const [key, text] of Object.entries(texts)) {
        // A fixed point of parse + stringify: an untouched value never looks changed to the core.
        expect(data[key]).toBe(JSON.stringify(JSON.parse(data[key])));
        expect(JSON.parse(data[key])).toEqual(JSON.parse(text));
      }
      // jsonb orders keys by length, then bytes; the text is still what JSON.stringify gives.
      expect(data.obj).toBe('{"zeta":1,"alpha":{"x":true,"y":[1,2.5,{"a":"é","b":null}]}}');
    });

    it('stores keys and values as data, never as SQL, and refuses a value that is not one JSON text', async () => {
      const store = storeFor('statements');
      const hostileKey = `'); DELETE FROM "${schema}"."statements"; --`;
      const write = createWrite({ [hostileKey]: "'; DROP TABLE x; --", '{"x"': 1 });
      await store.save(write);
      const record = await store.load(write.key);
      expect(JSON.parse(record!.data[hostileKey])).toBe("'; DROP TABLE x; --");
      expect(JSON.parse(record!.data['{"x"'])).toBe(1);
      // A value text that would smuggle in another key if the JSON were pasted together.
      const smuggle = update(write, { set: { a: '1, "role": "admin"' } });
      await expect(store.save(smuggle)).rejects.toThrow();
      const after = await store.load(write.key);
      expect(after!.data.role).toBeUndefined();
      expect(after!.data.a).toBeUndefined();
    });

    it('refuses NUL characters and unpaired surrogates with a typed error, writing nothing', async () => {
      const store = storeFor('statements');
      const write = createWrite({ ok: 1 });
      await store.save(write);
      for (const value of ['a\u0000b', '\ud800']) {
        const attempt = store.save(update(write, { set: { bad: JSON.stringify(value) } }));
        await expect(attempt).rejects.toMatchObject({ code: 'SESSION_NOT_SERIALIZABLE' });
      }
      await expect(store.save(createWrite({ bad: 'x\u0000' }))).rejects.toMatchObject({
        code: 'SESSION_NOT_SERIALIZABLE',
      });
      expect((await store.load(write.key))!.data).toEqual({ ok: '1' });
    });

    it('counts only live sessions in destroyForUser and deletes the expired ones too', async () => {
      const store = storeFor('statements');
      const userId = `u-${randomBytes(4).toString('hex')}`;
      await store.save(createWrite({}, { userId }));
      await insertRaw('statements', randomStorageKey(), '-1 minute', userId);
      expect(await store.destroyForUser(userId)).toBe(1);
      const left = await admin.query(
        `SELECT count(*)::int AS n FROM "${schema}"."statements" WHERE user_id = $1`,
        [userId],
      );
      expect(left.rows[0].n).toBe(0);
    });
  });

  describe('optimistic concurrency and locks', () => {
    it('applies an update whose expected values still hold, compared as jsonb', async () => {
      const store = storeFor('optimistic');
      const write = createWrite({ cart: { b: 1, a: [1, 2] }, n: 1 });
      await store.save(write);
      const loaded = (await store.load(write.key))!;
      await store.save(
        update(write, {
          set: { n: '2', fresh: '"x"' },
          // The loaded text, and a key that was absent.
          expect: { n: loaded.data.n, cart: '{"b":1,"a":[1,2]}', fresh: null },
        }),
      );
      expect((await store.load(write.key))!.data).toEqual({
        cart: '{"a":[1,2],"b":1}',
        n: '2',
        fresh: '"x"',
      });
    });

    it('refuses an update whose expected values changed meanwhile, writing nothing', async () => {
      const store = storeFor('optimistic');
      const write = createWrite({ n: 1, other: 'a' });
      await store.save(write);
      await store.save(update(write, { set: { n: '2' } }));
      const stale = update(write, {
        set: { n: '2', other: '"b"' },
        expect: { n: '1', other: '"a"' },
      });
      await expect(store.save(stale)).rejects.toBeInstanceOf(SessionConflictError);
      const absentExpected = update(write, { set: { other: '"c"' }, expect: { other: null } });
      await expect(store.save(absentExpected)).rejects.toBeInstanceOf(SessionConflictError);
      const record = (await store.load(write.key))!;
      expect(record.data).toEqual({ n: '2', other: '"a"' });
      expect(record.version).toBe(2);
      // On a destroyed session the same write is "gone", not a conflict (LC-6).
      await store.destroy(write.key);
      await expect(store.save(stale)).rejects.toBeInstanceOf(SessionGoneError);
    });

    it('lets exactly one of many concurrent compare-and-set writes of one key win', async () => {
      const store = storeFor('optimistic');
      const write = createWrite({ n: 0 });
      await store.save(write);
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          store.save(update(write, { set: { n: String(i + 1) }, expect: { n: '0' } })),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect((await store.load(write.key))!.version).toBe(2);
    });

    it('locks a session for one owner at a time, until released or expired', async () => {
      const store = storeFor('locks');
      const other = storeFor('locks');
      const key = randomStorageKey();
      expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
      expect(await other.acquireLock(key, 'b', 10_000)).toBe(false);
      expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
      await other.releaseLock(key, 'b'); // not the holder: no effect
      expect(await other.acquireLock(key, 'b', 10_000)).toBe(false);
      await store.releaseLock(key, 'a');
      expect(await other.acquireLock(key, 'b', 100)).toBe(true);
      await sleep(150);
      expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
      const [x, y] = await Promise.all([
        store.acquireLock(`${key}-2`, 'x', 10_000),
        other.acquireLock(`${key}-2`, 'y', 10_000),
      ]);
      expect([x, y].sort()).toEqual([false, true]);
    });

    it('prunes expired locks along with expired sessions', async () => {
      const store = storeFor('locks');
      await store.acquireLock(randomStorageKey(), 'gone', 1);
      await store.acquireLock(randomStorageKey(), 'held', 60_000);
      await sleep(10);
      await store.prune();
      const owners = await admin.query(`SELECT owner FROM "${schema}"."locks_locks"`);
      expect(owners.rows.map((r: { owner: string }) => r.owner)).not.toContain('gone');
      expect(owners.rows.map((r: { owner: string }) => r.owner)).toContain('held');
    });
  });

  describe('pool ownership, health and timeouts', () => {
    it('leaves a passed pool open on close()', async () => {
      const store = storeFor('owner');
      await store.ensureTable();
      await store.close();
      await expect(admin.query('SELECT 1')).resolves.toBeDefined();
    });

    it('ends the pool it created itself on close()', async () => {
      const applicationName = `owned-pool-${randomBytes(4).toString('hex')}`;
      const connections = async () =>
        (
          await admin.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`,
            [applicationName],
          )
        ).rows[0].n as number;
      const store = new PostgresSessionStore({
        connectionString: url,
        schema,
        tableName: 'owner',
        poolConfig: { application_name: applicationName },
      });
      await store.ensureTable();
      await store.load(randomStorageKey());
      expect(await connections()).toBeGreaterThan(0);
      await store.close();
      for (let i = 0; i < 50 && (await connections()) > 0; i++) await sleep(20);
      expect(await connections()).toBe(0);
      await expect(store.load(randomStorageKey())).rejects.toThrow(/closed/);
    });

    it('reports health: ok with latency, or a failure without secrets within the timeout (FAIL-3)', async () => {
      const store = storeFor('owner');
      const up = await store.checkHealth();
      expect(up.ok).toBe(true);
      expect(up.store).toBe(`postgres ${schema}.owner`);

      const down = new PostgresSessionStore({
        connectionString: 'postgres://postgres:hunter2-secret@127.0.0.1:1/test',
        schema,
        queryTimeout: 500,
        connectTimeout: 500,
      });
      const started = Date.now();
      const health = await down.checkHealth();
      expect(Date.now() - started).toBeLessThan(1500);
      expect(health.ok).toBe(false);
      expect(JSON.stringify(health)).not.toContain('hunter2');
      await expect(down.load(randomStorageKey())).rejects.toThrow();
      await down.close();
    });

    it('bounds a statement by queryTimeout on a passed pool (FAIL-3)', async () => {
      const store = storeFor('owner', { queryTimeout: 300 });
      await store.ensureTable();
      // Hold the row lock so the update has to wait.
      const write = createWrite({ a: 1 });
      await store.save(write);
      const client = await admin.connect();
      try {
        await client.query('BEGIN');
        await client.query(`SELECT 1 FROM "${schema}"."owner" WHERE id_hash = $1 FOR UPDATE`, [
          write.key,
        ]);
        const started = Date.now();
        await expect(store.save(update(write, { set: { b: '2' } }))).rejects.toThrow(/timeout/i);
        expect(Date.now() - started).toBeLessThan(1000);
        // The store cancels the statement on the server, so it cannot apply once the lock is gone.
        const waiting = async () =>
          (
            await admin.query(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`,
            )
          ).rows[0].n as number;
        for (let i = 0; i < 50 && (await waiting()) > 0; i++) await sleep(20);
        expect(await waiting()).toBe(0);
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      await sleep(50);
      expect((await store.load(write.key))!.data).toEqual({ a: '1' });
    });
  });

  describe('end to end', () => {
    @Controller()
    class LoginController {
      @Post('login')
      async login(@Session() session: Session) {
        await session.regenerate();
        session.data.userId = 'alice';
        session.data.secretish = 'value';
        return 'ok';
      }
      @Get('me')
      me(@Session() session: Session) {
        return session.data;
      }
    }

    let app: INestApplication;
    const e2eStore = () => storeFor('e2e');

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          SessionModule.forRoot({ secret: randomBytes(32).toString('hex'), store: e2eStore() }),
        ],
        controllers: [LoginController],
      }).compile();
      app = moduleRef.createNestApplication();
      await app.init();
    });
    afterAll(async () => {
      await app?.close();
    });

    it('stores only the hash of the token: no cookie substring is in the table (TOK-2)', async () => {
      const res = await request(app.getHttpServer()).post('/login').expect(201);
      const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
      const value = setCookie[0].split(';')[0].split('=').slice(1).join('=');
      const token = value.slice(0, 43);
      const signature = value.slice(44);
      expect(value).toMatch(/^[\w-]{43}\.[\w-]{43}$/);
      await request(app.getHttpServer())
        .get('/me')
        .set('Cookie', `sid=${value}`)
        .expect(200)
        .expect((r) => expect(r.body.userId).toBe('alice'));

      const dump = await admin.query(`SELECT t::text AS row FROM "${schema}"."e2e" AS t`);
      const text = dump.rows.map((r: { row: string }) => r.row).join('\n');
      expect(text).toContain('alice');
      expect(text).not.toContain(token);
      expect(text).not.toContain(signature);
      expect(text).not.toContain(token.slice(0, 16));
      const hash = createHash('sha256').update(token).digest('base64url');
      const keys = await admin.query(`SELECT id_hash FROM "${schema}"."e2e"`);
      expect(keys.rows).toEqual([{ id_hash: hash }]);
    });
  });
});
