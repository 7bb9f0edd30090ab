import {
  Inject,
  Logger,
  Module,
  type MiddlewareConsumer,
  type NestModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost, ModulesContainer } from '@nestjs/core';
import { SESSION_MANAGER, SESSION_STORE } from './session.constants.js';
import { SessionConfigError } from './session.errors.js';
import { SessionGuard } from './session.guard.js';
import { SessionOriginGuard } from './session-origin.guard.js';
import { SessionCsrfGuard } from './session-csrf.guard.js';
import { SessionRuntime } from './core/session-runtime.js';
import { anyRouteLocks, hookSessionRoutes } from './session.routes.js';
import { anyResolverLocks, hookSessionResolvers } from './session.resolvers.js';
import { describeGuardedRoutes } from './session.openapi.js';
import {
  anyGatewayLocks,
  bindSessionGateways,
  hookSessionGateways,
  type GatewayWrapper,
} from './session.gateways.js';
import { loadWsException } from './session.sockets.js';
import {
  installExpressSessions,
  installFastifySessions,
  type SessionHost,
} from './http/request-session.js';
import { SessionHandle } from './core/session-handle.js';
import type { SessionLogger } from './core/session-logger.js';
import { ConfigurableSessionModule, SESSION_MODULE_OPTIONS } from './session.module-definition.js';
import type { SessionModuleOptions } from './interfaces/session-options.interface.js';
import { SessionStore } from './interfaces/session-store.interface.js';
import { resolveSessionOptions } from './session.options.js';
import { SessionService } from './session.service.js';
import { MemorySessionStore } from './stores/memory-session.store.js';

const logger = new Logger('SessionModule');

/** Nest's logger, as the engine takes it. */
const engineLogger: SessionLogger = {
  log: (message) => logger.log(message),
  error: (message) => logger.error(message),
  warn: (message) => logger.warn(message),
  debug: (message) => logger.debug(message),
  verbose: (message) => logger.verbose(message),
  isLevelEnabled: (level) => Logger.isLevelEnabled(level),
};

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function createManager(options: SessionModuleOptions): SessionRuntime {
  const resolved = resolveSessionOptions(options);
  for (const warning of resolved.warnings) logger.warn(warning);
  let store = resolved.store;
  if (!store && resolved.mode === 'store')
    store = new MemorySessionStore({ clock: resolved.clock });
  if (store instanceof MemorySessionStore && resolved.production) {
    logger.warn(
      'Sessions are kept in memory: they are lost on restart and not shared between processes. ' +
        'Pass a store (RedisSessionStore, PostgresSessionStore) in production.',
    );
  }
  if (resolved.revocationStore instanceof MemorySessionStore && resolved.production) {
    logger.warn(
      "The revocationStore keeps revocations in this process's memory: after a restart, or on another " +
        'instance, a revoked cookie works again. Use RedisSessionStore or PostgresSessionStore in production.',
    );
  }
  return new SessionRuntime(resolved, store, engineLogger);
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
      useFactory: (manager: SessionRuntime) => manager.options.revocationStore ?? manager.store,
    },
    { provide: SessionStore, useExisting: SESSION_STORE },
    SessionService,
    SessionGuard,
    SessionOriginGuard,
    SessionCsrfGuard,
  ],
  exports: [
    SESSION_MANAGER,
    SESSION_STORE,
    SessionStore,
    SessionService,
    SessionGuard,
    SessionOriginGuard,
    SessionCsrfGuard,
  ],
})
export class SessionModule
  extends ConfigurableSessionModule
  implements NestModule, OnModuleInit, OnApplicationShutdown
{
  /** The app's WebSocket gateways (see session.gateways.ts). */
  private readonly gateways: GatewayWrapper[];

  constructor(
    @Inject(SESSION_MANAGER) private readonly manager: SessionRuntime,
    private readonly adapterHost: HttpAdapterHost,
    private readonly modules: ModulesContainer,
  ) {
    super();
    // Now, while the app is created: before SwaggerModule.createDocument() reads the routes.
    describeGuardedRoutes(modules);
    // Here, not in configure(): app.init() connects gateways (reading their handlers) first.
    this.gateways = hookSessionGateways(modules);
  }

  /** Before gateways accept clients: their messages are this module's, refused as `WsException`s. */
  async onModuleInit(): Promise<void> {
    if (this.gateways.length === 0) return;
    bindSessionGateways(this.gateways, this.manager);
    await loadWsException();
  }

  configure(_consumer: MiddlewareConsumer): void {
    const { store } = this.manager;
    if (
      anyRouteLocks(this.modules) ||
      anyResolverLocks(this.modules) ||
      anyGatewayLocks(this.gateways)
    ) {
      if (!store) {
        logger.warn(
          "@SessionLock() has no effect in 'sealed' mode: every request carries its own copy of the session, and of concurrent changes the last one sent wins. Use mode: 'store' where that matters.",
        );
      } else if (!(store.acquireLock && store.releaseLock)) {
        throw new SessionConfigError(
          '@SessionLock() needs a store with acquireLock/releaseLock; this store has none. Use a built-in store (memory, Redis, PostgreSQL), or remove @SessionLock().',
        );
      }
    }
    // Before Nest builds its routes: the commit hook goes on the routes that use the session only.
    hookSessionRoutes(this.modules);
    // Before GraphQLModule builds its schema: resolvers that use the session roll it back on failure.
    const unguarded = hookSessionResolvers(this.modules);
    if (unguarded) throw new SessionConfigError(unguarded);
    // `req.session` becomes a lazy getter on the framework's requests, so requests that never
    // touch the session run no session code at all (with `eager`, one check of the Cookie header).
    const adapter = this.adapterHost?.httpAdapter;
    if (!adapter) return; // An application without HTTP (microservices): SessionService only.
    const instance: unknown = adapter.getInstance?.();
    const runtime = this.manager;
    const host: SessionHost = {
      createHandle: (carrier) => new SessionHandle(runtime, carrier),
      presentsCookie: (header) => runtime.presentsCookie(header),
    };
    const { eager } = runtime.options;
    if (
      !installExpressSessions(instance, host, eager) &&
      !installFastifySessions(instance, host, eager)
    ) {
      throw new SessionConfigError(
        `The HTTP adapter (${adapter.constructor?.name ?? 'unknown'}) is neither Express nor Fastify: ` +
          'create the app with NestFactory.create(AppModule) or NestFactory.create(AppModule, new FastifyAdapter()).',
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
