import { randomInt } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { Pool, PoolConfig, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { SessionConflictError, SessionError, SessionGoneError } from '../session.errors.js';
import { lockLostError } from './lock-fencing.js';
import { StoreAvailability } from './store-availability.js';
import { parseDuration } from '../utils/duration.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';

/** Where the session table lives. Both names are checked against a strict pattern. */
export interface PostgresSessionSchemaOptions {
  /**
   * Schema of the table: lowercase letters, digits and `_`, starting with a letter or `_`, at most
   * 63 characters, not starting with `pg_`. Created when missing (with `createTable`).
   * @default 'public'
   * @example 'auth'
   */
  schema?: string;
  /**
   * Name of the table: lowercase letters, digits and `_`, starting with a letter or `_`, at most
   * 48 characters (its index names add a suffix and must fit PostgreSQL's 63).
   * @default 'sessions'
   * @example 'user_sessions'
   */
  tableName?: string;
}

/**
 * Options of {@link PostgresSessionStore}: exactly one of `pool` and `connectionString`, plus where
 * the table lives, whether to create it, pruning and timeouts.
 */
export interface PostgresSessionStoreOptions extends PostgresSessionSchemaOptions {
  /**
   * A `pg` Pool you own. The store never ends it. Give it bounded timeouts yourself, as the store
   * does for the pools it creates: `connectionTimeoutMillis: 2000` (without it, a request waits
   * for a connection for as long as the network does), `statement_timeout: 2000`, `keepAlive:
   * true`, and attach a `pool.on('error', ...)` listener (idle clients that lose their server emit
   * it, and an unhandled `'error'` ends the process).
   * @example new PostgresSessionStore({ pool: new Pool({ connectionString, connectionTimeoutMillis: 2000 }) })
   */
  pool?: Pool;
  /**
   * A connection string; the store creates its own Pool from it (loading `pg` on demand), with
   * `connectionTimeoutMillis` and `statement_timeout` set from the options below, and ends it in
   * `close()`. Never logged.
   * @example 'postgres://app:secret@db.internal:5432/app'
   */
  connectionString?: string;
  /**
   * Extra settings for the Pool the store creates from `connectionString` (`max`, `ssl`,
   * `application_name`, …); they override the store's defaults. Ignored with `pool`.
   * @default undefined
   * @example { max: 20, ssl: { rejectUnauthorized: true } }
   */
  poolConfig?: Omit<PoolConfig, 'connectionString'>;
  /**
   * Create the schema, the table, its indexes and the `<table>_locks` table when they are missing,
   * once, at start-up (idempotent; instances starting together take turns on an advisory lock).
   * When everything exists nothing is run but a catalog lookup, so a role without DDL rights works
   * too. Set `false` when you migrate by hand with {@link postgresSessionSchema}.
   * @default true
   * @example false
   */
  createTable?: boolean;
  /**
   * How often expired rows are deleted, in milliseconds or as a duration string. Each run is
   * scheduled at a random 50–150 % of this value so that instances do not prune together. `false`
   * disables the timer (call {@link PostgresSessionStore.prune} from a cron job instead). Expired
   * rows are never returned whatever the pruning does.
   * @default '5m'
   * @example false
   */
  pruneInterval?: number | string | false;
  /**
   * Rows deleted per `DELETE` statement while pruning; a run repeats until a batch comes back short.
   * @default 1000
   * @example 5000
   */
  pruneBatchSize?: number;
  /**
   * Upper bound on one statement, in milliseconds or as a duration string, for passed pools too:
   * the client gives up after it, discards the connection and asks the server to cancel the
   * statement (`pg_cancel_backend`; pools the store creates also set `statement_timeout`), so a
   * write reported as failed is not applied later. The operation then rejects, and the library
   * answers 503.
   * @default 2000
   * @example '1500ms'
   */
  queryTimeout?: number | string;
  /**
   * Upper bound on getting a connection, for pools the store creates (`connectionTimeoutMillis`).
   * For a passed pool, set `connectionTimeoutMillis` on it yourself.
   * @default 2000
   * @example '1s'
   */
  connectTimeout?: number | string;
}

const NAME = /^[a-z_][a-z0-9_]*$/;
const MAX_SCHEMA_LENGTH = 63;
const MAX_TABLE_LENGTH = 48;
const DEFAULT_PRUNE_INTERVAL = 5 * 60_000;
const DEFAULT_TIMEOUT = 2000;
const SETUP_TIMEOUT = 30_000;

interface Names {
  readonly schema: string;
  readonly table: string;
  /** `"schema"."table"`, safe to put into SQL. */
  readonly qualified: string;
  readonly userIndex: string;
  readonly expiresIndex: string;
  /** `"schema"."table_locks"`: per-session locks for `concurrency: 'serialize'`. */
  readonly locks: string;
}

function configError(message: string): SessionError {
  return new SessionError('SESSION_CONFIG_INVALID', `PostgresSessionStore: ${message}`);
}

function resolveNames(options: PostgresSessionSchemaOptions): Names {
  const schema = options.schema ?? 'public';
  const table = options.tableName ?? 'sessions';
  if (typeof schema !== 'string' || !NAME.test(schema) || schema.length > MAX_SCHEMA_LENGTH) {
    throw configError(
      `'schema' must be 1-${MAX_SCHEMA_LENGTH} lowercase letters, digits or '_', starting with a letter or '_' (got ${JSON.stringify(schema)}).`,
    );
  }
  if (schema.startsWith('pg_')) {
    throw configError(`'schema' must not start with 'pg_' (reserved by PostgreSQL).`);
  }
  if (typeof table !== 'string' || !NAME.test(table) || table.length > MAX_TABLE_LENGTH) {
    throw configError(
      `'tableName' must be 1-${MAX_TABLE_LENGTH} lowercase letters, digits or '_', starting with a letter or '_' (got ${JSON.stringify(table)}).`,
    );
  }
  // The names match NAME, so quoting cannot be escaped from; quoting keeps keywords usable.
  return {
    schema,
    table,
    qualified: `"${schema}"."${table}"`,
    userIndex: `${table}_user_id_idx`,
    expiresIndex: `${table}_expires_at_idx`,
    locks: `"${schema}"."${table}_locks"`,
  };
}

function schemaStatements(names: Names, includeSchema: boolean): string[] {
  const statements: string[] = [];
  if (includeSchema && names.schema !== 'public') {
    statements.push(`CREATE SCHEMA IF NOT EXISTS "${names.schema}"`);
  }
  statements.push(
    `CREATE TABLE IF NOT EXISTS ${names.qualified} (
  id_hash             text COLLATE "C" PRIMARY KEY,
  user_id             text,
  created_at          timestamptz NOT NULL,
  last_active_at      timestamptz NOT NULL,
  expires_at          timestamptz NOT NULL,
  absolute_expires_at timestamptz NOT NULL,
  data                jsonb NOT NULL DEFAULT '{}'::jsonb,
  version             integer NOT NULL DEFAULT 1
)`,
    `CREATE INDEX IF NOT EXISTS "${names.userIndex}" ON ${names.qualified} (user_id)`,
    `CREATE INDEX IF NOT EXISTS "${names.expiresIndex}" ON ${names.qualified} (expires_at)`,
    `CREATE TABLE IF NOT EXISTS ${names.locks} (
  id_hash    text COLLATE "C" PRIMARY KEY,
  owner      text NOT NULL,
  expires_at timestamptz NOT NULL
)`,
  );
  return statements;
}

/**
 * The SQL that creates the session table and its indexes, for those who migrate by hand (then pass
 * `createTable: false`). Idempotent (`IF NOT EXISTS`). Columns: `id_hash` (the storage key, a hash
 * of the token, never the token), `user_id`, `created_at`, `last_active_at`, `expires_at` (the
 * earlier of idle and absolute expiry), `absolute_expires_at`, `data` (`jsonb`, one key per
 * top-level session key) and `version`; and a small `<table>_locks` table for the per-session
 * lock of `concurrency: 'serialize'` / `@SessionLock()`.
 *
 * @throws {SessionError} `SESSION_CONFIG_INVALID` when a name does not match the allowed pattern.
 * @example
 * import { postgresSessionSchema } from 'nestjs-sessions/postgres';
 * console.log(postgresSessionSchema({ schema: 'auth', tableName: 'sessions' }));
 */
export function postgresSessionSchema(options: PostgresSessionSchemaOptions = {}): string {
  return schemaStatements(resolveNames(options), true).join(';\n\n') + ';\n';
}

/** Milliseconds (a JS clock reading) as a timestamptz, exact to the millisecond. */
const ts = (param: string) => `to_timestamp(${param}::float8 / 1000)`;
/** A timestamptz column as epoch milliseconds. */
const ms = (column: string) => `round(extract(epoch FROM ${column}) * 1000)::float8`;

const COLUMNS = [
  'id_hash',
  'data::text AS data',
  'user_id',
  `${ms('created_at')} AS created_at`,
  `${ms('last_active_at')} AS last_active_at`,
  `${ms('expires_at')} AS expires_at`,
  `${ms('absolute_expires_at')} AS absolute_expires_at`,
  'version',
].join(', ');

/** `jsonb` built from two parallel text arrays; each value is cast on its own, so none can add keys. */
const JSONB_FROM = (keys: string, values: string) =>
  `(SELECT coalesce(jsonb_object_agg(k, v::jsonb), '{}'::jsonb) FROM unnest(${keys}::text[], ${values}::text[]) AS u(k, v))`;

interface Statements {
  load: string;
  create: string;
  update: string;
  touch: string;
  destroy: string;
  list: string;
  destroyForUser: string;
  prune: string;
  pruneLocks: string;
  exists: string;
  acquireLock: string;
  releaseLock: string;
  lockHolder: string;
  renewLock: string;
}

function buildStatements(t: string, locks: string): Statements {
  return {
    // Expired rows are never returned (TO-3) and are deleted on the way, in the same statement.
    load: `WITH expired AS (DELETE FROM ${t} WHERE id_hash = $1 AND expires_at <= ${ts('$2')})
SELECT ${COLUMNS} FROM ${t} WHERE id_hash = $1 AND expires_at > ${ts('$2')}`,
    // A live row with this key makes the INSERT a no-op (rowCount 0); an expired one is replaced.
    create: `INSERT INTO ${t} AS t
  (id_hash, user_id, created_at, last_active_at, expires_at, absolute_expires_at, data, version)
SELECT $1, $2, ${ts('$3')}, ${ts('$4')}, ${ts('$5')}, ${ts('$6')}, ${JSONB_FROM('$7', '$8')}, 1
ON CONFLICT (id_hash) DO UPDATE SET
  user_id = excluded.user_id, created_at = excluded.created_at,
  last_active_at = excluded.last_active_at, expires_at = excluded.expires_at,
  absolute_expires_at = excluded.absolute_expires_at, data = excluded.data, version = t.version + 1
WHERE t.expires_at <= ${ts('$9')}`,
    // One statement: the existence check, the expected values (optimistic concurrency), the move
    // to a new key, the delta and the times. A concurrent destroy or move leaves no row matching
    // $2, so nothing is written (LC-6, LC-7). The expectation is a scalar sub-select, not NOT
    // EXISTS: an anti-join is not re-checked against the newest row version when the UPDATE waited
    // for a concurrent writer (READ COMMITTED EvalPlanQual), a correlated sub-select is. With $14
    // (the writer's lock owner) the write applies only while that owner holds the session's lock:
    // FOR SHARE makes a takeover of the lock wait for this statement, and re-checks the lock row
    // against its newest version if one committed meanwhile.
    update: `WITH held AS (
  SELECT 1 FROM ${locks}
  WHERE id_hash = $2 AND owner = $14::text AND expires_at > ${ts('$11')}
  FOR SHARE
)
UPDATE ${t} AS t SET
  id_hash = $1,
  data = CASE WHEN $3::boolean THEN s.obj ELSE (t.data - $6::text[]) || s.obj END,
  user_id = $7,
  last_active_at = ${ts('$8')},
  expires_at = ${ts('$9')},
  absolute_expires_at = ${ts('$10')},
  version = t.version + 1
FROM ${JSONB_FROM('$4', '$5')} AS s(obj)
WHERE t.id_hash = $2 AND t.expires_at > ${ts('$11')}
  AND (
    SELECT count(*) FROM unnest($12::text[], $13::text[]) AS e(k, v)
    WHERE (t.data -> e.k) IS DISTINCT FROM e.v::jsonb
  ) = 0
  AND ($14::text IS NULL OR EXISTS (SELECT 1 FROM held))`,
    exists: `SELECT 1 FROM ${t} WHERE id_hash = $1 AND expires_at > ${ts('$2')}`,
    touch: `UPDATE ${t} SET last_active_at = ${ts('$2')}, expires_at = least(${ts('$3')}, absolute_expires_at)
WHERE id_hash = $1 AND expires_at > ${ts('$4')}`,
    destroy: `DELETE FROM ${t} WHERE id_hash = $1`,
    list: `SELECT ${COLUMNS} FROM ${t} WHERE user_id = $1 AND expires_at > ${ts('$2')}`,
    destroyForUser: `WITH gone AS (
  DELETE FROM ${t} WHERE user_id = $1 AND id_hash <> ALL($2::text[]) RETURNING expires_at
)
SELECT count(*) FILTER (WHERE expires_at > ${ts('$3')})::int AS live FROM gone`,
    // SKIP LOCKED: instances pruning at the same moment share the work instead of queueing.
    prune: `DELETE FROM ${t} AS t USING (
  SELECT id_hash FROM ${t} WHERE expires_at <= ${ts('$1')} LIMIT $2 FOR UPDATE SKIP LOCKED
) AS batch
WHERE t.id_hash = batch.id_hash AND t.expires_at <= ${ts('$1')}`,
    pruneLocks: `DELETE FROM ${locks} WHERE expires_at <= ${ts('$1')}`,
    // Taken when free, expired, or already held by the same owner (which extends it).
    acquireLock: `INSERT INTO ${locks} AS l (id_hash, owner, expires_at) VALUES ($1, $2, ${ts('$3')})
ON CONFLICT (id_hash) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= ${ts('$4')}`,
    releaseLock: `DELETE FROM ${locks} WHERE id_hash = $1 AND owner = $2`,
    lockHolder: `SELECT owner FROM ${locks} WHERE id_hash = $1 AND expires_at > ${ts('$2')}`,
    renewLock: `UPDATE ${locks} SET expires_at = ${ts('$3')}
WHERE id_hash = $1 AND owner = $2 AND expires_at > ${ts('$4')}`,
  };
}

interface Row {
  id_hash: string;
  data: string;
  user_id: string | null;
  created_at: number | string;
  last_active_at: number | string;
  expires_at: number | string;
  absolute_expires_at: number | string;
  version: number | string;
}

function toRecord(row: Row): SessionRecord {
  // jsonb reorders keys and reformats numbers and spaces; the core compares the text of each value
  // with JSON.stringify of the value to detect changes, so each value is normalised to that form.
  const parsed = JSON.parse(row.data) as Record<string, unknown>;
  const data = Object.fromEntries(
    Object.keys(parsed).map((key) => [key, JSON.stringify(parsed[key])]),
  ) as Record<string, string>;
  return {
    key: row.id_hash,
    data,
    userId: row.user_id,
    createdAt: Number(row.created_at),
    lastActiveAt: Number(row.last_active_at),
    expiresAt: Number(row.expires_at),
    absoluteExpiresAt: Number(row.absolute_expires_at),
    version: Number(row.version),
  };
}

function durationOption(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = parseDuration(value);
  if (parsed === undefined) {
    throw configError(`'${name}' must be a positive number of milliseconds or a string like '2s'.`);
  }
  return parsed;
}

/** Error messages without anything that looks like a URL (a connection string may carry a password). */
function safeMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/[a-z][a-z0-9+.-]*:\/\/\S*/gi, '<url>');
}

