import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import {
  SessionConfigError,
  SessionConflictError,
  SessionGoneError,
  SessionStoreUnavailableError,
} from '../session.errors.js';
import { LockLapsedError, lockLostError } from './lock-fencing.js';
import { StoreAvailability } from './store-availability.js';
import type {
  SessionRecord,
  SessionStore,
  SessionStoreHealth,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';
import { parseDuration } from '../utils/duration.js';
import { setOwn } from '../utils/own-property.js';
import { sha256Text } from '../utils/sha256.js';

// ---------------------------------------------------------------------------------------------
// Client shapes. The store never imports `redis` or `ioredis` at load time: it recognises a
// client by what it can do (duck typing), and imports `redis` only when asked to make its own
// client from a URL. These structural types accept the real clients of both libraries.
// ---------------------------------------------------------------------------------------------

/** A node-redis v5/v6 client, as returned by `createClient()` from `redis` / `@redis/client`. */
export interface NodeRedisClientLike {
  sendCommand(args: string[], options?: { timeout?: number }): Promise<unknown>;
  readonly isReady: boolean;
}

/** A node-redis v5/v6 cluster client, as returned by `createCluster()`. */
export interface NodeRedisClusterLike {
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  readonly masters: unknown;
}

/** A node-redis v5/v6 Sentinel client, as returned by `createSentinel()`. */
export interface NodeRedisSentinelLike {
  sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  use<T>(
    fn: (client: {
      sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
    }) => Promise<T>,
  ): Promise<T>;
  getMasterNode(): unknown;
  readonly isReady: boolean;
}

/** An ioredis 5/6 client: `new Redis(...)` (standalone or with `sentinels`) or `new Cluster(...)`. */
export interface IoRedisClientLike {
  call(command: string, ...args: string[]): Promise<unknown>;
  readonly isCluster: boolean;
}

/** Any client {@link RedisSessionStore} accepts. */
export type RedisSessionClient =
  NodeRedisClientLike | NodeRedisClusterLike | NodeRedisSentinelLike | IoRedisClientLike;

/** See {@link RedisSessionStoreOptions.waitForReplicas}. */
export interface RedisSessionReplicaWait {
  /** How many replicas must acknowledge each write. At least 1. */
  readonly replicas: number;
  /** Longest wait for them, in milliseconds or as a duration string; below `commandTimeout`. */
  readonly timeout: number | string;
}

/** Options of {@link RedisSessionStore}. Give exactly one of `client` and `url`. */
export interface RedisSessionStoreOptions {
  /**
   * A connected client you own: node-redis v5/v6 (`createClient()`, `createCluster()`,
   * `createSentinel()`) or ioredis 5/6 (`new Redis()`, with or without `sentinels`, or
   * `new Cluster()`). The store never connects, reconnects or closes it, so configure it to fail
   * fast when Redis is away and to drop a connection that hangs (a half-open connection left by a
   * partition or a failover never heals by itself; see docs/redis.md):
   * node-redis `{ disableOfflineQueue: true, pingInterval: 1000, socket: { connectTimeout: 1000,
   * socketTimeout: 1500, reconnectStrategy } }`; ioredis `{ enableOfflineQueue: false,
   * connectTimeout: 1000, socketTimeout: 1000, maxRetriesPerRequest: 1 }`. Whatever you set, each
   * store call still gives up after `commandTimeout`, and while Redis is known to be down calls are
   * refused at once. Attach your own `'error'` listener (node-redis crashes the process without one).
   * On a node-redis `createClient()` client with `disableOfflineQueue: true` the store's commands
   * also skip node-redis's per-command timer (node-redis 6 arms one for every command, a large share
   * of a Redis request's cost), a `commandOptions.timeout` of yours included.
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
  /**
   * Replicated durability: after each write (save, destroy, log out everywhere, lock acquire and
   * renew) the store sends `WAIT replicas timeout` on the same connection and answers 503 (nothing
   * claimed, no cookie) when fewer replicas acknowledged in time. With it, a write answered 200
   * survives a failover (Sentinel or Cluster) and a kill of the primary. Costs one more round trip
   * plus the replication delay on every write; reads are unchanged. `timeout` must be below
   * `commandTimeout`. Pair it with Redis's `min-replicas-to-write` (see docs/redis.md).
   * @default undefined (no wait: a failover may lose the writes of its last second)
   * @example { replicas: 1, timeout: '500ms' }
   */
  waitForReplicas?: RedisSessionReplicaWait;
  /**
   * Pause between two health probes (`PING`) while Redis is known to be down. Calls are refused at
   * once during that time instead of waiting `commandTimeout` each; the first probe that succeeds
   * ends it.
   * @default 500
   */
  probeInterval?: number | string;
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
const DEFAULT_PROBE_INTERVAL = 500;

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
 * KEYS: target session, source session (= target unless regenerating), new user index (optional;
 * the source again when absent and a lock follows), the source's lock (with a lock owner).
 * indexMode: '1' keeps the user index in the script (same slot); '0' leaves it to the caller;
 * '2' is '0' but refuses with {3}, writing nothing, when the session joins a user's index (a new
 * user, a create or a move), so that the caller adds the index entry first. The index is written
 * only then: a save that keeps the user never touches it.
 * ARGV: now, kind, replace, indexMode, indexPrefix, targetMember, sourceMember, createdAt,
 *   lastActiveAt, expiresAt, absoluteExpiresAt, userId, userHash ('' = no user), baseVersion,
 *   #unset, #expect, lock owner ('' = none), unset fields…, expect (field, present, value)
 *   triples…, set field/value pairs…
 * Returns {1, previous user hash}; {0} when the record is missing (or, for a create, present);
 * {2} when an expected value changed; {3} (mode '2') when the index entry must come first; {4}
 * when another owner holds the lock now, {5} when nobody does (a late write: fenced).
 * Nothing is written unless it returns 1.
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
  if ARGV[17] ~= '' then
    local holder = redis.call('GET', KEYS[4])
    if holder ~= ARGV[17] then return {holder and 4 or 5} end
  end
  if not expected(source, 18 + tonumber(ARGV[15]), tonumber(ARGV[16])) then return {2} end
end
local oldHash = redis.call('HGET', source, '${F_USER_HASH}')
local newHash = ARGV[13]
local joins = newHash ~= '' and (ARGV[2] == 'create' or source ~= target or oldHash ~= newHash)
if ARGV[4] == '2' and joins then return {3} end
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
for i = 1, nUnset do unset[i] = ARGV[17 + i] end
batched('HDEL', target, unset)
local set = {}
for i = 18 + nUnset + tonumber(ARGV[16]) * 3, #ARGV do set[#set + 1] = ARGV[i] end
batched('HSET', target, set)
redis.call('HSET', target, '${F_ACTIVE}', ARGV[9], '${F_EXPIRES}', ARGV[10], '${F_ABSOLUTE}', ARGV[11])
redis.call('HINCRBY', target, '${F_VERSION}', 1)
if newHash == '' then
  redis.call('HDEL', target, '${F_USER}', '${F_USER_HASH}')
else
  redis.call('HSET', target, '${F_USER}', ARGV[12], '${F_USER_HASH}', newHash)
end
if indexed then
  if oldHash and (oldHash ~= newHash or source ~= target) then
    redis.call('SREM', ARGV[5] .. oldHash, ARGV[7])
  end
  if joins then
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
 * KEYS: session, its lock (with a lock owner). ARGV: now, #expect, lock owner ('' = none),
 * expect triples… Returns {1, fields}, {0} when gone, {2} on a conflict, {4} / {5} as SAVE's.
 */
const CLAIM_SCRIPT = `${LUA_HELPERS}
if not live(KEYS[1], tonumber(ARGV[1])) then return {0} end
if ARGV[3] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder ~= ARGV[3] then return {holder and 4 or 5} end
end
if not expected(KEYS[1], 4, tonumber(ARGV[2])) then return {2} end
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

/** RENEW: extends a lock only while its owner holds it. ARGV: owner, ttl ms. Returns 1 or 0. */
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
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
  renew: script(RENEW_SCRIPT),
  unlock: script(UNLOCK_SCRIPT),
} as const;

// ---------------------------------------------------------------------------------------------
// Drivers: one `send` per client kind, routed by key on a Cluster.
// ---------------------------------------------------------------------------------------------

type ClientKind =
  'node-redis' | 'node-redis-cluster' | 'node-redis-sentinel' | 'ioredis' | 'ioredis-cluster';

interface Driver {
  readonly kind: ClientKind;
  /** Sends one command; `key` routes it on a Cluster (undefined: any node). */
  send(key: string | undefined, args: string[]): Promise<unknown>;
  /**
   * Sends a write and then `WAIT replicas timeout` on the same connection (WAIT counts the
   * replication of that connection's writes). Resolves the write's reply and the WAIT count.
   */
  sendAndWait(key: string, args: string[], wait: [string, string]): Promise<[unknown, number]>;
  /** On a Cluster, the node that serves `key` now (`host:port`), when the client tells. */
  nodeOf?(key: string): string | undefined;
  /** What the client lacks to heal a hung connection by itself, for one warning; or undefined. */
  readonly healingAdvice?: string;
}

type Rec = Record<string, unknown>;

interface IoRedisPipelineLike {
  call(command: string, ...args: string[]): IoRedisPipelineLike;
  exec(): Promise<[Error | null, unknown][] | null>;
}

function optionsOf(client: Rec): Rec {
  const options = client.options;
  return options && typeof options === 'object' ? (options as Rec) : {};
}

/**
 * Command options without node-redis's own per-command timeout, for a client without an offline
 * queue (`disableOfflineQueue: true`, as the store's own client and the documented setup have).
 * node-redis 6 gives every command a timer (5 s by default: an `AbortSignal.timeout()` and its
 * listener) that bounds only the command's wait to be written. Without an offline queue a command
 * is refused at once while the connection is down, and written at the next turn otherwise (later
 * only while the socket's send buffer is full); a connection that fails rejects what it had not
 * written. The store bounds every call itself (`commandTimeout`). With an offline queue the
 * client's options stand: a command queued while Redis is away is still dropped by its timer.
 */
const UNTIMED = Object.freeze({ timeout: 0 });

function driverFor(client: unknown): Driver {
  const c = client as Rec | null;
  if (c && typeof c.call === 'function' && typeof c.isCluster === 'boolean') {
    const io = client as IoRedisClientLike & {
      pipeline?(): IoRedisPipelineLike;
      slots?: unknown;
    };
    const kind = io.isCluster ? 'ioredis-cluster' : 'ioredis';
    // A pipeline goes to one node over one connection, routed by its keyed command: WAIT included.
    const sendAndWait = async (
      _key: string,
      args: string[],
      wait: [string, string],
    ): Promise<[unknown, number]> => {
      if (typeof io.pipeline !== 'function') {
        const reply = await io.call(args[0], ...args.slice(1));
        return [reply, Number(await io.call('WAIT', ...wait))];
      }
      const results = await io
        .pipeline()
        .call(args[0], ...args.slice(1))
        .call('WAIT', ...wait)
        .exec();
      if (!results) throw new Error('the pipeline was not executed');
      const [[writeError, reply], [waitError, count]] = results;
      if (writeError) throw writeError;
      if (waitError) throw waitError;
      return [reply, Number(count)];
    };
    const options = io.isCluster ? ((optionsOf(c).redisOptions ?? {}) as Rec) : optionsOf(c);
    return {
      kind,
      send: (_key, [command, ...args]) => io.call(command, ...args),
      sendAndWait,
      nodeOf: io.isCluster
        ? (key) => {
            const slots = io.slots as unknown[] | undefined;
            const nodes = slots?.[slotOf(key)];
            return Array.isArray(nodes) && typeof nodes[0] === 'string' ? nodes[0] : undefined;
          }
        : undefined,
      healingAdvice:
        typeof options.socketTimeout === 'number' && options.socketTimeout > 0
          ? undefined
          : 'set socketTimeout (e.g. 1000) on the ioredis client',
    };
  }
  if (c && typeof c.sendCommand === 'function') {
    if (typeof c.getMasterNode === 'function' && typeof c.use === 'function') {
      const sentinel = client as NodeRedisSentinelLike;
      return {
        kind: 'node-redis-sentinel',
        send: (_key, args) => sentinel.sendCommand(false, args),
        // One leased connection for both, so WAIT counts this write.
        sendAndWait: (_key, args, wait) =>
          sentinel.use(async (leased) => {
            const reply = await leased.sendCommand(false, args);
            return [reply, Number(await leased.sendCommand(false, ['WAIT', ...wait]))];
          }),
      };
    }
    if ('masters' in c && typeof c.getRandomNode === 'function') {
      const cluster = client as NodeRedisClusterLike & { slots?: unknown };
      return {
        kind: 'node-redis-cluster',
        send: (key, args) => cluster.sendCommand(key, false, args),
        // Routed by the same key: the same master's connection.
        sendAndWait: async (key, args, wait) => {
          const reply = await cluster.sendCommand(key, false, args);
          return [reply, Number(await cluster.sendCommand(key, false, ['WAIT', ...wait]))];
        },
        nodeOf: (key) => {
          const shard = (cluster.slots as Array<{ master?: { address?: unknown } }> | undefined)?.[
            slotOf(key)
          ];
          const address = shard?.master?.address;
          return typeof address === 'string' ? address : undefined;
        },
      };
    }
    if (typeof c.isReady === 'boolean' && !('masters' in c) && typeof c.use !== 'function') {
      const single = client as NodeRedisClientLike;
      const options = optionsOf(c);
      const socket = (options.socket ?? {}) as Rec;
      // Without an offline queue, without the client's own per-command timer (see UNTIMED).
      const untimed = options.disableOfflineQueue === true ? UNTIMED : undefined;
      return {
        kind: 'node-redis',
        send: (_key, args) => single.sendCommand(args, untimed),
        sendAndWait: async (_key, args, wait) => {
          const reply = await single.sendCommand(args, untimed);
          return [reply, Number(await single.sendCommand(['WAIT', ...wait], untimed))];
        },
        healingAdvice:
          !('options' in c) ||
          (typeof socket.socketTimeout === 'number' && socket.socketTimeout > 0)
            ? undefined
            : 'set socket.socketTimeout (e.g. 1500) and pingInterval (e.g. 1000) on the node-redis client',
      };
    }
  }
  throw new SessionConfigError(
    'RedisSessionStore: `client` is of a kind the store does not know. Pass a node-redis v5/v6 ' +
      'client from createClient(), createCluster() or createSentinel() (from "redis"), or an ' +
      'ioredis 5/6 Redis or Cluster; a client pool, a legacy-mode client or a wrapper cannot be used.',
  );
}

/** The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag, or of the whole key). */
export function slotOf(key: string): number {
  let start = key.indexOf('{');
  let end = key.length;
  if (start >= 0) {
    const close = key.indexOf('}', start + 1);
    if (close > start + 1) end = close;
    else start = -1;
  }
  const bytes = Buffer.from(start >= 0 ? key.slice(start + 1, end) : key, 'utf8');
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
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
    throw new SessionConfigError(
      `RedisSessionStore: ${name} must be a positive duration such as 1000 or '1s'`,
    );
  }
  return ms;
}

/** Each field/value pair of a hash reply, whatever shape the client returned it in. */
function readHash(reply: unknown, into: { take(field: string, value: string): void }): void {
  if (reply === null || reply === undefined) return;
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) into.take(String(reply[i]), String(reply[i + 1]));
  } else if (reply instanceof Map) {
    for (const [field, value] of reply) into.take(String(field), String(value));
  } else if (typeof reply === 'object') {
    const hash = reply as Record<string, unknown>;
    for (const field of Object.keys(hash)) into.take(field, String(hash[field]));
  }
}

/** The fields of one session hash, taken in one pass over its `HGETALL` reply. */
class SessionHash {
  readonly data: Record<string, string> = {};
  expires: string | undefined;
  created: string | undefined;
  active: string | undefined;
  absolute: string | undefined;
  version: string | undefined;
  user: string | undefined;

  take(field: string, value: string): void {
    if (field.startsWith(DATA)) {
      setOwn(this.data, field.slice(DATA.length), value);
      return;
    }
    switch (field) {
      case F_EXPIRES:
        this.expires = value;
        break;
      case F_CREATED:
        this.created = value;
        break;
      case F_ACTIVE:
        this.active = value;
        break;
      case F_ABSOLUTE:
        this.absolute = value;
        break;
      case F_VERSION:
        this.version = value;
        break;
      case F_USER:
        this.user = value;
        break;
    }
  }
}

/** A stored hash as a record, or `null` when it is absent, partial or expired (TO-3). */
function toRecord(key: string, reply: unknown, now: number): SessionRecord | null {
  const hash = new SessionHash();
  readHash(reply, hash);
  if (hash.expires === undefined) return null;
  const expiresAt = Number(hash.expires);
  const createdAt = Number(hash.created);
  const lastActiveAt = Number(hash.active);
  const absoluteExpiresAt = Number(hash.absolute);
  if (
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
    data: hash.data,
    userId: hash.user ?? null,
    createdAt,
    lastActiveAt,
    expiresAt,
    absoluteExpiresAt,
    version: Number(hash.version ?? 0) || 0,
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
  if (code === 4 || code === 5) throw lockLostError(code === 4);
  throw new SessionGoneError();
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
    return this.topologyFor(this.topologyKind);
  }

  /** The key prefix in use. */
  readonly prefix: string;
  /** The per-call timeout in milliseconds. */
  readonly commandTimeout: number;

  private driver: Driver | undefined;
  private readonly ready: Promise<Driver> | undefined;
  private ownedClient: OwnedClient | undefined;
  private closed = false;
  private readonly description: string;
  private readonly logger = new Logger('RedisSessionStore');
  private readonly probeInterval: number;
  private readonly replicaWait: [string, string] | undefined;
  /** The whole server (`''`), or each Cluster node by address. */
  private readonly health = new Map<string, StoreAvailability>();
  private readonly topologyKind: ClientKind;

  /**
   * @throws SessionConfigError when neither or both of `client` and `url` are given, when the
   *   client is of a kind the store does not know, or when an option is malformed.
   */
  constructor(options: RedisSessionStoreOptions) {
    if (!options || (options.client === undefined) === (options.url === undefined)) {
      throw new SessionConfigError('RedisSessionStore: pass exactly one of `client` or `url`');
    }
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    // eslint-disable-next-line no-control-regex
    if (typeof prefix !== 'string' || prefix.length > 256 || /[\s\u0000-\u001f]/.test(prefix)) {
      throw new SessionConfigError(
        'RedisSessionStore: prefix must be a string of at most 256 visible characters',
      );
    }
    if (/[{}]/.test(prefix) && !hasHashTag(prefix)) {
      // On a Cluster a brace without a tag would put a session's keys in different slots.
      throw new SessionConfigError(
        `RedisSessionStore: prefix '${prefix}' has a brace but no Cluster hash tag; use braces only around a tag, such as '{sess}:', or none`,
      );
    }
    this.prefix = prefix;
    this.commandTimeout = duration(
      'commandTimeout',
      options.commandTimeout,
      DEFAULT_COMMAND_TIMEOUT,
    );
    this.probeInterval = duration('probeInterval', options.probeInterval, DEFAULT_PROBE_INTERVAL);
    this.replicaWait = replicaWaitOf(options.waitForReplicas, this.commandTimeout);
    if (options.client !== undefined) {
      this.driver = driverFor(options.client);
      this.topologyKind = this.driver.kind;
      this.description = `redis (${this.driver.kind})`;
      if (this.driver.healingAdvice) {
        this.logger.warn(
          `The Redis client passed in cannot drop a connection that hangs (a half-open connection ` +
            `after a partition or a failover), so sessions would stay unavailable until a restart: ` +
            `${this.driver.healingAdvice}.`,
        );
      }
    } else {
      const url = options.url;
      if (typeof url !== 'string' || !/^rediss?:\/\//i.test(url)) {
        throw new SessionConfigError(
          'RedisSessionStore: url must start with redis:// or rediss://',
        );
      }
      this.topologyKind = 'node-redis';
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
      this.ready = this.createOwned(url, connectTimeout, maxDelay, options.clientOptions ?? {});
      this.ready.catch((error: unknown) => {
        // A missing `redis` package cannot fix itself: say so once, loudly, at boot.
        const reason = error instanceof Error ? error.message : String(error);
        this.logger.error(`${redact(reason)}. Every session route answers 503 until then.`);
      });
    }
  }

  /**
   * One `HGETALL`. Resolves `null` for a missing, partial or expired record (TO-3), and for a key
   * that is not a storage hash (which never reaches Redis). On a Cluster without a hash tag in
   * `prefix`, a session not found under its slot-tagged key is looked up once more under the
   * layout of earlier versions (see the class notes on migration).
   * @throws SessionStoreUnavailableError when Redis fails or does not answer in time
   */
  async load(key: string): Promise<SessionRecord | null> {
    if (!STORAGE_KEY.test(key)) return null;
    const redisKey = this.sessionKey(key);
    return this.call(async (d) => {
      const record = toRecord(key, await d.send(redisKey, ['HGETALL', redisKey]), Date.now());
      if (record || !this.perSessionSlot) return record;
      const legacy = this.legacyKey(key);
      return toRecord(key, await d.send(legacy, ['HGETALL', legacy]), Date.now());
    }, redisKey);
  }

  /**
   * Applies one request's delta with one script (see the class notes for Cluster without a hash
   * tag).
   * @throws SessionGoneError when a create finds a live record, or an update (or regenerate) finds
   *   none; nothing is written (LC-6, LC-7)
   * @throws SessionConflictError when a value listed in `write.expect` changed; nothing is written
   * @throws SessionStoreUnavailableError when Redis fails or does not answer in time, or when
   *   `waitForReplicas` is set and too few replicas acknowledged the write
   * @throws TypeError when a key is not a storage hash
   */
  async save(write: SessionWrite): Promise<void> {
    const from = write.previousKey ?? write.key;
    if (!STORAGE_KEY.test(write.key) || !STORAGE_KEY.test(from)) {
      throw new TypeError('RedisSessionStore: storage keys must be base64url hashes');
    }
    await this.call(async (d) => {
      if (this.perSessionSlot) return this.saveAcrossSlots(d, write);
      const userHash = write.userId === null ? '' : sha256Text(write.userId);
      const keys = [this.sessionKey(write.key), this.sessionKey(from)];
      if (userHash || write.lockOwner) {
        keys.push(userHash ? this.indexKey(userHash) : keys[1]);
      }
      if (write.lockOwner) keys.push(this.lockKey(from));
      const [status] = (await this.write(
        d,
        SCRIPTS.save,
        keys,
        this.saveArgs(write, '1', userHash),
      )) as [number];
      check(status);
    }, this.sessionKey(from));
  }

  /**
   * Writes only `lastActiveAt` and `expiresAt` (never past the absolute expiry) and moves the TTL,
   * in one script. Resolves `false`, creating nothing, when the record is gone.
   */
  async touch(key: string, times: SessionTimes): Promise<boolean> {
    if (!STORAGE_KEY.test(key)) return false;
    const args = [String(Date.now()), String(times.lastActiveAt), String(times.expiresAt)];
    return this.call(async (d) => {
      if (Number(await this.eval(d, SCRIPTS.touch, [this.sessionKey(key)], args)) === 1) {
        return true;
      }
      if (!this.perSessionSlot) return false;
      return Number(await this.eval(d, SCRIPTS.touch, [this.legacyKey(key)], args)) === 1;
    }, this.sessionKey(key));
  }

  /** Deletes the record and its user-index entry in one script. A missing record is not an error. */
  async destroy(key: string): Promise<void> {
    if (!STORAGE_KEY.test(key)) return;
    await this.call(async (d) => {
      if (!this.perSessionSlot) {
        await this.write(
          d,
          SCRIPTS.destroy,
          [this.sessionKey(key)],
          ['1', this.indexPrefix(), key],
        );
        return;
      }
      const hashes = await Promise.all(
        [this.sessionKey(key), this.legacyKey(key)].map((k) =>
          this.write(d, SCRIPTS.destroy, [k], ['0', this.indexPrefix(), key]),
        ),
      );
      for (const hash of new Set(hashes)) {
        if (typeof hash === 'string' && hash) {
          await d.send(this.indexKey(hash), ['SREM', this.indexKey(hash), key]);
        }
      }
    }, this.sessionKey(key));
  }

  /**
   * The user's live sessions, in one script that also prunes index entries of sessions that are
   * gone, expired or now someone else's (REV-2).
   */
  async listForUser(userId: string): Promise<SessionRecord[]> {
    const index = this.indexKey(sha256Text(userId));
    return this.call(async (d) => {
      const now = Date.now();
      if (!this.perSessionSlot) {
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
          const record = toRecord(m, await d.send(key, ['HGETALL', key]), now);
          if (record) return record;
          const legacy = this.legacyKey(m);
          return toRecord(m, await d.send(legacy, ['HGETALL', legacy]), now);
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
    }, index);
  }

  /**
   * Deletes every session of the user except `exceptKeys`, in one script; resolves how many live
   * sessions ended ("log out everywhere", REV-1).
   */
  async destroyForUser(userId: string, exceptKeys: readonly string[] = []): Promise<number> {
    const index = this.indexKey(sha256Text(userId));
    return this.call(async (d) => {
      const now = String(Date.now());
      if (!this.perSessionSlot) {
        const reply = await this.write(
          d,
          SCRIPTS.destroyUser,
          [index],
          [now, this.prefix, userId, ...exceptKeys],
        );
        return Number(reply);
      }
      const members = (await this.members(d, index)).filter((m) => !exceptKeys.includes(m));
      const deleted = await Promise.all(
        members.flatMap((m) =>
          [this.sessionKey(m), this.legacyKey(m)].map((k) =>
            this.write(d, SCRIPTS.destroyIfUser, [k], [now, userId]),
          ),
        ),
      );
      if (members.length > 0) await d.send(index, ['SREM', index, ...members]);
      return deleted.reduce<number>((sum, n) => sum + Number(n), 0);
    }, index);
  }

  /**
   * Takes (or renews) the per-session lock used by `concurrency: 'serialize'` and
   * `@SessionLock()`: one script on the session's lock key (a key that is not a storage hash is
   * hashed first; on a Cluster it shares the session's slot), which expires after `ttlMs`.
   * Resolves `false` while another owner holds it.
   */
  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const lock = this.lockKey(key);
    return this.call(async (d) => {
      const reply = await this.write(d, SCRIPTS.lock, [lock], [owner, ttlArg(ttlMs)]);
      return Number(reply) === 1;
    }, lock);
  }

  /**
   * Extends the lock to `ttlMs` from now if, and only if, `owner` still holds it (one atomic
   * script). Resolves `false`, changing nothing, when the lock expired or is someone else's.
   */
  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const lock = this.lockKey(key);
    return this.call(async (d) => {
      const reply = await this.write(d, SCRIPTS.renew, [lock], [owner, ttlArg(ttlMs)]);
      return Number(reply) === 1;
    }, lock);
  }

  /** Releases the lock if, and only if, `owner` still holds it (one atomic script). */
  async releaseLock(key: string, owner: string): Promise<void> {
    const lock = this.lockKey(key);
    await this.call((d) => this.eval(d, SCRIPTS.unlock, [lock], [owner]), lock);
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
        details: { error: redact(messageOf(cause)) },
      };
    }
  }

  /** Closes the client the store created from `url`. A client passed in is left alone. */
  async close(): Promise<void> {
    this.closed = true;
    for (const health of this.health.values()) health.close();
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

  private get perSessionSlot(): boolean {
    return this.topologyFor(this.topologyKind) === 'per-session-slot';
  }

  private topologyFor(kind: ClientKind): RedisSessionTopology {
    if (kind !== 'node-redis-cluster' && kind !== 'ioredis-cluster') return 'single-node';
    return hasHashTag(this.prefix) ? 'single-slot' : 'per-session-slot';
  }

  /**
   * `<prefix><key>`; on a Cluster without a hash tag in `prefix`, `<prefix>{<key>}`, so that the
   * session and its lock share a slot.
   */
  private sessionKey(storageKey: string): string {
    return this.perSessionSlot ? `${this.prefix}{${storageKey}}` : this.prefix + storageKey;
  }

  /** Where versions before the slot-tagged layout kept a session on a Cluster. */
  private legacyKey(storageKey: string): string {
    return this.prefix + storageKey;
  }

  /** Lock keys are storage keys; anything else is hashed first, so no raw text reaches a key. */
  private lockKey(key: string): string {
    const safe = STORAGE_KEY.test(key) ? key : sha256Text(key);
    return this.perSessionSlot ? `${this.prefix}lock:{${safe}}` : `${this.prefix}lock:${safe}`;
  }

  private indexPrefix(): string {
    return `${this.prefix}user:`;
  }

  private indexKey(userHash: string): string {
    return this.indexPrefix() + userHash;
  }

  private saveArgs(
    write: SessionWrite,
    indexMode: '0' | '1' | '2',
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
      write.kind === 'update' ? (write.lockOwner ?? '') : '',
    ];
    for (const field of write.unset) args.push(DATA + field);
    if (write.kind === 'update') args[15] = String(pushExpect(args, write.expect));
    for (const field of Object.keys(write.set)) args.push(DATA + field, write.set[field]);
    return args;
  }

  /** A save on a Cluster whose session and index keys live in different slots. */
  private async saveAcrossSlots(d: Driver, write: SessionWrite): Promise<void> {
    const userHash = write.userId === null ? '' : sha256Text(write.userId);
    const from = write.previousKey ?? write.key;
    const target = this.sessionKey(write.key);
    // Index first: a session must never exist unlisted ("log out everywhere" would miss it). A
    // save that keeps the session's user leaves the index (in another slot, maybe on another
    // node) alone: the script tells when the entry is needed.
    const addIndex = async () => {
      const index = this.indexKey(userHash);
      await this.write(
        d,
        SCRIPTS.indexAdd,
        [index],
        [write.key, String(write.absoluteExpiresAt), String(Date.now())],
      );
    };
    let oldHash: string | null;
    if (from === write.key) {
      // The lock key shares the slot-tagged session's slot, not a legacy key's: only the
      // slot-tagged record is fenced by its lock.
      const saveAt = async (key: string, fenced: boolean): Promise<[number, string | null]> => {
        const indexed = write.kind === 'create' && userHash !== '';
        const keys = fenced && write.lockOwner ? [key, key, key, this.lockKey(from)] : [key, key];
        const as = fenced ? write : { ...write, lockOwner: undefined };
        if (indexed) await addIndex();
        let reply = (await this.write(
          d,
          SCRIPTS.save,
          keys,
          this.saveArgs(as, indexed ? '0' : '2', userHash),
        )) as [number, string | null];
        if (Number(reply[0]) === 3) {
          await addIndex();
          reply = (await this.write(d, SCRIPTS.save, keys, this.saveArgs(as, '0', userHash))) as [
            number,
            string | null,
          ];
        }
        return reply;
      };
      let reply = await saveAt(target, true);
      if (Number(reply[0]) === 0 && write.kind === 'update') {
        // Written by a version before the slot-tagged layout: update it where it is.
        reply = await saveAt(this.legacyKey(write.key), false);
      }
      check(reply[0]);
      oldHash = reply[1] ?? null;
    } else {
      // Regenerate across slots: take the record (one winner, LC-7), then write it at the new key.
      // Fenced by the lock in the session's slot; a legacy key's slot has no lock to check.
      const claimArgs = (owner: string) => {
        const args = [String(Date.now()), '0', owner];
        args[1] = String(pushExpect(args, write.expect));
        return args;
      };
      const owner = write.lockOwner ?? '';
      let [status, claimed] = (await this.write(
        d,
        SCRIPTS.claim,
        owner ? [this.sessionKey(from), this.lockKey(from)] : [this.sessionKey(from)],
        claimArgs(owner),
      )) as [number, unknown];
      if (Number(status) === 0) {
        [status, claimed] = (await this.write(
          d,
          SCRIPTS.claim,
          [this.legacyKey(from)],
          claimArgs(''),
        )) as [number, unknown];
      }
      check(status);
      const snapshot = new Map<string, string>();
      readHash(claimed, { take: (field, value) => snapshot.set(field, value) });
      if (!snapshot.has(F_EXPIRES)) throw new SessionGoneError();
      oldHash = snapshot.get(F_USER_HASH) ?? null;
      // No prototype: a `__proto__` session key is copied as data, not dropped (IN-2).
      const set = Object.create(null) as Record<string, string>;
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
      if (userHash) await addIndex();
      const reply = (await this.write(
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

  /**
   * A script that writes: {@link eval}, then, with `waitForReplicas`, `WAIT` on the same
   * connection. Too few acknowledgements reject as unavailable (the caller answers 503 and claims
   * nothing).
   */
  private async write(d: Driver, s: Script, keys: string[], args: string[]): Promise<unknown> {
    const wait = this.replicaWait;
    if (!wait) return this.eval(d, s, keys, args);
    const tail = [String(keys.length), ...keys, ...args];
    let reply: unknown;
    let acknowledged: number;
    try {
      [reply, acknowledged] = await d.sendAndWait(keys[0], ['EVALSHA', s.sha, ...tail], wait);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      [reply, acknowledged] = await d.sendAndWait(keys[0], ['EVAL', s.source, ...tail], wait);
    }
    if (acknowledged < Number(wait[0])) {
      throw new SessionStoreUnavailableError(
        new Error(
          `only ${acknowledged} of ${wait[0]} Redis replicas acknowledged a write within ${wait[1]} ms`,
        ),
      );
    }
    return reply;
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
   * `SessionConflictError` pass through. While Redis (or, on a Cluster, the node that serves `key`)
   * is known to be down, rejects at once; a failure starts a probe that decides whether it is.
   */
  private async call<R>(operation: (d: Driver) => Promise<R>, key?: string): Promise<R> {
    if (this.closed && !this.driver) {
      throw new SessionStoreUnavailableError(new Error('RedisSessionStore is closed'));
    }
    let d: Driver;
    try {
      d = this.driver ?? (await this.bounded(this.ready!));
    } catch (error) {
      throw unavailable(error);
    }
    const health = this.healthOf(d, key);
    const refusal = health.refusal();
    if (refusal) throw refusal;
    try {
      return await this.bounded(operation(d));
    } catch (error) {
      if (
        error instanceof SessionGoneError ||
        error instanceof SessionConflictError ||
        error instanceof LockLapsedError
      ) {
        throw error;
      }
      if (error instanceof TypeError && error.message.startsWith('RedisSessionStore:')) throw error;
      // A reply error (WRONGTYPE, a script error…) is an answer: Redis is there.
      if (!isReplyError(error)) health.suspect();
      throw unavailable(error);
    }
  }

  /** `work`, or a rejection after `commandTimeout`, whichever comes first. */
  private bounded<R>(work: Promise<R>): Promise<R> {
    // One promise and one timer per command: this runs on every session read and write.
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new SessionStoreUnavailableError(
              new Error(`Redis did not answer within ${this.commandTimeout} ms`),
            ),
          ),
        this.commandTimeout,
      );
      work.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error as Error);
        },
      );
    });
  }

  /** The availability of the server, or of the Cluster node that serves `key` now. */
  private healthOf(d: Driver, key: string | undefined): StoreAvailability {
    const node = key !== undefined && d.nodeOf ? (d.nodeOf(key) ?? '') : '';
    let health = this.health.get(node);
    if (!health) {
      health = new StoreAvailability({
        // 'redis 127.0.0.1:6379' → 'Redis 127.0.0.1:6379'
        name: node ? `Redis Cluster node ${node}` : `Redis${this.description.slice(5)}`,
        logger: this.logger,
        probeInterval: this.probeInterval,
        describe: (error) =>
          redact(messageOf(error instanceof SessionStoreUnavailableError ? error.cause : error)),
        // On a Cluster a key routes the probe to the node that serves it now.
        probe: () =>
          this.bounded(d.send(key, key !== undefined && node ? ['EXISTS', key] : ['PING'])),
        onProbeFailed: (error) => {
          if (!node) this.dropHungConnection(error);
        },
      });
      if (this.closed) health.close();
      this.health.set(node, health);
    }
    return health;
  }

  /**
   * A probe that got no answer while the connection looked fine means the connection hangs: for
   * the client the store made, drop it and connect anew (a client passed in heals through its own
   * socket timeout; see the `client` option).
   */
  private dropHungConnection(error: unknown): void {
    const client = this.ownedClient;
    if (!client || this.closed || !client.isReady) return;
    if (
      !(error instanceof SessionStoreUnavailableError) ||
      !/did not answer/.test(messageOf(error.cause))
    ) {
      return;
    }
    client.destroy();
    client.connect().catch(() => undefined);
  }

  private async createOwned(
    url: string,
    connectTimeout: number,
    maxDelay: number,
    extra: Record<string, unknown>,
  ): Promise<Driver> {
    let redis: { createClient(options: Record<string, unknown>): unknown };
    try {
      redis = (await import('redis')) as unknown as typeof redis;
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
      throw new SessionConfigError(
        `RedisSessionStore: \`url\` needs the "redis" package, which ${missing ? 'is not installed' : `could not be loaded (${messageOf(error)})`}: run \`npm install redis\`, or pass an ioredis \`client\` instead`,
      );
    }
    const extraSocket = (extra.socket ?? {}) as Record<string, unknown>;
    const client = redis.createClient({
      disableOfflineQueue: true,
      // A PING a second keeps a healthy connection busy, so that the socket timeout below fires
      // only on one that hangs (also while connecting, which the store cannot see).
      pingInterval: 1000,
      ...extra,
      url,
      socket: {
        connectTimeout,
        socketTimeout: Math.max(1500, connectTimeout),
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 16), maxDelay),
        ...extraSocket,
      },
    }) as NodeRedisClientLike & OwnedClient;
    const driver = driverFor(client);
    const health = () => this.healthOf(driver, undefined);
    client.on('error', (error) => health().down(error));
    client.on('ready', () => health().probeSoon());
    if (this.closed) {
      client.destroy();
      throw new SessionStoreUnavailableError(new Error('RedisSessionStore is closed'));
    }
    this.ownedClient = client;
    // The first connection, or its first failure: from then on commands are refused at once
    // while Redis is away (the client retries by itself), instead of each waiting for a timeout.
    await new Promise<void>((resolve) => {
      client.on('error', () => resolve());
      client.connect().then(
        () => resolve(),
        () => resolve(),
      );
    });
    this.driver = driver;
    return driver;
  }
}

