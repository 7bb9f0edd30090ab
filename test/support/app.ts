import { afterEach } from '@jest/globals';
import type { INestApplication, LoggerService, ModuleMetadata, Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import request from 'supertest';
import { SessionModule, type SessionModuleOptions } from '../../src/index.js';
import { FixtureController } from '../fixtures/fixture.controller.js';

/** A secret good enough for tests (random-looking, 43 characters). */
export const TEST_SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';
export const OLD_SECRET = 'Zr8Yq3Wn6Tp1Vm4Xk9Lb2Hc7Fd5Gs0Ja8Ue3Oi6Nm1';

/** The HTTP adapters the e2e specs run on. */
export type TestAdapter = 'express' | 'fastify';

/**
 * The adapter of this test run: `SESSION_TEST_ADAPTER=fastify` (the `e2e-fastify` Jest project)
 * runs the e2e specs on Fastify; Express otherwise.
 */
export const TEST_ADAPTER: TestAdapter =
  process.env.SESSION_TEST_ADAPTER === 'fastify' ? 'fastify' : 'express';

/**
 * Creates and initialises a Nest application from a compiled testing module on the run's adapter
 * (Fastify needs `ready()` before supertest can use its server).
 */
export async function initApp(
  moduleRef: { createNestApplication(...args: unknown[]): INestApplication },
  options: FixtureAppSetup = {},
  adapter: TestAdapter = TEST_ADAPTER,
): Promise<INestApplication> {
  const appOptions = { logger: options.logger ?? false };
  const app =
    adapter === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(options.fastify), appOptions)
      : moduleRef.createNestApplication(appOptions);
  options.beforeInit?.(app);
  await app.init();
  if (adapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return app;
}

/** How {@link createFixtureApp} starts the app. */
export interface FixtureAppSetup {
  /** The app's logger. @default false (silent) */
  logger?: LoggerService | false;
  /** Runs before `init()`: Express middleware, say. */
  beforeInit?(app: INestApplication): void;
  /** Options of the Fastify instance, when the run is on Fastify. */
  fastify?: ConstructorParameters<typeof FastifyAdapter>[0];
}

/** Boots the fixture app with SessionModule.forRoot(options). */
export async function createFixtureApp(
  options: Partial<SessionModuleOptions> = {},
  extra: ModuleMetadata = {},
  setup: FixtureAppSetup = {},
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ secret: TEST_SECRET, ...options }), ...(extra.imports ?? [])],
    controllers: [FixtureController, ...(extra.controllers ?? [])],
    providers: extra.providers ?? [],
  }).compile();
  return initApp(moduleRef as never, setup);
}

/**
 * For a spec that boots one app per test, with a guard on every route: `boot(options)` starts the
 * fixture app with `controller` and `guard` as `APP_GUARD`; the app is closed after its test.
 */
export function guardedAppPerTest(
  controller: Type,
  guard: Type,
): (options?: Partial<SessionModuleOptions>) => Promise<INestApplication> {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });
  return async (options = {}) =>
    (app = await createFixtureApp(options, {
      controllers: [controller],
      providers: [{ provide: APP_GUARD, useClass: guard }],
    }));
}

/** The session cookie (`name=value`) from a response, or undefined. */
export function sessionCookie(res: request.Response, name = 'sid'): string | undefined {
  const header = res.headers['set-cookie'] as unknown as string[] | undefined;
  const line = header?.find((c) => c.startsWith(`${name}=`));
  return line?.split(';')[0];
}

/** The raw Set-Cookie line of the session cookie. */
export function sessionSetCookie(res: request.Response, name = 'sid'): string | undefined {
  const header = res.headers['set-cookie'] as unknown as string[] | undefined;
  return header?.find((c) => c.startsWith(`${name}=`));
}
