import type {
  SharedCredentialRecord,
  SharedCredentialStore,
} from '../interfaces/shared-credential-store.interface.js';

/** The part of a node-redis v5 client (`createClient()`) the store uses. */
export interface SharedCredentialNodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
}

/** The part of an ioredis client (`new Redis()` or `new Cluster()`) the store uses. */
export interface SharedCredentialIoRedisClient {
  call(command: string, ...args: Array<string | number>): Promise<unknown>;
}

/** A node-redis v5 client or an ioredis client, connected by you. */
export type SharedCredentialRedisClient =
  SharedCredentialNodeRedisClient | SharedCredentialIoRedisClient;

/** Options of {@link RedisSharedCredentialStore}. */
export interface RedisSharedCredentialStoreOptions {
  /**
   * A connected node-redis v5 client (`createClient()`) or ioredis client (`new Redis()`). The store
   * never connects, quits or closes it. Give it bounded timeouts (the client's own `storeTimeout`
   * bounds each call too).
   * @example await createClient({ url: process.env.REDIS_URL }).connect()
   */
  client: SharedCredentialRedisClient;
  /**
   * Prefix of the keys: `<prefix>{<name>}` holds the record (JSON), `<prefix>{<name>}:lock` the
   * lock (the braces keep both in one Redis Cluster slot).
   * @default 'shared-session:'
   */
  prefix?: string;
}

/** Writes the record only while the lock's value is the caller's owner token: one atomic step. */
const SET_SCRIPT =
  "if redis.call('get', KEYS[2]) == ARGV[2] then redis.call('set', KEYS[1], ARGV[1]) return 1 else return 0 end";

/** Deletes the lock only when its value is the caller's owner token: one atomic step. */
const RELEASE_SCRIPT =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

function isIoRedis(client: SharedCredentialRedisClient): client is SharedCredentialIoRedisClient {
  // ioredis also has a `sendCommand`, taking a Command object: look for `call` first.
  return typeof (client as Partial<SharedCredentialIoRedisClient>).call === 'function';
}

function asText(reply: unknown): string | null {
  if (reply === null || reply === undefined) return null;
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  return String(reply);
}

/**
 * Turns stored JSON back into a record; `null` for anything malformed (the client then logs in and
 * overwrites it).
 */
export function parseCredentialRecord(text: string | null): SharedCredentialRecord | null {
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || typeof value !== 'object') return null;
  const raw = value as Record<string, unknown>;
  const isCount = (n: unknown): n is number =>
    typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (!isCount(raw.generation) || !isCount(raw.updatedAt)) return null;
  if (raw.credential !== null && typeof raw.credential !== 'string') return null;
  return {
    generation: raw.generation,
    credential: raw.credential,
    updatedAt: raw.updatedAt,
    failures: isCount(raw.failures) ? raw.failures : 0,
    ...(isCount(raw.retryAt) ? { retryAt: raw.retryAt } : {}),
  };
}

/**
 * Shared credentials in Redis, for many processes: the record is one JSON string, the login lock is
 * `SET <key>:lock <owner> NX PX <ttl>` (it expires by itself if its holder crashes), the record is
 * written by a Lua script only while the writer holds the lock, and the lock is released by a Lua
 * compare-and-delete, so only its owner can write or release. Works with node-redis v5
 * and ioredis clients (duck-typed; neither library is imported at run time).
 *
 * @example
 * const redis = await createClient({ url: process.env.REDIS_URL }).connect();
 * SharedSessionModule.register({ name: 'crm', baseUrl, login, store: new RedisSharedCredentialStore({ client: redis }) })
 */
export class RedisSharedCredentialStore implements SharedCredentialStore {
  private readonly client: SharedCredentialRedisClient;
  private readonly prefix: string;

  constructor(options: RedisSharedCredentialStoreOptions) {
    const client = options?.client as unknown as Record<string, unknown> | undefined;
    if (
      !client ||
      (typeof client.call !== 'function' && typeof client.sendCommand !== 'function')
    ) {
      throw new TypeError(
        'RedisSharedCredentialStore: client must be a node-redis v5 or ioredis client',
      );
    }
    this.client = options.client;
    this.prefix = options.prefix ?? 'shared-session:';
  }

  async get(name: string): Promise<SharedCredentialRecord | null> {
    return parseCredentialRecord(asText(await this.command(['GET', this.recordKey(name)])));
  }

  async set(name: string, record: SharedCredentialRecord, owner: string): Promise<boolean> {
    const json = JSON.stringify({
      generation: record.generation,
      credential: record.credential,
      updatedAt: record.updatedAt,
      failures: record.failures ?? 0,
      retryAt: record.retryAt,
    });
    const reply = await this.command([
      'EVAL',
      SET_SCRIPT,
      '2',
      this.recordKey(name),
      this.lockKey(name),
      json,
      owner,
    ]);
    return Number(reply) === 1;
  }

  async acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const reply = await this.command([
      'SET',
      this.lockKey(name),
      owner,
      'NX',
      'PX',
      String(Math.max(1, Math.ceil(ttlMs))),
    ]);
    return asText(reply) === 'OK';
  }

  async releaseLock(name: string, owner: string): Promise<boolean> {
    const reply = await this.command(['EVAL', RELEASE_SCRIPT, '1', this.lockKey(name), owner]);
    return Number(reply) === 1;
  }

  // The name in braces is a Redis Cluster hash tag: the record and its lock share a slot, as the
  // script that writes the record while checking the lock needs.
  private recordKey(name: string): string {
    return `${this.prefix}{${name}}`;
  }

  private lockKey(name: string): string {
    return `${this.prefix}{${name}}:lock`;
  }

  private command(args: string[]): Promise<unknown> {
    if (isIoRedis(this.client)) {
      const [command, ...rest] = args;
      return this.client.call(command, ...rest);
    }
    return this.client.sendCommand(args);
  }
}
