import type {
  SharedCredentialRecord,
  SharedCredentialStore,
} from '../interfaces/shared-credential-store.interface.js';

/** The part of a `pg` Pool (or Client) the store uses. */
export interface SharedCredentialPgPool {
  query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
}

/** Options of {@link PostgresSharedCredentialStore}. */
export interface PostgresSharedCredentialStoreOptions {
  /**
   * A `pg` Pool you own; the store never ends it. Give it bounded timeouts
   * (`connectionTimeoutMillis`, `statement_timeout`) and an `'error'` listener.
   * @example new Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 2000 })
   */
  pool: SharedCredentialPgPool;
  /**
   * The table, optionally schema-qualified: lowercase letters, digits and `_` (each part at most
   * 63 characters, starting with a letter or `_`).
   * @default 'shared_session_credentials'
   * @example 'app.upstream_credentials'
   */
  tableName?: string;
  /**
   * Create the table when it is missing (`CREATE TABLE IF NOT EXISTS`, once, on first use). Set
   * `false` when you create it yourself from {@link postgresSharedCredentialSchema}.
   * @default true
   */
  createTable?: boolean;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

function quoteTable(tableName: string): string {
  const parts = tableName.split('.');
  if (parts.length > 2 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new TypeError(
      'PostgresSharedCredentialStore: tableName must be lowercase letters, digits and "_", optionally schema-qualified',
    );
  }
  return parts.map((part) => `"${part}"`).join('.');
}

/**
 * The DDL of the table (for hand-made migrations). One row per upstream: the credential record,
 * plus the login lock as an owner and an expiry (`lock_expires_at`, database clock), so that a
 * crashed holder's lock simply expires.
 * @example await pool.query(postgresSharedCredentialSchema('shared_session_credentials'))
 */
export function postgresSharedCredentialSchema(tableName = 'shared_session_credentials'): string {
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(tableName)} (
  name text PRIMARY KEY,
  generation bigint,
  credential text,
  updated_at bigint,
  failures integer NOT NULL DEFAULT 0,
  retry_at bigint,
  lock_owner text,
  lock_expires_at timestamptz
)`;
}

const toNumber = (value: unknown): number => (value === null ? 0 : Number(value));

/**
 * Shared credentials in PostgreSQL, for many processes. The lock is a pair of columns taken with one
 * conditional upsert (free, or expired by the database clock); the record is written and the lock
 * released by conditional updates that match the owner and (for the write) the lock's expiry, so
 * only a live owner writes, only the owner releases, and a crashed holder's lock expires.
 * The table is created on first use unless `createTable: false`.
 *
 * @example new PostgresSharedCredentialStore({ pool: new Pool({ connectionString: process.env.DATABASE_URL }) })
 */
export class PostgresSharedCredentialStore implements SharedCredentialStore {
  private readonly pool: SharedCredentialPgPool;
  private readonly table: string;
  private readonly tableName: string;
  private readonly createTable: boolean;
  private ready: Promise<void> | null = null;

  constructor(options: PostgresSharedCredentialStoreOptions) {
    if (!options?.pool || typeof options.pool.query !== 'function') {
      throw new TypeError('PostgresSharedCredentialStore: pool must be a pg Pool');
    }
    this.pool = options.pool;
    this.tableName = options.tableName ?? 'shared_session_credentials';
    this.table = quoteTable(this.tableName);
    this.createTable = options.createTable ?? true;
  }

  async get(name: string): Promise<SharedCredentialRecord | null> {
    await this.ensureTable();
    const { rows } = await this.pool.query(
      `SELECT generation, credential, updated_at, failures, retry_at FROM ${this.table}
       WHERE name = $1 AND generation IS NOT NULL`,
      [name],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      generation: toNumber(row.generation),
      credential: typeof row.credential === 'string' ? row.credential : null,
      updatedAt: toNumber(row.updated_at),
      failures: toNumber(row.failures),
      ...(row.retry_at === null ? {} : { retryAt: toNumber(row.retry_at) }),
    };
  }

  async set(name: string, record: SharedCredentialRecord, owner: string): Promise<boolean> {
    await this.ensureTable();
    // The row exists: acquireLock created it. Written only while `owner` holds an unexpired lock.
    const { rowCount } = await this.pool.query(
      `UPDATE ${this.table} SET generation = $2, credential = $3, updated_at = $4,
         failures = $5, retry_at = $6
       WHERE name = $1 AND lock_owner = $7 AND lock_expires_at > clock_timestamp()`,
      [
        name,
        record.generation,
        record.credential,
        record.updatedAt,
        record.failures ?? 0,
        record.retryAt ?? null,
        owner,
      ],
    );
    return rowCount === 1;
  }

  async acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    await this.ensureTable();
    const { rowCount } = await this.pool.query(
      `INSERT INTO ${this.table} AS t (name, lock_owner, lock_expires_at)
       VALUES ($1, $2, clock_timestamp() + $3::double precision * interval '1 millisecond')
       ON CONFLICT (name) DO UPDATE SET lock_owner = EXCLUDED.lock_owner,
         lock_expires_at = EXCLUDED.lock_expires_at
       WHERE t.lock_owner IS NULL OR t.lock_expires_at <= clock_timestamp()`,
      [name, owner, Math.max(1, Math.ceil(ttlMs))],
    );
    return rowCount === 1;
  }

  async releaseLock(name: string, owner: string): Promise<boolean> {
    await this.ensureTable();
    const { rows } = await this.pool.query(
      `WITH held AS (
         SELECT lock_expires_at > clock_timestamp() AS live FROM ${this.table}
         WHERE name = $1 AND lock_owner = $2 FOR UPDATE
       )
       UPDATE ${this.table} AS t SET lock_owner = NULL, lock_expires_at = NULL
       FROM held WHERE t.name = $1 AND t.lock_owner = $2
       RETURNING held.live`,
      [name, owner],
    );
    return rows[0]?.live === true;
  }

  private ensureTable(): Promise<void> {
    if (!this.createTable) return Promise.resolve();
    this.ready ??= this.create().catch((error: unknown) => {
      this.ready = null;
      throw error;
    });
    return this.ready;
  }

  private async create(): Promise<void> {
    // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog ("type … already
    // exists"): processes starting together take turns on a transaction-scoped advisory lock.
    const ddl = postgresSharedCredentialSchema(this.tableName);
    const key = `nestjs-sessions:shared-credentials:${this.tableName}`;
    await this.pool.query(
      `DO $create$ BEGIN PERFORM pg_advisory_xact_lock(hashtext('${key}')); ${ddl}; END $create$`,
    );
  }
}
