import {
  Module,
  type DynamicModule,
  type MiddlewareConsumer,
  type NestModule,
} from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { MemorySessionStore, SessionModule, SessionOriginGuard } from 'nestjs-sessions';
import { AuthController } from './auth/auth.controller.js';
import { CartController } from './cart/cart.controller.js';
import { CatalogService } from './cart/catalog.service.js';
import type { SampleConfig } from './config.js';
import { DemoController } from './demo/demo.controller.js';
import { HealthController } from './health/health.controller.js';
import { HomeController } from './home/home.controller.js';
import { securityHeaders } from './security-headers.js';
import { createStore } from './store.factory.js';
import { SampleGraphQLModule } from './graphql/graphql.module.js';
import { WhoamiGateway } from './realtime/whoami.gateway.js';
import { UpstreamModule } from './upstream/upstream.module.js';
import { UsersRepository } from './users/users.repository.js';

/**
 * The sample application, configured from {@link SampleConfig}. `app.close()` closes the session
 * store built in `forRootAsync` (and its Redis client or PostgreSQL pool): SessionModule does it.
 */
@Module({})
export class AppModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(securityHeaders).forRoutes('{*path}');
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
        SampleGraphQLModule.register(config),
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
        WhoamiGateway,
        { provide: APP_GUARD, useClass: SessionOriginGuard },
      ],
    };
  }
}