type TimedQuery = QueryConfig & { query_timeout?: number };

/**
 * A server error that means the database cannot serve this pool at all: a missing database
 * (3D000) or role / failed login (28000, 28P01), a connection exception (class 08), a shutdown or
 * start-up (57P01..57P03), too many connections (53300).
 */
function isConnectionError(error: unknown): boolean {
  if (!isServerError(error)) return true;
  const code = (error as { code: string }).code;
  return /^(08|3D000|28000|28P01|57P0[123]|53300)/.test(code);
}

/** An error reported by the server (SQLSTATE and severity): the connection itself is fine. */
function isServerError(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { severity?: unknown }).severity === 'string' &&
    typeof (error as { code?: unknown }).code === 'string'
  );
}

const logger = new Logger('PostgresSessionStore');

/** Pause between two probes (`SELECT 1`) while the database is known to be down. */
const PROBE_INTERVAL = 500;

/**
 * Sessions in PostgreSQL through `pg`: one row per session keyed by the token hash, data as `jsonb`
 * with one key per top-level session key. Every operation is one statement: a save applies the
 * request's delta (`(data - $removed) || $set`) guarded by `id_hash = $1 AND expires_at > now`,
 * so a destroyed or expired session is never resurrected and of two concurrent regenerates only
 * one wins. Expired rows are never returned and are pruned on a randomised schedule.
 *
 * "Now" is the application's clock (`Date.now()`, sent as a parameter), not the database's, so
 * expiry here agrees with the expiry the library checks in the application. Keep the clocks of
 * your app servers in sync (NTP), as for any cookie expiry.
 *
 * `jsonb` cannot hold the NUL character or unpaired UTF-16 surrogates in strings; a save with one
 * is refused with a `SessionError` (`SESSION_NOT_SERIALIZABLE`).
 *
 * @example
 * import { PostgresSessionStore } from 'nestjs-sessions/postgres';
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET,
 *   store: new PostgresSessionStore({ connectionString: process.env.DATABASE_URL }),
 * });
 */
