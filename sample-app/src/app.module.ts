import { Module, type DynamicModule } from '@nestjs/common';
import { SessionModule } from 'nestjs-sessions';
import { AuthController } from './auth/auth.controller.js';
import { CartController } from './cart/cart.controller.js';
import { CatalogService } from './cart/catalog.service.js';
import type { SampleConfig } from './config.js';
import { DemoController } from './demo/demo.controller.js';
import { HealthController } from './health/health.controller.js';
import { HomeController } from './home/home.controller.js';
import { createStore } from './store.factory.js';
import { UsersRepository } from './users/users.repository.js';

/** The sample application, configured from {@link SampleConfig}. */
@Module({})
export class AppModule {
  static register(config: SampleConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        SessionModule.forRootAsync({
          useFactory: async () => ({
            secret: config.secret,
            store: await createStore(config),
          }),
        }),
      ],
      controllers: [
        HomeController,
        DemoController,
        AuthController,
        CartController,
        HealthController,
      ],
      providers: [UsersRepository, CatalogService],
    };
  }
}
