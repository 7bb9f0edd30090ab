import {
  Inject,
  Logger,
  Module,
  type MiddlewareConsumer,
  type NestModule,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { HttpAdapterHost, ModulesContainer } from '@nestjs/core';
import { SESSION_MANAGER, SESSION_STORE } from './session.constants.js';
import { SessionConfigError } from './session.errors.js';
import { SessionGuard } from './session.guard.js';
import { SessionOriginGuard } from './session-origin.guard.js';
import { SessionCsrfGuard } from './session-csrf.guard.js';
import { SessionManager } from './session.manager.js';
import { hookSessionRoutes } from './session.routes.js';
import { ConfigurableSessionModule, SESSION_MODULE_OPTIONS } from './session.module-definition.js';
import type { SessionModuleOptions } from './interfaces/session-options.interface.js';
import { resolveSessionOptions } from './session.options.js';
import { SessionService } from './session.service.js';
import { MemorySessionStore } from './stores/memory-session.store.js';

const logger = new Logger('SessionModule');

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function createManager(options: SessionModuleOptions): SessionManager {
  const resolved = resolveSessionOptions(options);
  for (const warning of resolved.warnings) logger.warn(warning);
  let store = resolved.store;
  if (!store && resolved.mode === 'store') store = new MemorySessionStore();
  if (store instanceof MemorySessionStore && resolved.production) {
    logger.warn(
      'Sessions are kept in memory: they are lost on restart and not shared between processes. ' +
        'Pass a store (RedisSessionStore, PostgresSessionStore) in production.',
    );
  }
  return new SessionManager(resolved, store);
}

/**
 * Sessions for every route: `SessionModule.forRoot({ secret })` or `forRootAsync(...)`. Wires the
 * session lifecycle itself (`req.session`, and the commit hook on every route that uses the
 * session), and provides `SessionService`, `SessionGuard` and the store (token
 * `SESSION_STORE`). Global by default (`isGlobal: false` to change that).
 */
@Module({
  providers: [
    {
      provide: SESSION_MANAGER,
      inject: [SESSION_MODULE_OPTIONS],
      useFactory: createManager,
    },
    {
      provide: SESSION_STORE,
      inject: [SESSION_MANAGER],
      useFactory: (manager: SessionManager) => manager.options.revocationStore ?? manager.store,
    },
    SessionService,
    SessionGuard,
    SessionOriginGuard,
    SessionCsrfGuard,
  ],
  exports: [
    SESSION_MANAGER,
    SESSION_STORE,
    SessionService,
    SessionGuard,
    SessionOriginGuard,
    SessionCsrfGuard,
  ],
})
export class SessionModule
  extends ConfigurableSessionModule
  implements NestModule, OnApplicationShutdown
{
  constructor(
    @Inject(SESSION_MANAGER) private readonly manager: SessionManager,
    private readonly adapterHost: HttpAdapterHost,
    private readonly modules: ModulesContainer,
  ) {
    super();
  }

  configure(_consumer: MiddlewareConsumer): void {
    // Before Nest builds its routes: the commit hook goes on the routes that use the session only.
    hookSessionRoutes(this.modules);
    // `req.session` becomes a lazy getter on the Express app's request prototype, so requests that
    // never touch the session run no session code at all (no middleware).
    const instance = this.adapterHost?.httpAdapter?.getInstance?.() as
      { request?: object } | undefined;
    if (!this.manager.installRequestProperty(instance?.request)) {
      throw new SessionConfigError(
        'The HTTP adapter is not Express: nestjs-sessions supports @nestjs/platform-express only. ' +
          'Create the app with NestFactory.create(AppModule) (the Express default), not another adapter.',
      );
    }
  }

  /**
   * `app.close()` closes every store the module was given or built, and the revocation store: a
   * store closes only its timers and the clients it created itself (from a `url`, say), never a
   * client passed in, and closing it twice is harmless, so an app that closes it too loses nothing.
   */
  async onApplicationShutdown(): Promise<void> {
    const { store, revocationStore } = this.manager.options;
    const stores = new Set([this.manager.store, store, revocationStore]);
    const closing = [...stores].map(async (each) => each?.close?.());
    for (const result of await Promise.allSettled(closing)) {
      if (result.status === 'rejected') {
        logger.warn(`A session store failed to close: ${describeError(result.reason)}`);
      }
    }
  }
}