export class PostgresSessionStore implements SessionStore {
  /** The schema the table lives in. */
  readonly schema: string;
  /** The table name (without schema). */
  readonly tableName: string;

  private readonly names: Names;
  private readonly sql: Statements;
  private readonly ownsPool: boolean;
  private readonly createTable: boolean;
  private readonly queryTimeout: number;
  private readonly pruneIntervalMs: number | false;
  private readonly pruneBatchSize: number;
  private poolPromise: Promise<Pool> | undefined;
  private ready: Promise<Pool> | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private pruning: Promise<number> | undefined;
  private closed = false;
  private readonly health: StoreAvailability;
  private setupWarned = '';

  /**
   * @throws {SessionError} `SESSION_CONFIG_INVALID` when the options are wrong (neither or both of
   * `pool` and `connectionString`, a bad schema or table name, a bad duration).
   */
  constructor(options: PostgresSessionStoreOptions) {
    const { pool, connectionString } = options ?? {};
    if ((pool === undefined) === (connectionString === undefined)) {
      throw configError(`pass exactly one of 'pool' (a pg Pool) and 'connectionString'.`);
    }
    if (
      connectionString !== undefined &&
      (typeof connectionString !== 'string' || !connectionString)
    ) {
      throw configError(`'connectionString' must be a non-empty string.`);
    }
    if (pool !== undefined && (typeof pool !== 'object' || typeof pool.query !== 'function')) {
      throw configError(`'pool' must be a pg Pool.`);
    }
    this.names = resolveNames(options);
    this.schema = this.names.schema;
    this.tableName = this.names.table;
    this.sql = buildStatements(this.names.qualified, this.names.locks);
    this.createTable = options.createTable ?? true;
    this.queryTimeout = durationOption('queryTimeout', options.queryTimeout, DEFAULT_TIMEOUT);
    const connectTimeout = durationOption(
      'connectTimeout',
      options.connectTimeout,
      DEFAULT_TIMEOUT,
    );
    this.pruneIntervalMs =
      options.pruneInterval === false
        ? false
        : durationOption('pruneInterval', options.pruneInterval, DEFAULT_PRUNE_INTERVAL);
    this.pruneBatchSize = options.pruneBatchSize ?? 1000;
    if (!Number.isInteger(this.pruneBatchSize) || this.pruneBatchSize < 1) {
      throw configError(`'pruneBatchSize' must be a positive whole number.`);
    }

    if (pool) {
      this.ownsPool = false;
      this.poolPromise = Promise.resolve(pool);
    } else {
      this.ownsPool = true;
      this.poolPromise = createPool({
        keepAlive: true,
        connectionTimeoutMillis: connectTimeout,
        statement_timeout: this.queryTimeout,
        ...options.poolConfig,
        connectionString,
      });
      // Reported by the first operation that needs the pool.
      this.poolPromise.catch(() => undefined);
    }

    this.health = new StoreAvailability({
      name: `PostgreSQL (${this.description()})`,
      logger,
      probeInterval: PROBE_INTERVAL,
      describe: safeMessage,
      probe: () => this.run(this.poolPromise as Promise<Pool>, 'SELECT 1', []),
    });
    // Start creating the table now so the first request does not wait; failures are logged once
    // with their cause and retried by the next operation.
    this.prepare().catch(() => undefined);
    this.schedulePrune();
  }

