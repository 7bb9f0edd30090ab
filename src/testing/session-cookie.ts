import type { INestApplicationContext } from '@nestjs/common';
import { SESSION_MANAGER } from '../session.constants.js';
import type { SessionRuntime } from '../core/session-runtime.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import { stringifySessionValue } from '../utils/json.js';

/**
 * Stores a session with the given data in the app's store and returns a `Cookie` header value
 * (`name=value`) that carries it: for tests that need a logged-in request without going through a
 * login route.
 * @example
 * const cookie = await createSessionCookie(app, { userId: '1', role: 'admin' });
 * await request(app.getHttpServer()).get('/admin').set('Cookie', cookie).expect(200);
 */
export async function createSessionCookie(
  app: INestApplicationContext,
  data: Record<string, unknown>,
): Promise<string> {
  const manager = app.get<SessionRuntime>(SESSION_MANAGER, { strict: false });
  const { options } = manager;
  const token = SessionTokenSigner.mint();
  const now = Date.now();
  const set: Record<string, string> = {};
  for (const key of Object.keys(data)) set[key] = stringifySessionValue(data[key]) as string;
  const top = data[options.userKey];
  const user =
    options.userField === undefined
      ? top
      : (top as Record<string, unknown> | undefined)?.[options.userField];
  await manager.store.save({
    kind: 'create',
    key: SessionTokenSigner.storageKey(token),
    set,
    unset: [],
    userId: typeof user === 'string' || typeof user === 'number' ? String(user) : null,
    createdAt: now,
    lastActiveAt: now,
    expiresAt: now + options.idleTimeout,
    absoluteExpiresAt: now + options.absoluteTimeout,
  });
  return `${options.cookie.name}=${manager.signer.sign(token)}`;
}
