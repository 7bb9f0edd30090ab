import type { SessionStore } from 'nestjs-sessions';
import type { SampleConfig } from './config.js';

/** The store named by SESSION_STORE; `undefined` means the built-in memory store. */
export async function createStore(config: SampleConfig): Promise<SessionStore | undefined> {
  switch (config.store) {
    case 'memory':
    case 'cookie':
      return undefined;
    case 'redis': {
      // Loaded only when chosen, so the other stores run without a Redis client installed. The
      // store owns this client: bounded timeouts, reconnects by itself, never logs the URL.
      const { RedisSessionStore } = await import('nestjs-sessions/redis');
      return new RedisSessionStore({ url: config.redisUrl, prefix: config.keyPrefix });
    }
    case 'postgres': {
      // Loaded only when chosen, so the other stores run without pg installed.
      const { PostgresSessionStore } = await import('nestjs-sessions/postgres');
      return new PostgresSessionStore({
        connectionString: config.databaseUrl,
        schema: config.pgSchema,
        tableName: config.pgTable,
      });
    }
    default:
      throw new Error(`SESSION_STORE=${config.store} is not available in this build`);
  }
}
