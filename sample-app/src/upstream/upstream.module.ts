import cluster from 'node:cluster';
import { Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import {
  MemorySharedCredentialStore,
  PostgresSharedCredentialStore,
  RedisSharedCredentialStore,
  SharedSessionModule,
  type SharedCredentialStore,
  type SharedSessionLoginContext,
} from 'nestjs-sessions/upstream';
import type { SampleConfig } from '../config.js';
import { FAKE_UPSTREAM_DEMO_CREDENTIALS, FakeUpstream } from './fake-upstream.js';
import { UpstreamController } from './upstream.controller.js';
import { UPSTREAM_NAME, UpstreamTarget } from './upstream.target.js';

export { UPSTREAM_NAME, UpstreamTarget };

const logger = new Logger('UpstreamModule');

/** The upstream settings, read from the environment. */
export interface UpstreamSettings {
  /** `UPSTREAM_URL`: an already running (fake) upstream; unset, the app starts its own. */
  url: string | undefined;
  /** `UPSTREAM_PORT`: port of the fake upstream the app starts. Default 0: a free port, logged at boot. */
  port: number;
  /** `UPSTREAM_SESSION_TTL_MS`: lifetime of a fake upstream session. Default 5000. */
  sessionTtlMs: number;
  /** `UPSTREAM_USERNAME` / `UPSTREAM_PASSWORD`: what the app logs in with. Default the demo pair. */
  username: string;
  password: string;
}

/** Reads UPSTREAM_URL, UPSTREAM_PORT, UPSTREAM_SESSION_TTL_MS, UPSTREAM_USERNAME, UPSTREAM_PASSWORD. */
export function loadUpstreamSettings(env: NodeJS.ProcessEnv = process.env): UpstreamSettings {
  const number = (name: string, fallback: number): number => {
    const value = env[name] === undefined || env[name] === '' ? fallback : Number(env[name]);
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`${name} must be a whole number (got "${env[name]}")`);
    }
    return value;
  };
  return {
    url: env.UPSTREAM_URL || undefined,
    port: number('UPSTREAM_PORT', 0),
    sessionTtlMs: number('UPSTREAM_SESSION_TTL_MS', 5_000),
    username: env.UPSTREAM_USERNAME ?? FAKE_UPSTREAM_DEMO_CREDENTIALS.username,
    password: env.UPSTREAM_PASSWORD ?? FAKE_UPSTREAM_DEMO_CREDENTIALS.password,
  };
}

/** The credential store chosen by SESSION_STORE, with the client it created (closed on shutdown). */
export class UpstreamCredentialStore implements OnApplicationShutdown {
  constructor(
    readonly store: SharedCredentialStore,
    private readonly closeClient: () => Promise<void> = async () => undefined,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.closeClient();
  }
}

async function startTarget(settings: UpstreamSettings): Promise<UpstreamTarget> {
  if (settings.url) return new UpstreamTarget(settings.url, null);
  // Cluster workers share listening ports: each would start a fake upstream on the same port,
  // with its own sessions. The primary should start one and pass UPSTREAM_URL instead.
  const worker = cluster.isWorker;
  if (worker) {
    logger.warn(
      'UPSTREAM_URL is not set in a cluster worker: this worker starts its own fake upstream',
    );
  }
  const fake = new FakeUpstream({
    port: worker ? 0 : settings.port,
    sessionTtlMs: settings.sessionTtlMs,
    exclusive: worker,
  });
  const url = await fake.start();
  logger.log(`Fake upstream listening on ${url} (sessions last ${settings.sessionTtlMs} ms)`);
  return new UpstreamTarget(url, fake);
}

async function createCredentialStore(config: SampleConfig): Promise<UpstreamCredentialStore> {
  switch (config.store) {
    case 'redis': {
      const { createClient } = await import('redis');
      const client = createClient({
        url: config.redisUrl,
        socket: {
          connectTimeout: 2_000,
          reconnectStrategy: (retries) => Math.min(retries * 200, 2_000),
        },
      });
      client.on('error', (error: Error) =>
        logger.warn(`Redis (upstream credential): ${error.message}`),
      );
      await client.connect();
      return new UpstreamCredentialStore(
        new RedisSharedCredentialStore({ client, prefix: 'sample-app:shared-session:' }),
        async () => {
          if (client.isOpen) await client.close();
        },
      );
    }
    case 'postgres': {
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({
        connectionString: config.databaseUrl,
        connectionTimeoutMillis: 2_000,
        statement_timeout: 2_000,
        max: 4,
      });
      pool.on('error', (error: Error) =>
        logger.warn(`PostgreSQL (upstream credential): ${error.message}`),
      );
      return new UpstreamCredentialStore(
        new PostgresSharedCredentialStore({ pool, tableName: 'sample_shared_session_credentials' }),
        () => pool.end(),
      );
    }
    default:
      return new UpstreamCredentialStore(new MemorySharedCredentialStore());
  }
}

@Module({})
class UpstreamResourcesModule {}

/**
 * `GET /upstream/data` through a shared upstream session: a fake upstream service (started beside
 * the app unless UPSTREAM_URL names one) whose sessions expire every few seconds, and one
 * `SharedSessionClient` whose credential lives in memory, Redis or PostgreSQL after SESSION_STORE,
 * so that all workers share one login.
 */
@Module({})
export class UpstreamModule {
  static register(config: SampleConfig, env: NodeJS.ProcessEnv = process.env): DynamicModule {
    const settings = loadUpstreamSettings(env);
    const resources: DynamicModule = {
      module: UpstreamResourcesModule,
      providers: [
        { provide: UpstreamTarget, useFactory: () => startTarget(settings) },
        { provide: UpstreamCredentialStore, useFactory: () => createCredentialStore(config) },
      ],
      exports: [UpstreamTarget, UpstreamCredentialStore],
    };
    return {
      module: UpstreamModule,
      imports: [
        resources,
        SharedSessionModule.registerAsync({
          name: UPSTREAM_NAME,
          imports: [resources],
          inject: [UpstreamTarget, UpstreamCredentialStore],
          useFactory: (target: UpstreamTarget, credentials: UpstreamCredentialStore) => ({
            baseUrl: target.url,
            store: credentials.store,
            login: async (ctx: SharedSessionLoginContext) => {
              const response = await ctx.post('/login', {
                username: settings.username,
                password: settings.password,
              });
              await response.body?.cancel();
              if (!response.ok)
                throw new Error(`the upstream refused the login (${response.status})`);
            },
            timeout: '5s',
            loginTimeout: '5s',
            loginBackoff: { initial: '500ms', max: '10s' },
          }),
        }),
      ],
      controllers: [UpstreamController],
    };
  }
}
