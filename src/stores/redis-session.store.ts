import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import {
  SessionConflictError,
  SessionGoneError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';
import { parseDuration } from '../utils/duration.js';

// ---------------------------------------------------------------------------------------------
// Client shapes. The store never imports `redis` or `ioredis` at load time: it recognises a
// client by what it can do (duck typing), and imports `redis` only when asked to make its own
// client from a URL. These structural types accept the real clients of both libraries.
// ---------------------------------------------------------------------------------------------

/** A node-redis v5 client, as returned by `createClient()` from `redis` / `@redis/client`. */
export interface NodeRedisClientLike {
  sendCommand(args: string[]): Promise<unknown>;
  readonly isReady: boolean;
}

/** A node-redis v5 cluster client, as returned by `createCluster()`. */
export interface NodeRedisClusterLike {
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  readonly masters: unknown;
}

/** An ioredis 5 client: `new Redis(...)` or `new Cluster(...)`. */
export interface IoRedisClientLike {
  call(command: string, ...args: string[]): Promise<unknown>;
  readonly isCluster: boolean;
}

/** Any client {@link RedisSessionStore} accepts. */
export type RedisSessionClient = NodeRedisClientLike | NodeRedisClusterLike | IoRedisClientLike;

/** Options of {@link RedisSessionStore}. Give exactly one of `client` and `url`. */
export interface RedisSessionStoreOptions {
  /**
   * A connected client you own: node-redis v5 (`createClient()` / `createCluster()`) or ioredis 5
   * (`new Redis()` / `new Cluster()`). The store never connects, reconnects or closes it. Configure
   * it so that it fails fast when Redis is away instead of queueing commands forever:
   * node-redis `{ disableOfflineQueue: true, socket: { connectTimeout: 1000, reconnectStrategy } }`;
   * ioredis `{ enableOfflineQueue: false, connectTimeout: 1000, commandTimeout: 1000,
   * maxRetriesPerRequest: 1 }`. Whatever you set, each store call still gives up after
   * `commandTimeout`. Attach your own `'error'` listener (node-redis crashes the process without one).
   * @example { client: createClient({ url: process.env.REDIS_URL, disableOfflineQueue: true }) }
   */
  client?: RedisSessionClient;
  /**
   * A `redis://` or `rediss://` URL: the store creates a node-redis client with bounded timeouts and
   * automatic reconnection, connects it, and closes it in `close()`. Needs the `redis` package.
   * The URL (and any password in it) is never logged.
   * @example { url: process.env.REDIS_URL }
   */
  url?: string;
  /**
   * Extra node-redis `createClient()` options, merged over the store's defaults when `url` is used
   * (for TLS, ACL user, database…).
   * @default undefined
   */
  clientOptions?: Record<string, unknown>;
  /**
   * Prefix of every key the store writes. Give each app (or test run) its own. A prefix holding a
   * Redis Cluster hash tag, such as `'{sess}:'`, puts all sessions in one slot: on a Cluster every
   * operation is then one atomic script, at the cost of keeping all sessions on one shard.
   * @default 'sess:'
   */
  prefix?: string;
  /**
   * Longest wait for Redis per store call, in milliseconds or as a duration string. A call that
   * gets no answer in time rejects, and the library answers 503 instead of hanging (FAIL-3).
   * @default 1000
   */
  commandTimeout?: number | string;
  /**
   * Connect timeout of the client the store creates from `url` (ignored with `client`).
   * @default 1000
   */
  connectTimeout?: number | string;
  /**
   * Longest pause between reconnection attempts of the client made from `url`; attempts start at
   * 50 ms and double up to this (ignored with `client`).
   * @default 2000
   */
  maxReconnectDelay?: number | string;
}

/**
 * How a store's keys map to Redis Cluster slots, which decides how many steps an operation takes.
 *
 * - `'single-node'`: a standalone Redis (or Sentinel-managed primary). Every operation is one Lua
 *   script, atomic, one round trip.
 * - `'single-slot'`: a Cluster with a hash tag in `prefix`; all keys share a slot, so every
 *   operation is one script, exactly as on a single node.
 * - `'per-session-slot'`: a Cluster without a hash tag in `prefix`: each session key lives in its
 *   own slot and each user index in another; see {@link RedisSessionStore} for what that changes.
 */
export type RedisSessionTopology = 'single-node' | 'single-slot' | 'per-session-slot';

// ---------------------------------------------------------------------------------------------
// Storage layout
// ---------------------------------------------------------------------------------------------

/** Data fields are `d:<top-level key>`, so no session key can clash with a metadata field. */
const DATA = 'd:';
const F_CREATED = 'createdAt';
const F_ACTIVE = 'lastActiveAt';
const F_EXPIRES = 'expiresAt';
const F_ABSOLUTE = 'absoluteExpiresAt';
const F_VERSION = 'version';
const F_USER = 'userId';
const F_USER_HASH = 'userHash';

/** Storage keys are hashes from the core (base64url); anything else never reaches Redis. */
const STORAGE_KEY = /^[A-Za-z0-9_-]{1,128}$/;

const DEFAULT_PREFIX = 'sess:';
const DEFAULT_COMMAND_TIMEOUT = 1000;
const DEFAULT_CONNECT_TIMEOUT = 1000;
const DEFAULT_MAX_RECONNECT_DELAY = 2000;

// Lua shared by the scripts. `live` reads only the expiry field: a hash without it (a partial
// write by something else) counts as absent. Batches keep `unpack` under Lua's stack limit.
const LUA_HELPERS = `
local function live(key, now)
  local e = redis.call('HGET', key, '${F_EXPIRES}')
  return e ~= false and tonumber(e) ~= nil and tonumber(e) > now
end
local function batched(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end
local function expected(key, first, count)
  for i = first, first + count * 3 - 1, 3 do
    local cur = redis.call('HGET', key, ARGV[i])
    if ARGV[i + 1] == '0' then
      if cur then return false end
    elseif cur ~= ARGV[i + 2] then
      return false
    end
  end
  return true
end
local function extend(idx, at, now)
  local pttl = redis.call('PTTL', idx)
  if pttl == -1 or (pttl >= 0 and now + pttl < tonumber(at)) then
    redis.call('PEXPIREAT', idx, at)
  end
end
`;

/**
 * SAVE: the whole delta write of one request.
 * KEYS: target session, source session (= target unless regenerating), new user index (optional).
 * ARGV: now, kind, replace, indexMode, indexPrefix, targetMember, sourceMember, createdAt,
 *   lastActiveAt, expiresAt, absoluteExpiresAt, userId, userHash ('' = no user), baseVersion,
 *   #unset, #expect, unset fields…, expect (field, present, value) triples…, set field/value pairs…
 * Returns {1, previous user hash}; {0} when the record is missing (or, for a create, present);
 * {2} when an expected value changed. Nothing is written unless it returns 1.
 */
const SAVE_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local target, source = KEYS[1], KEYS[2]
local indexed = ARGV[4] == '1'
if ARGV[2] == 'create' then
  if live(target, now) then return {0} end
else
  if not live(source, now) then return {0} end
  if source ~= target and live(target, now) then return {0} end
  if not expected(source, 17 + tonumber(ARGV[15]), tonumber(ARGV[16])) then return {2} end
end
local oldHash = redis.call('HGET', source, '${F_USER_HASH}')
if ARGV[2] == 'create' then
  redis.call('DEL', target)
  redis.call('HSET', target, '${F_CREATED}', ARGV[8], '${F_VERSION}', ARGV[14])
elseif source ~= target then
  redis.call('RENAME', source, target)
end
if ARGV[3] == '1' then
  local drop = {}
  for _, f in ipairs(redis.call('HKEYS', target)) do
    if string.sub(f, 1, 2) == '${DATA}' then drop[#drop + 1] = f end
  end
  batched('HDEL', target, drop)
end
local nUnset = tonumber(ARGV[15])
local unset = {}
for i = 1, nUnset do unset[i] = ARGV[16 + i] end
batched('HDEL', target, unset)
local set = {}
for i = 17 + nUnset + tonumber(ARGV[16]) * 3, #ARGV do set[#set + 1] = ARGV[i] end
batched('HSET', target, set)
redis.call('HSET', target, '${F_ACTIVE}', ARGV[9], '${F_EXPIRES}', ARGV[10], '${F_ABSOLUTE}', ARGV[11])
redis.call('HINCRBY', target, '${F_VERSION}', 1)
local newHash = ARGV[13]
if newHash == '' then
  redis.call('HDEL', target, '${F_USER}', '${F_USER_HASH}')
else
  redis.call('HSET', target, '${F_USER}', ARGV[12], '${F_USER_HASH}', newHash)
end
if indexed then
  if oldHash and (oldHash ~= newHash or source ~= target) then
    redis.call('SREM', ARGV[5] .. oldHash, ARGV[7])
  end
  if newHash ~= '' then
    redis.call('SADD', KEYS[3], ARGV[6])
    extend(KEYS[3], ARGV[11], now)
  end
end
redis.call('PEXPIREAT', target, ARGV[10])
return {1, oldHash}
`;

/**
 * TOUCH: new activity times, never past the absolute expiry; never recreates a missing record.
 * KEYS: session. ARGV: now, lastActiveAt, expiresAt. Returns 1, or 0 when the record is gone.
 */
const TOUCH_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
if not live(KEYS[1], now) then return 0 end
local expires = ARGV[3]
local absolute = redis.call('HGET', KEYS[1], '${F_ABSOLUTE}')
if absolute and tonumber(absolute) < tonumber(expires) then expires = absolute end
redis.call('HSET', KEYS[1], '${F_ACTIVE}', ARGV[2], '${F_EXPIRES}', expires)
redis.call('PEXPIREAT', KEYS[1], expires)
return 1
`;

/**
 * DESTROY: deletes a session (and, when indexed, its user-index entry).
 * KEYS: session. ARGV: indexMode, indexPrefix, member. Returns the user hash it had, or nil.
 */
const DESTROY_SCRIPT = `
local h = redis.call('HGET', KEYS[1], '${F_USER_HASH}')
redis.call('DEL', KEYS[1])
if h and ARGV[1] == '1' then redis.call('SREM', ARGV[2] .. h, ARGV[3]) end
return h
`;

/**
 * LIST: a user's live sessions, pruning stale index members (gone, expired, or now another
 * user's). KEYS: user index. ARGV: now, session key prefix, userId.
 * Returns {member, {field, value, …}, …}.
 */
const LIST_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[2] .. m
  if live(k, now) and redis.call('HGET', k, '${F_USER}') == ARGV[3] then
    out[#out + 1] = m
    out[#out + 1] = redis.call('HGETALL', k)
  else
    redis.call('SREM', KEYS[1], m)
  end
end
return out
`;

/**
 * DESTROY_USER: deletes every session of a user except some, and empties their index entries.
 * KEYS: user index. ARGV: now, session key prefix, userId, kept members…
 * Returns how many live sessions were deleted.
 */
const DESTROY_USER_SCRIPT = `${LUA_HELPERS}
local now = tonumber(ARGV[1])
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local count = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[m] then
    local k = ARGV[2] .. m
    if redis.call('HGET', k, '${F_USER}') == ARGV[3] then
      if live(k, now) then count = count + 1 end
      redis.call('DEL', k)
    end
    redis.call('SREM', KEYS[1], m)
  end
end
return count
`;

// Per-session-slot (Cluster) helpers: each touches exactly one key.

/**
 * CLAIM: takes a live session away from its key (first step of a cross-slot regenerate).
 * ARGV: now, #expect, expect triples… Returns {1, fields}, {0} when gone, {2} on a conflict.
 */
const CLAIM_SCRIPT = `${LUA_HELPERS}
if not live(KEYS[1], tonumber(ARGV[1])) then return {0} end
if not expected(KEYS[1], 3, tonumber(ARGV[2])) then return {2} end
local h = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return {1, h}
`;

/** LOCK: takes (or renews) a session lock. ARGV: owner, ttl ms. Returns 1 when owner holds it. */
const LOCK_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** UNLOCK: releases a lock only if its owner still holds it. ARGV: owner. */
const UNLOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** INDEX_ADD: adds a member to a user index that lives at least until `at`. ARGV: member, at, now. */
const INDEX_ADD_SCRIPT = `${LUA_HELPERS}
redis.call('SADD', KEYS[1], ARGV[1])
extend(KEYS[1], ARGV[2], tonumber(ARGV[3]))
return 1
`;

/**
 * DESTROY_IF_USER: deletes a session when it belongs to the user. ARGV: now, userId.
 * Returns 1 when a live session was deleted, 0 otherwise.
 */
const DESTROY_IF_USER_SCRIPT = `${LUA_HELPERS}
if redis.call('HGET', KEYS[1], '${F_USER}') ~= ARGV[2] then return 0 end
local wasLive = live(KEYS[1], tonumber(ARGV[1]))
redis.call('DEL', KEYS[1])
if wasLive then return 1 end
return 0
`;

interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

const SCRIPTS = {
  save: script(SAVE_SCRIPT),
  touch: script(TOUCH_SCRIPT),
  destroy: script(DESTROY_SCRIPT),
  list: script(LIST_SCRIPT),
  destroyUser: script(DESTROY_USER_SCRIPT),
  claim: script(CLAIM_SCRIPT),
  indexAdd: script(INDEX_ADD_SCRIPT),
  destroyIfUser: script(DESTROY_IF_USER_SCRIPT),
  lock: script(LOCK_SCRIPT),
  unlock: script(UNLOCK_SCRIPT),
} as const;

// ---------------------------------------------------------------------------------------------
// Drivers: one `send` per client kind, routed by key on a Cluster.
// ---------------------------------------------------------------------------------------------

type ClientKind = 'node-redis' | 'node-redis-cluster' | 'ioredis' | 'ioredis-cluster';

interface Driver {
  readonly kind: ClientKind;
  /** Sends one command; `key` routes it on a Cluster (undefined: any node). */
  send(key: string | undefined, args: string[]): Promise<unknown>;
}

function driverFor(client: unknown): Driver {
  const c = client as Record<string, unknown> | null;
  if (c && typeof c.call === 'function' && typeof c.isCluster === 'boolean') {
    const io = client as IoRedisClientLike;
    return {
      kind: io.isCluster ? 'ioredis-cluster' : 'ioredis',
      send: (_key, [command, ...args]) => io.call(command, ...args),
    };
  }
  if (c && typeof c.sendCommand === 'function') {
    if ('masters' in c && typeof c.getRandomNode === 'function') {
      const cluster = client as NodeRedisClusterLike;
      return {
        kind: 'node-redis-cluster',
        send: (key, args) => cluster.sendCommand(key, false, args),
      };
    }
    const single = client as NodeRedisClientLike;
    return { kind: 'node-redis', send: (_key, args) => single.sendCommand(args) };
  }
  throw new TypeError(
    'RedisSessionStore: `client` must be a node-redis v5 client or cluster (createClient / ' +
      'createCluster from "redis") or an ioredis 5 client or Cluster',
  );
}

/** True when every key starting with `prefix` carries the same Cluster hash tag. */
function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open < 0) return false;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1;
}

/** Error messages from clients can carry a URL; never let credentials reach a log or a report. */
function redact(message: string): string {
  return message.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]*@/gi, '$1***@');
}

function duration(name: string, value: number | string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new TypeError(
      `RedisSessionStore: ${name} must be a positive duration such as 1000 or '1s'`,
    );
  }
  return ms;
}

/** A hash reply as field/value pairs, whatever shape the client returned it in. */
function pairsOf(reply: unknown): [string, string][] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) {
    const pairs: [string, string][] = [];
    for (let i = 0; i + 1 < reply.length; i += 2)
      pairs.push([String(reply[i]), String(reply[i + 1])]);
    return pairs;
  }
  if (reply instanceof Map) return [...reply].map(([k, v]) => [String(k), String(v)]);
  if (typeof reply === 'object') {
    return Object.keys(reply).map((k) => [k, String((reply as Record<string, unknown>)[k])]);
  }
  return [];
}

/** A stored hash as a record, or `null` when it is absent, partial or expired (TO-3). */
function toRecord(key: string, reply: unknown, now: number): SessionRecord | null {
  const pairs = pairsOf(reply);
  if (pairs.length === 0) return null;
  const meta = new Map<string, string>();
  const data: [string, string][] = [];
  for (const [field, value] of pairs) {
    if (field.startsWith(DATA)) data.push([field.slice(DATA.length), value]);
    else meta.set(field, value);
  }
  const expiresAt = Number(meta.get(F_EXPIRES));
  const createdAt = Number(meta.get(F_CREATED));
  const lastActiveAt = Number(meta.get(F_ACTIVE));
  const absoluteExpiresAt = Number(meta.get(F_ABSOLUTE));
  if (
    !meta.has(F_EXPIRES) ||
    !Number.isFinite(expiresAt) ||
    !Number.isFinite(createdAt) ||
    !Number.isFinite(lastActiveAt) ||
    !Number.isFinite(absoluteExpiresAt) ||
    expiresAt <= now
  ) {
    return null;
  }
  return {
    key,
    // fromEntries defines own properties: a `__proto__` session key stays plain data (IN-2).
    data: Object.fromEntries(data),
    userId: meta.get(F_USER) ?? null,
    createdAt,
    lastActiveAt,
    expiresAt,
    absoluteExpiresAt,
    version: Number(meta.get(F_VERSION) ?? 0) || 0,
  };
}

/** Appends `expect` as (field, present, value) triples; returns how many. */
function pushExpect(args: string[], expect: SessionWrite['expect']): number {
  if (!expect) return 0;
  const fields = Object.keys(expect);
  for (const field of fields) {
    const value = expect[field];
    args.push(DATA + field, value === null ? '0' : '1', value ?? '');
  }
  return fields.length;
}

/** Turns a script status into the contract's errors. */
function check(status: unknown): void {
  const code = Number(status);
  if (code === 1) return;
  if (code === 2) throw new SessionConflictError();
  throw new SessionGoneError();
}

function userHashOf(userId: string): string {
  return createHash('sha256').update(userId, 'utf8').digest('base64url');
}

/**
 * Sessions in Redis, shared by every instance of the app: one hash per session, written by Lua
 * scripts so that every operation is atomic and one round trip. Works with node-redis v5 and
 * ioredis 5, standalone or Cluster. Import it from `nestjs-sessions/redis`.
 *
 * **Layout.** A session is the hash `<prefix><storage key>` (the storage key is the core's
 * SHA-256 of the token, never the token): metadata fields `createdAt`, `lastActiveAt`,
 * `expiresAt`, `absoluteExpiresAt`, `version`, `userId`, `userHash`, and one field `d:<key>` per
 * top-level session key holding its JSON. Its TTL is set on every write to `expiresAt` (the earlier
 * of idle and absolute expiry); reads also compare `expiresAt` with the clock, so a record that
 * outlived its TTL (a hash written without one, a clock skew) is never returned (TO-3). A user's
 * sessions are the set `<prefix>user:<SHA-256 of the user id>`; its TTL covers the longest
 * absolute expiry of its members, and members that died are pruned when the set is read.
 *
 * **Atomicity (ST-6).** `save` is one `EVALSHA` (falling back to `EVAL` on `NOSCRIPT`) that checks
 * the record (a create must not find a live one; an update must, else `SessionGoneError` and
 * nothing is written: LC-6), renames it on regenerate (of two concurrent moves only the first
 * finds the source: LC-7), drops removed and replaced fields, writes the changed ones and the
 * metadata, sets the TTL and moves the user-index entries. `load` is one `HGETALL`; `touch`,
 * `destroy`, `listForUser` and `destroyForUser` are one script each.
 *
 * **Cluster.** A script may only touch keys of one slot, and one session's key cannot share a slot
 * with every user index it might join, so on a Cluster the store works in one of two ways
 * ({@link RedisSessionStore.topology}):
 * - with a hash tag in `prefix` (e.g. `'{sess}:'`) all keys share one slot and everything above
 *   holds unchanged (all sessions then live on one shard; fine for most apps, as a session is a
 *   few hundred bytes and a shard serves ~100k ops/s);
 * - without one, each session key is its own slot and the user index is maintained per key:
 *   the index entry is added *before* the session write (so "log out everywhere" never misses a
 *   session; an entry whose write failed is pruned on read) and removed after; a save of a session
 *   with a user takes two round trips; a regenerate takes the record from its old key with one
 *   script (so LC-7 still holds: one winner; `expect` is checked there too) and writes it under the
 *   new key with a second — if the process dies between the two, the session is lost (the user is
 *   logged out: fail-safe, never a resurrection). `listForUser` and `destroyForUser` read the index
 *   and then each session (in parallel), and "log out everywhere" racing a new login may leave that
 *   login alive. Delta writes, LC-6, optimistic checks, locks and TO-3 hold as on a single node.
 *
 * **Failures.** Every call is bounded by `commandTimeout`; an unreachable Redis makes calls reject
 * (the library answers 503 and sends no cookie: FAIL-1..3). A client made from `url` reconnects by
 * itself (50 ms doubling to `maxReconnectDelay`) and rejects commands at once while disconnected
 * instead of queueing them. Configure Redis with `maxmemory-policy` `volatile-*` or `noeviction`:
 * an evicted session only logs its user out (FAIL-6).
 *
 * @example
 * // app.module.ts
 * import { RedisSessionStore } from 'nestjs-sessions/redis';
 * SessionModule.forRootAsync({
 *   useFactory: () => ({
 *     secret: process.env.SESSION_SECRET,
 *     store: new RedisSessionStore({ url: process.env.REDIS_URL, prefix: 'myapp:sess:' }),
 *   }),
 * });
 *
 * @example
 * // with a client you already have (you close it yourself)
 * const client = createClient({ url, disableOfflineQueue: true });
 * client.on('error', (err) => logger.warn(err.message));
 * await client.connect();
 * const store = new RedisSessionStore({ client });
 */
export class RedisSessionStore implements SessionStore {
  /**
   * How operations map to Cluster slots; see {@link RedisSessionTopology}. A store made from `url`
   * is always `'single-node'`; with a `client` it follows the client kind and the `prefix`.
   */
  get topology(): RedisSessionTopology {
    return this.topologyFor(this.driver?.kind ?? 'node-redis');
  }

  /** The key prefix in use. */
  readonly prefix: string;
  /** The per-call timeout in milliseconds. */
  readonly commandTimeout: number;

  private driver: Driver | undefined;
  private readonly ready: Promise<Driver> | undefined;
  private ownedClient: { close(): Promise<unknown>; destroy(): void; isReady: boolean } | undefined;
  private closed = false;
  private readonly description: string;
  private readonly logger = new Logger('RedisSessionStore');

  /**
   * @throws TypeError when neither or both of `client` and `url` are given, when the client is of
   *   an unknown kind, or when an option is malformed.
   */
  constructor(options: RedisSessionStoreOptions) {
    if (!options || (options.client === undefined) === (options.url === undefined)) {
      throw new TypeError('RedisSessionStore: pass exactly one of `client` or `url`');
    }
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    // eslint-disable-next-line no-control-regex
    if (typeof prefix !== 'string' || prefix.length > 256 || /[\s\u0000-\u001f]/.test(prefix)) {
      throw new TypeError(
        'RedisSessionStore: prefix must be a string of at most 256 visible characters',
      );
    }
    this.prefix = prefix;
    this.commandTimeout = duration(
      'commandTimeout',
      options.commandTimeout,
      DEFAULT_COMMAND_TIMEOUT,
    );
    if (options.client !== undefined) {
      this.driver = driverFor(options.client);
      this.description = `redis (${this.driver.kind})`;
    } else {
      const url = options.url;
      if (typeof url !== 'string' || !/^rediss?:\/\//i.test(url)) {
        throw new TypeError('RedisSessionStore: url must start with redis:// or rediss://');
      }
      this.description = describeUrl(url);
      const connectTimeout = duration(
        'connectTimeout',
        options.connectTimeout,
        DEFAULT_CONNECT_TIMEOUT,
      );
      const maxDelay = duration(
        'maxReconnectDelay',
        options.maxReconnectDelay,
        DEFAULT_MAX_RECONNECT_DELAY,
      );
      this.ready = this.connectOwned(url, connectTimeout, maxDelay, options.clientOptions ?? {});
      // Failures surface through the calls that await it; never as an unhandled rejection.
      this.ready.catch(() => undefined);
    }
  }

  /**
   * One `HGETALL`. Resolves `null` for a missing, partial or expired record (TO-3), and for a key
   * that is not a storage hash (which never reaches Redis).
   * @throws SessionStoreUnavailableError when Redis fails or does not answer in time
   */
  async load(key: string): Promise<SessionRecord | null> {
    if (!STORAGE_KEY.test(key)) return null;
    return this.call(async (d) => {
      const redisKey = this.sessionKey(key);
      return toRecord(key, await d.send(redisKey, ['HGETALL', redisKey]), Date.now());
    });
  }

  /**
   * Applies one request's delta with one script (see the class notes for Cluster without a hash
   * tag).
   * @throws SessionGoneError when a create finds a live record, or an update (or regenerate) finds
   *   none; nothing is written (LC-6, LC-7)
   * @throws SessionConflictError when a value listed in `write.expect` changed; nothing is written
   * @throws SessionStoreUnavailableError when Redis fails or does not answer in time
   * @throws TypeError when a key is not a storage hash
   */
  async save(write: SessionWrite): Promise<void> {
    const from = write.previousKey ?? write.key;
    if (!STORAGE_KEY.test(write.key) || !STORAGE_KEY.test(from)) {
      throw new TypeError('RedisSessionStore: storage keys must be base64url hashes');
    }
    await this.call(async (d) => {
      if (this.topologyFor(d.kind) === 'per-session-slot') return this.saveAcrossSlots(d, write);
      const userHash = write.userId === null ? '' : userHashOf(write.userId);
      const keys = [this.sessionKey(write.key), this.sessionKey(from)];
      if (userHash) keys.push(this.indexKey(userHash));
      const [status] = (await this.eval(
        d,
        SCRIPTS.save,
        keys,
        this.saveArgs(write, '1', userHash),
      )) as [number];
      check(status);
    });
  }

  /**
   * Writes only `lastActiveAt` and `expiresAt` (never past the absolute expiry) and moves the TTL,
   * in one script. Resolves `false`, creating nothing, when the record is gone.
   */
  async touch(key: string, times: SessionTimes): Promise<boolean> {
    if (!STORAGE_KEY.test(key)) return false;
    return this.call(async (d) => {
      const reply = await this.eval(
        d,
        SCRIPTS.touch,
        [this.sessionKey(key)],
        [String(Date.now()), String(times.lastActiveAt), String(times.expiresAt)],
      );
      return Number(reply) === 1;
    });
  }

  /** Deletes the record and its user-index entry in one script. A missing record is not an error. */
  async destroy(key: string): Promise<void> {
    if (!STORAGE_KEY.test(key)) return;
    await this.call(async (d) => {
      const perKey = this.topologyFor(d.kind) === 'per-session-slot';
      const hash = await this.eval(
        d,
        SCRIPTS.destroy,
        [this.sessionKey(key)],
        [perKey ? '0' : '1', this.indexPrefix(), key],
      );
      if (perKey && typeof hash === 'string' && hash) {
        await d.send(this.indexKey(hash), ['SREM', this.indexKey(hash), key]);
      }
    });
  }

  /**
   * The user's live sessions, in one script that also prunes index entries of sessions that are
   * gone, expired or now someone else's (REV-2).
   */
  async listForUser(userId: string): Promise<SessionRecord[]> {
    const index = this.indexKey(userHashOf(userId));
    return this.call(async (d) => {
      const now = Date.now();
      if (this.topologyFor(d.kind) !== 'per-session-slot') {
        const reply = (await this.eval(
          d,
          SCRIPTS.list,
          [index],
          [String(now), this.prefix, userId],
        )) as unknown[];
        const records: SessionRecord[] = [];
        for (let i = 0; i + 1 < reply.length; i += 2) {
          const record = toRecord(String(reply[i]), reply[i + 1], now);
          if (record) records.push(record);
        }
        return records;
      }
      const members = await this.members(d, index);
      const found = await Promise.all(
        members.map(async (m) => {
          const key = this.sessionKey(m);
          return toRecord(m, await d.send(key, ['HGETALL', key]), now);
        }),
      );
      const records: SessionRecord[] = [];
      const stale: string[] = [];
      found.forEach((record, i) => {
        if (record && record.userId === userId) records.push(record);
        else stale.push(members[i]);
      });
      if (stale.length > 0) await d.send(index, ['SREM', index, ...stale]);
      return records;
    });
  }

  /**
   * Deletes every session of the user except `exceptKeys`, in one script; resolves how many live
   * sessions ended ("log out everywhere", REV-1).
   */
  async destroyForUser(userId: string, exceptKeys: readonly string[] = []): Promise<number> {
    const index = this.indexKey(userHashOf(userId));
    return this.call(async (d) => {
      const now = String(Date.now());
      if (this.topologyFor(d.kind) !== 'per-session-slot') {
        const reply = await this.eval(
          d,
          SCRIPTS.destroyUser,
          [index],
          [now, this.prefix, userId, ...exceptKeys],
        );
        return Number(reply);
      }
      const members = (await this.members(d, index)).filter((m) => !exceptKeys.includes(m));
      const deleted = await Promise.all(
        members.map((m) =>
          this.eval(d, SCRIPTS.destroyIfUser, [this.sessionKey(m)], [now, userId]),
        ),
      );
      if (members.length > 0) await d.send(index, ['SREM', index, ...members]);
      return deleted.reduce<number>((sum, n) => sum + Number(n), 0);
    });
  }

  /**
   * Takes (or renews) the per-session lock used by `concurrency: 'serialize'` and
   * `@SessionLock()`: one script on `<prefix>lock:<key>` (a key that is not a storage hash is
   * hashed first), which expires after `ttlMs`. Resolves `false` while another owner holds it.
   */
  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.call(async (d) => {
      const reply = await this.eval(
        d,
        SCRIPTS.lock,
        [this.lockKey(key)],
        [owner, String(Math.max(1, Math.ceil(ttlMs)))],
      );
      return Number(reply) === 1;
    });
  }

  /** Releases the lock if, and only if, `owner` still holds it (one atomic script). */
  async releaseLock(key: string, owner: string): Promise<void> {
    await this.call((d) => this.eval(d, SCRIPTS.unlock, [this.lockKey(key)], [owner]));
  }

  /**
   * Sends `PING` and reports whether Redis answered within `commandTimeout`. Resolves (never
   * rejects) with a secret-free report; use it from a `@nestjs/terminus` health indicator.
   * @example
   * const health = await store.checkHealth(); // { ok: true, store: 'redis 127.0.0.1:6379', details: { latencyMs: 1 } }
   */
  async checkHealth(): Promise<SessionStoreHealth> {
    const started = Date.now();
    try {
      await this.call((d) => d.send(undefined, ['PING']));
      return { ok: true, store: this.description, details: { latencyMs: Date.now() - started } };
    } catch (error) {
      const cause = error instanceof SessionStoreUnavailableError ? error.cause : error;
      return {
        ok: false,
        store: this.description,
        details: { error: redact(cause instanceof Error ? cause.message : String(cause)) },
      };
    }
  }

  /** Closes the client the store created from `url`. A client passed in is left alone. */
  async close(): Promise<void> {
    this.closed = true;
    const client = this.ownedClient;
    this.ownedClient = undefined;
    if (!client) return;
    if (client.isReady) {
      await client.close().catch(() => client.destroy());
    } else {
      client.destroy();
    }
  }

  // --- internals ----------------------------------------------------------------------------

  private topologyFor(kind: ClientKind): RedisSessionTopology {
    if (kind === 'node-redis' || kind === 'ioredis') return 'single-node';
    return hasHashTag(this.prefix) ? 'single-slot' : 'per-session-slot';
  }

  private sessionKey(storageKey: string): string {
    return this.prefix + storageKey;
  }

  /** Lock keys are storage keys; anything else is hashed first, so no raw text reaches a key. */
  private lockKey(key: string): string {
    const safe = STORAGE_KEY.test(key) ? key : createHash('sha256').update(key).digest('base64url');
    return `${this.prefix}lock:${safe}`;
  }

  private indexPrefix(): string {
    return `${this.prefix}user:`;
  }

  private indexKey(userHash: string): string {
    return this.indexPrefix() + userHash;
  }

  private saveArgs(
    write: SessionWrite,
    indexMode: '0' | '1',
    userHash: string,
    baseVersion = 0,
  ): string[] {
    const args = [
      String(Date.now()),
      write.kind,
      write.replace ? '1' : '0',
      indexMode,
      this.indexPrefix(),
      write.key,
      write.previousKey ?? write.key,
      String(write.createdAt),
      String(write.lastActiveAt),
      String(write.expiresAt),
      String(write.absoluteExpiresAt),
      write.userId ?? '',
      userHash,
      String(baseVersion),
      String(write.unset.length),
      '0',
    ];
    for (const field of write.unset) args.push(DATA + field);
    if (write.kind === 'update') args[15] = String(pushExpect(args, write.expect));
    for (const field of Object.keys(write.set)) args.push(DATA + field, write.set[field]);
    return args;
  }

  /** A save on a Cluster whose session and index keys live in different slots. */
  private async saveAcrossSlots(d: Driver, write: SessionWrite): Promise<void> {
    const userHash = write.userId === null ? '' : userHashOf(write.userId);
    const from = write.previousKey ?? write.key;
    const target = this.sessionKey(write.key);
    if (userHash) {
      // Index first: a session must never exist unlisted ("log out everywhere" would miss it).
      const index = this.indexKey(userHash);
      await this.eval(
        d,
        SCRIPTS.indexAdd,
        [index],
        [write.key, String(write.absoluteExpiresAt), String(Date.now())],
      );
    }
    let oldHash: string | null;
    if (from === write.key) {
      const reply = (await this.eval(
        d,
        SCRIPTS.save,
        [target, target],
        this.saveArgs(write, '0', userHash),
      )) as [number, string | null];
      check(reply[0]);
      oldHash = reply[1] ?? null;
    } else {
      // Regenerate across slots: take the record (one winner, LC-7), then write it at the new key.
      const claimArgs = [String(Date.now()), '0'];
      claimArgs[1] = String(pushExpect(claimArgs, write.expect));
      const [status, claimed] = (await this.eval(
        d,
        SCRIPTS.claim,
        [this.sessionKey(from)],
        claimArgs,
      )) as [number, unknown];
      check(status);
      const snapshot = new Map(pairsOf(claimed));
      if (!snapshot.has(F_EXPIRES)) throw new SessionGoneError();
      oldHash = snapshot.get(F_USER_HASH) ?? null;
      const set: Record<string, string> = {};
      const unset = new Set(write.unset);
      if (!write.replace) {
        for (const [field, value] of snapshot) {
          if (field.startsWith(DATA) && !unset.has(field.slice(DATA.length))) {
            set[field.slice(DATA.length)] = value;
          }
        }
      }
      Object.assign(set, write.set);
      const created: SessionWrite = {
        ...write,
        kind: 'create',
        previousKey: undefined,
        replace: false,
        set,
        unset: [],
        createdAt: Number(snapshot.get(F_CREATED) ?? write.createdAt),
      };
      const baseVersion = Number(snapshot.get(F_VERSION) ?? 0) || 0;
      const reply = (await this.eval(
        d,
        SCRIPTS.save,
        [target, target],
        this.saveArgs(created, '0', userHash, baseVersion),
      )) as [number];
      check(reply[0]);
    }
    if (oldHash && (oldHash !== userHash || from !== write.key)) {
      const old = this.indexKey(oldHash);
      await d.send(old, ['SREM', old, from]);
    }
  }

  private async members(d: Driver, index: string): Promise<string[]> {
    const reply = await d.send(index, ['SMEMBERS', index]);
    return Array.isArray(reply) ? reply.map(String).filter((m) => STORAGE_KEY.test(m)) : [];
  }

  /** EVALSHA, and EVAL when the server does not know the script yet (restart, failover, flush). */
  private async eval(d: Driver, s: Script, keys: string[], args: string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await d.send(keys[0], ['EVALSHA', s.sha, ...tail]);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return d.send(keys[0], ['EVAL', s.source, ...tail]);
    }
  }

  /**
   * Runs one store operation against the client, bounded by `commandTimeout`. Client errors and
   * timeouts reject with `SessionStoreUnavailableError`; `SessionGoneError` and
   * `SessionConflictError` pass through.
   */
  private async call<R>(operation: (d: Driver) => Promise<R>): Promise<R> {
    if (this.closed && !this.driver) {
      throw new SessionStoreUnavailableError(new Error('RedisSessionStore is closed'));
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SessionStoreUnavailableError(
              new Error(`Redis did not answer within ${this.commandTimeout} ms`),
            ),
          ),
        this.commandTimeout,
      );
    });
    const work = (async () => operation(this.driver ?? (await this.ready!)))();
    // The loser of the race may still settle later; it must not become an unhandled rejection.
    work.catch(() => undefined);
    try {
      return await Promise.race([work, deadline]);
    } catch (error) {
      if (
        error instanceof SessionGoneError ||
        error instanceof SessionConflictError ||
        error instanceof SessionStoreUnavailableError
      ) {
        throw error;
      }
      if (error instanceof TypeError && error.message.startsWith('RedisSessionStore:')) throw error;
      throw new SessionStoreUnavailableError(error);
    } finally {
      clearTimeout(timer);
    }
  }

  private async connectOwned(
    url: string,
    connectTimeout: number,
    maxDelay: number,
    extra: Record<string, unknown>,
  ): Promise<Driver> {
    let redis: { createClient(options: Record<string, unknown>): unknown };
    try {
      redis = (await import('redis')) as unknown as typeof redis;
    } catch (error) {
      throw new TypeError(
        'RedisSessionStore: `url` needs the "redis" package (npm install redis), or pass a `client`',
        { cause: error },
      );
    }
    const extraSocket = (extra.socket ?? {}) as Record<string, unknown>;
    const client = redis.createClient({
      disableOfflineQueue: true,
      ...extra,
      url,
      socket: {
        connectTimeout,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 16), maxDelay),
        ...extraSocket,
      },
    }) as NodeRedisClientLike & {
      connect(): Promise<unknown>;
      close(): Promise<unknown>;
      destroy(): void;
      on(event: string, listener: (arg?: unknown) => void): unknown;
    };
    let down = false;
    client.on('error', (error) => {
      if (down) return;
      down = true;
      const message = error instanceof Error ? error.message : String(error);
      this.logger.warn(`Lost the connection to ${this.description}: ${redact(message)}`);
    });
    client.on('ready', () => {
      if (down) this.logger.log(`Reconnected to ${this.description}`);
      down = false;
    });
    if (this.closed) {
      client.destroy();
      throw new SessionStoreUnavailableError(new Error('RedisSessionStore is closed'));
    }
    this.ownedClient = client;
    await client.connect();
    const driver = driverFor(client);
    this.driver = driver;
    return driver;
  }
}

/** `redis 127.0.0.1:6379`: host and port only, never user, password or query. */
function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `redis ${parsed.hostname}:${parsed.port || '6379'}`;
  } catch {
    return 'redis';
  }
}