type OwnedClient = {
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
  on(event: string, listener: (arg?: unknown) => void): unknown;
  readonly isReady: boolean;
};

function ttlArg(ttlMs: number): string {
  return String(Math.max(1, Math.ceil(ttlMs)));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function unavailable(error: unknown): Error {
  if (error instanceof SessionStoreUnavailableError || error instanceof SessionConfigError) {
    return error instanceof SessionConfigError ? new SessionStoreUnavailableError(error) : error;
  }
  return new SessionStoreUnavailableError(error);
}

/**
 * An error Redis itself answered with (its message starts with an upper-case code such as
 * `ERR`, `WRONGTYPE`, `NOSCRIPT`): the connection works. `READONLY`, `LOADING`, `MASTERDOWN`,
 * `CLUSTERDOWN` and `TRYAGAIN` say the node cannot serve now, so they count as failures.
 */
function isReplyError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  if (!/^[A-Z]{3,}\b/.test(message)) return false;
  return !/^(READONLY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/.test(message);
}

function replicaWaitOf(
  wait: RedisSessionReplicaWait | undefined,
  commandTimeout: number,
): [string, string] | undefined {
  if (wait === undefined) return undefined;
  const replicas = (wait as { replicas?: unknown } | null)?.replicas;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 1) {
    throw new SessionConfigError(
      'RedisSessionStore: waitForReplicas.replicas must be a whole number of at least 1, such as { replicas: 1, timeout: 500 }',
    );
  }
  const timeout = duration('waitForReplicas.timeout', wait.timeout, NaN);
  if (!Number.isFinite(timeout)) {
    throw new SessionConfigError(
      "RedisSessionStore: waitForReplicas.timeout is required, such as '500ms'",
    );
  }
  if (timeout >= commandTimeout) {
    throw new SessionConfigError(
      `RedisSessionStore: waitForReplicas.timeout (${timeout} ms) must be below commandTimeout (${commandTimeout} ms), which bounds the write and the wait together; lower the one or raise the other`,
    );
  }
  return [String(replicas), String(Math.ceil(timeout))];
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
