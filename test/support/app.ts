import type { INestApplication, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { SessionModule, type SessionModuleOptions } from '../../src/index.js';
import { FixtureController } from '../fixtures/fixture.controller.js';

/** A secret good enough for tests (random-looking, 43 characters). */
export const TEST_SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';
export const OLD_SECRET = 'Zr8Yq3Wn6Tp1Vm4Xk9Lb2Hc7Fd5Gs0Ja8Ue3Oi6Nm1';

/** Boots the fixture app with SessionModule.forRoot(options). */
export async function createFixtureApp(
  options: Partial<SessionModuleOptions> = {},
  extra: ModuleMetadata = {},
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ secret: TEST_SECRET, ...options }), ...(extra.imports ?? [])],
    controllers: [FixtureController, ...(extra.controllers ?? [])],
    providers: extra.providers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
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