  /**
   * Creates the schema, tables and indexes when missing (a no-op with `createTable: false`). Runs
   * by itself at start-up and before the first operation; exposed for start-up checks and tests.
   * @throws when the database cannot be reached or the role may not create what is missing.
   */
  async ensureTable(): Promise<void> {
    await this.prepare();
  }

  /**
   * The live record (one statement), with each value as the `JSON.stringify` text of its value;
   * `null` when missing or expired by the application's clock (an expired row is deleted on the
   * way, TO-3).
   */
  async load(key: string): Promise<SessionRecord | null> {
    const result = await this.query<Row>(this.sql.load, [key, Date.now()]);
    return result.rows.length > 0 ? toRecord(result.rows[0]) : null;
  }

  /**
   * @throws {SessionGoneError} when a create finds a live row with the key, or an update finds no
   * live row (nothing is written).
   * @throws {SessionConflictError} when an update's `expect` does not match the stored values
   * (compared as `jsonb`, so key order and number format do not matter); nothing is written.
   * @throws {SessionError} `SESSION_NOT_SERIALIZABLE` when a value cannot be stored as `jsonb`.
   */
  async save(write: SessionWrite): Promise<void> {
    const now = Date.now();
    const from = write.previousKey ?? write.key;
    const setKeys = Object.keys(write.set);
    const setValues = setKeys.map((key) => write.set[key]);
    const expectKeys = write.expect ? Object.keys(write.expect) : [];
    const expectValues = expectKeys.map((key) => write.expect![key]);
    let result: QueryResult;
    try {
      if (write.kind === 'create') {
        result = await this.query(this.sql.create, [
          write.key,
          write.userId,
          write.createdAt,
          write.lastActiveAt,
          write.expiresAt,
          write.absoluteExpiresAt,
          setKeys,
          setValues,
          now,
        ]);
      } else {
        result = await this.query(this.sql.update, [
          write.key,
          from,
          write.replace === true,
          setKeys,
          setValues,
          [...write.unset],
          write.userId,
          write.lastActiveAt,
          write.expiresAt,
          write.absoluteExpiresAt,
          now,
          expectKeys,
          expectValues,
          write.lockOwner ?? null,
        ]);
      }
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      // 22P05: \u0000 in a string; 22P02: invalid JSON such as an unpaired surrogate escape.
      if (code === '22P05' || code === '22P02') {
        throw new SessionError(
          'SESSION_NOT_SERIALIZABLE',
          'Session data cannot be stored in PostgreSQL jsonb: strings must not contain the NUL character or unpaired surrogates',
          { cause: error },
        );
      }
      throw error;
    }
    if (result.rowCount === 1) return;
    if (write.kind === 'update' && (expectKeys.length > 0 || write.lockOwner !== undefined)) {
      // Only to tell the refusals apart; the write itself was already refused atomically.
      const live = await this.query(this.sql.exists, [from, now]);
      if (live.rowCount === 1) {
        if (write.lockOwner !== undefined) {
          const lock = await this.query<{ owner: string }>(this.sql.lockHolder, [from, now]);
          const holder = lock.rows[0]?.owner;
          if (holder !== write.lockOwner) throw lockLostError(holder !== undefined);
        }
        throw new SessionConflictError();
      }
    }
    throw new SessionGoneError();
  }

