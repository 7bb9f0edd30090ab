import { Module } from '@nestjs/common';
import { SessionModule, type SessionStore } from 'nestjs-sessions';
import { AppController } from './app.controller.js';

/** SESSION_STORE: memory (default), redis (node-redis, from a url) or ioredis (a client the app owns). */
async function createStore(): Promise<SessionStore | undefined> {
  const kind = process.env.SESSION_STORE ?? 'memory';
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `consumer:${process.pid}:${Date.now()}:`;
  if (kind === 'memory') return undefined;
  const { RedisSessionStore } = await import('nestjs-sessions/redis');
  if (kind === 'redis') return new RedisSessionStore({ url, prefix });
  if (kind === 'ioredis') {
    const { Redis } = await import('ioredis');
    const client = new Redis(url, { lazyConnect: true });
    await client.connect();
    const store = new RedisSessionStore({ client, prefix });
    // The store closes only clients it created: this one is the app's.
    const close = store.close.bind(store);
    store.close = async () => {
      await close();
      await client.quit();
    };
    return store;
  }
  throw new Error(`SESSION_STORE must be memory, redis or ioredis (got "${kind}")`);
}

@Module({
  imports: [
    SessionModule.forRootAsync({
      useFactory: async () => ({
        secret: process.env.SESSION_SECRET ?? 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR',
        store: await createStore(),
      }),
    }),
  ],
  controllers: [AppController],
})
export class AppModule {}
