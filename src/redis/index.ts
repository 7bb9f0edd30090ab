/**
 * `nestjs-sessions/redis`: the Redis session store. Kept out of the core entry point so that apps
 * without Redis never load a Redis client.
 * @example import { RedisSessionStore } from 'nestjs-sessions/redis';
 */
export {
  RedisSessionStore,
  type RedisSessionStoreOptions,
  type RedisSessionClient,
  type RedisSessionTopology,
  type NodeRedisClientLike,
  type NodeRedisClusterLike,
  type IoRedisClientLike,
} from '../stores/redis-session.store.js';