  /**
   * Writes only the activity times (never past the absolute expiry); `false` when the row is gone
   * or expired. One statement.
   */
  async touch(key: string, times: SessionTimes): Promise<boolean> {
    const result = await this.query(this.sql.touch, [
      key,
      times.lastActiveAt,
      times.expiresAt,
      Date.now(),
    ]);
    return result.rowCount === 1;
  }

  /** Deletes the row; a missing row is not an error. One statement. */
  async destroy(key: string): Promise<void> {
    await this.query(this.sql.destroy, [key]);
  }

  /** The user's live sessions, through the `user_id` index. One statement. */
  async listForUser(userId: string): Promise<SessionRecord[]> {
    const result = await this.query<Row>(this.sql.list, [userId, Date.now()]);
    return result.rows.map(toRecord);
  }

  /**
   * Deletes the user's sessions except `exceptKeys` (expired ones too) and resolves how many live
   * ones ended. One statement.
   */
  async destroyForUser(userId: string, exceptKeys: readonly string[] = []): Promise<number> {
    const result = await this.query<{ live: number }>(this.sql.destroyForUser, [
      userId,
      [...exceptKeys],
      Date.now(),
    ]);
    return Number(result.rows[0]?.live ?? 0);
  }

  /**
   * Takes the per-session lock of `concurrency: 'serialize'` / `@SessionLock()` (a row in
   * `<table>_locks`, one statement): `true` when free, expired or already held by `owner` (then
   * extended to `ttlMs` from now), `false` when someone else holds it.
   */
  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const result = await this.query(this.sql.acquireLock, [key, owner, now + ttlMs, now]);
    return result.rowCount === 1;
  }

  /**
   * Extends the lock to `ttlMs` from now if, and only if, `owner` holds it and it has not expired
   * (one statement); `false` otherwise.
   */
  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const result = await this.query(this.sql.renewLock, [key, owner, now + ttlMs, now]);
    return result.rowCount === 1;
  }

  /** Releases the lock if, and only if, `owner` still holds it (one statement). */
  async releaseLock(key: string, owner: string): Promise<void> {
    await this.query(this.sql.releaseLock, [key, owner]);
  }

  /**
   * Deletes every row whose expiry has passed, in batches of `pruneBatchSize` (one statement
   * each), then expired locks, and resolves the number of sessions deleted. Runs on the randomised timer; call it from a cron job
   * when the timer is disabled. Concurrent calls share one run.
   * @example
   * @Cron('*\/10 * * * *') prune() { return this.store.prune(); }
   */
  prune(): Promise<number> {
    this.pruning ??= this.pruneAll().finally(() => {
      this.pruning = undefined;
    });
    return this.pruning;
  }

  /**
   * `SELECT 1` within `queryTimeout`. Never rejects: a failure is `{ ok: false }` with a short,
   * secret-free reason. Usable from a `@nestjs/terminus` health indicator.
   * @example
   * const health = await store.checkHealth();
   * return health.ok ? indicator.up() : indicator.down(health.details);
   */
  async checkHealth(): Promise<SessionStoreHealth> {
    const store = this.description();
    const started = Date.now();
    try {
      await this.query('SELECT 1', [], false);
      return { ok: true, store, details: { latencyMs: Date.now() - started } };
    } catch (error) {
      return { ok: false, store, details: { error: safeMessage(error) } };
    }
  }

  /** Stops the prune timer and, when the store created the pool, ends it. A passed pool stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.health.close();
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    this.pruneTimer = undefined;
    if (!this.ownsPool) return;
    await Promise.allSettled([this.ready, this.pruning]);
    const pool = await this.poolPromise?.catch(() => undefined);
    await pool?.end();
  }

  private async query<R extends QueryResultRow = QueryResultRow>(
    text: string,
    values: unknown[],
    needsTable = true,
  ): Promise<QueryResult<R>> {
    if (this.closed) throw new Error('PostgresSessionStore is closed');
    // While the database is known to be down, refuse at once instead of waiting for a timeout.
    const refusal = this.health.refusal();
    if (refusal) throw refusal;
    try {
      const pool = needsTable ? await this.prepare() : await this.pool();
      return await this.run<R>(pool, text, values);
    } catch (error) {
      if (isConnectionError(error)) this.health.suspect();
      throw error;
    }
  }

  private description(): string {
    return `postgres ${this.schema}.${this.tableName}`;
  }

  /**
   * One statement on a pooled connection, bounded by `queryTimeout`. Unlike `pool.query`, a
   * statement that times out is also cancelled on the server (best effort), so that a write this
   * store reported as failed is not applied later when, say, a row lock is released; and a
   * connection is discarded only when the connection, not the statement, failed.
   */
  private async run<R extends QueryResultRow>(
    poolOrPromise: Pool | Promise<Pool>,
    text: string,
    values: unknown[],
  ): Promise<QueryResult<R>> {
    const pool = await poolOrPromise;
    const client = await pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no listener of its own; without one, losing the connection
    // mid-statement would be an unhandled 'error' event. The statement rejects as well.
    const onError = (error: Error) => {
      broken ??= error;
    };
    client.on('error', onError);
    try {
      return await client.query<R>({
        text,
        values,
        query_timeout: this.queryTimeout,
      } as TimedQuery);
    } catch (error) {
      if (!isServerError(error)) {
        broken ??= error instanceof Error ? error : new Error(String(error));
        const pid = (client as unknown as { processID?: unknown }).processID;
        if (typeof pid === 'number' && /timeout/i.test(broken.message)) this.cancel(pool, pid);
      }
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  private cancel(pool: Pool, pid: number): void {
    pool
      .query({
        text: 'SELECT pg_cancel_backend($1)',
        values: [pid],
        query_timeout: this.queryTimeout,
      } as TimedQuery)
      .catch(() => undefined);
  }

  private pool(): Promise<Pool> {
    return this.poolPromise as Promise<Pool>;
  }

  private prepare(): Promise<Pool> {
    if (!this.ready) {
      const ready = this.pool().then(async (pool) => {
        if (this.createTable) await this.createMissing(pool);
        return pool;
      });
      this.ready = ready;
      // A failed setup (database down at boot) is retried by the next operation. Its cause is
      // logged once: an unreachable server, a missing database or role as an outage; anything
      // else (a role that may not create the table, say) as the setup problem it is.
      ready.catch((error: unknown) => {
        if (this.ready === ready) this.ready = undefined;
        if (this.closed) return;
        if (isConnectionError(error)) {
          this.health.down(error);
        } else if (this.setupWarned !== safeMessage(error)) {
          this.setupWarned = safeMessage(error);
          logger.error(
            `Could not prepare the session table ${this.description()}: ${this.setupWarned}. Session routes answer 503 until it exists; create it with postgresSessionSchema() or grant the role CREATE.`,
          );
        }
      });
    }
    return this.ready;
  }

  private async createMissing(pool: Pool): Promise<void> {
    const { qualified, schema, userIndex, expiresIndex, locks } = this.names;
    const relations = [
      qualified,
      `"${schema}"."${userIndex}"`,
      `"${schema}"."${expiresIndex}"`,
      locks,
    ];
    const exists = await this.run<{ ok: boolean }>(
      pool,
      `SELECT bool_and(to_regclass(name) IS NOT NULL) AS ok FROM unnest($1::text[]) AS r(name)`,
      [relations],
    );
    if (exists.rows[0]?.ok) return;

    const client = await pool.connect();
    let failed = false;
    try {
      const timed = (text: string, values: unknown[] = []) =>
        client.query({ text, values, query_timeout: SETUP_TIMEOUT } as TimedQuery);
      await timed('BEGIN');
      await timed(`SET LOCAL statement_timeout = ${SETUP_TIMEOUT}`);
      // Concurrent CREATE ... IF NOT EXISTS can still collide in the catalogs; take turns.
      await timed('SELECT pg_advisory_xact_lock(hashtext($1))', [`nestjs-sessions:${qualified}`]);
      const hasSchema = await timed('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      for (const statement of schemaStatements(this.names, hasSchema.rowCount === 0)) {
        await timed(statement);
      }
      await timed('COMMIT');
    } catch (error) {
      failed = true;
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release(failed);
    }
  }

  private async pruneAll(): Promise<number> {
    const now = Date.now();
    let total = 0;
    for (;;) {
      const result = await this.query(this.sql.prune, [now, this.pruneBatchSize]);
      const deleted = result.rowCount ?? 0;
      total += deleted;
      if (deleted < this.pruneBatchSize || this.closed) break;
    }
    // Locks left behind by crashed holders; not counted as sessions.
    if (!this.closed) await this.query(this.sql.pruneLocks, [now]);
    return total;
  }

  private schedulePrune(): void {
    if (this.pruneIntervalMs === false || this.closed) return;
    const base = this.pruneIntervalMs;
    const delay = randomInt(Math.max(1, Math.floor(base / 2)), Math.floor(base * 1.5) + 1);
    this.pruneTimer = setTimeout(() => {
      this.prune()
        .catch((error: unknown) => {
          logger.warn(`Pruning expired sessions failed (retried later): ${safeMessage(error)}`);
        })
        .finally(() => this.schedulePrune());
    }, delay);
    this.pruneTimer.unref();
  }
}

async function createPool(config: PoolConfig): Promise<Pool> {
  const pg = await import('pg');
  const PoolClass = pg.Pool ?? (pg as unknown as { default: typeof pg }).default.Pool;
  const pool = new PoolClass(config);
  // An idle client whose server went away emits 'error' on the pool; unhandled, it would end the
  // process. The next query reports the outage to the caller instead.
  pool.on('error', (error) => {
    logger.warn(`Idle PostgreSQL connection lost: ${safeMessage(error)}`);
  });
  return pool;
}
