import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import type {
  SharedSessionModuleAsyncOptions,
  SharedSessionModuleOptions,
  SharedSessionOptions,
  SharedSessionOptionsFactory,
} from './interfaces/shared-session-options.interface.js';
import { SharedSessionClient } from './shared-session.client.js';
import { getSharedSessionToken } from './shared-session.constants.js';
import { SharedSessionConfigError } from './shared-session.errors.js';
import { assertSharedSessionName, resolveSharedSessionOptions } from './shared-session.options.js';

/**
 * One {@link SharedSessionClient} per upstream service, injected with `@InjectSharedSession(name)`.
 * Register once per upstream (names must differ); the client is closed on application shutdown.
 * Options are checked at boot: a mistake fails the start with a message saying what to change.
 *
 * @example
 * @Module({
 *   imports: [
 *     SharedSessionModule.registerAsync({
 *       name: 'crm',
 *       inject: [ConfigService],
 *       useFactory: (config: ConfigService) => ({
 *         baseUrl: config.getOrThrow('CRM_URL'),
 *         login: async (ctx) => {
 *           const res = await ctx.post('/login', { user: 'svc', password: config.getOrThrow('CRM_PASSWORD') });
 *           if (!res.ok) throw new Error(`login refused: ${res.status}`);
 *         },
 *       }),
 *     }),
 *   ],
 * })
 * export class CrmModule {}
 */
@Module({})
export class SharedSessionModule {
  /**
   * Registers the client of one upstream with static options.
   * @throws SharedSessionConfigError when an option is wrong.
   */
  static register(options: SharedSessionModuleOptions): DynamicModule {
    const { isGlobal, ...clientOptions } = options;
    // Validate now, so that a mistake names itself at boot; each application gets its own client
    // (a module object imported by several test applications must not share a closed one).
    resolveSharedSessionOptions(clientOptions);
    const token = getSharedSessionToken(clientOptions.name);
    return {
      module: SharedSessionModule,
      global: isGlobal ?? false,
      providers: [{ provide: token, useFactory: () => new SharedSessionClient(clientOptions) }],
      exports: [token],
    };
  }

  /**
   * Registers the client of one upstream with options created by a factory, a class or an existing
   * provider (configuration, secrets, store clients made by other modules).
   * @throws SharedSessionConfigError when the name is wrong or not exactly one of `useFactory`,
   *   `useClass`, `useExisting` is given; the options themselves are checked when the factory runs.
   */
  static registerAsync(options: SharedSessionModuleAsyncOptions): DynamicModule {
    assertSharedSessionName(options?.name);
    const { name } = options;
    const given = [options.useFactory, options.useClass, options.useExisting].filter(Boolean);
    if (given.length !== 1) {
      throw new SharedSessionConfigError(
        name,
        'registerAsync needs exactly one of useFactory, useClass and useExisting',
      );
    }
    const token = getSharedSessionToken(name);
    const optionsToken = `${token}:options`;
    const providers: Provider[] = [
      {
        provide: token,
        inject: [optionsToken],
        useFactory: (clientOptions: SharedSessionOptions) =>
          new SharedSessionClient({ ...clientOptions, name }),
      },
    ];
    if (options.useFactory) {
      providers.push({
        provide: optionsToken,
        inject: options.inject ?? [],
        useFactory: options.useFactory as (...args: unknown[]) => SharedSessionOptions,
      });
    } else {
      const factoryClass = (options.useClass ?? options.useExisting)!;
      providers.push({
        provide: optionsToken,
        inject: [factoryClass],
        useFactory: (factory: SharedSessionOptionsFactory) => factory.createSharedSessionOptions(),
      });
      if (options.useClass) providers.push(options.useClass);
    }
    return {
      module: SharedSessionModule,
      global: options.isGlobal ?? false,
      imports: options.imports ?? [],
      providers,
      exports: [token],
    };
  }
}
