import { Inject, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import {
  MemorySessionStore,
  SESSION_STORE,
  SessionModule,
  SessionOriginGuard,
  type SessionStore,
} from 'nestjs-sessions';
import { AuthController } from './auth/auth.controller.js';
import { CartController } from './cart/cart.controller.js';
import { CatalogService } from './cart/catalog.service.js';
import type { SampleConfig } from './config.js';
import { DemoController } from './demo/demo.controller.js';
import { HealthController } from './health/health.controller.js';
import { HomeController } from './home/home.controller.js';
import { createStore } from './store.factory.js';
import { UpstreamModule } from './upstream/upstream.module.js';
import { UsersRepository } from './users/users.repository.js';

/** The sample application, configured from {@link SampleConfig}. */
@Module({})
export class AppModule implements OnApplicationShutdown {
  constructor(@Inject(SESSION_STORE) private readonly store: SessionStore) {}

  /** The app created its store (and its Redis client or PostgreSQL pool), so it closes it. */
  async onApplicationShutdown(): Promise<void> {
    await this.store.close?.();
  }

  static register(config: SampleConfig): DynamicModule {
    // Pages of other sites cannot post here (CSRF); curl and other non-browser clients can.
    const origin = { allowMissingOrigin: true };
    return {
      module: AppModule,
      imports: [
        SessionModule.forRootAsync({
          useFactory: async () =>
            config.store === 'cookie'
              ? // Stateless sessions; the deny list makes logout and "log out everywhere" reach
                // copied cookies too (one process: it lives in memory).
                {
                  secret: config.secret,
                  mode: 'sealed' as const,
                  revocationStore: new MemorySessionStore(),
                  ...origin,
                }
              : { secret: config.secret, store: await createStore(config), ...origin },
        }),
        UpstreamModule.register(config),
      ],
      controllers: [
        HomeController,
        DemoController,
        AuthController,
        CartController,
        HealthController,
      ],
      providers: [
        UsersRepository,
        CatalogService,
        { provide: APP_GUARD, useClass: SessionOriginGuard },
      ],
    };
  }
}
