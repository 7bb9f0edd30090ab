import type { INestApplicationContext } from '@nestjs/common';
import { SESSION_MANAGER } from '../session.constants.js';
import type { SessionRuntime } from '../core/session-runtime.js';
import { chunkName, chunkValue } from '../transport/cookie-chunks.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import { stringifySessionValue } from '../utils/json.js';

/**
 * Creates a session with the given data, as a login would, and returns a `Cookie` header value
 * (`name=value`) that carries it: for tests that need a logged-in request without going through a
 * login route. In store mode the session is saved in the app's store; in sealed mode the cookie
 * is the session (split over `name.1`, … when `cookieChunks` allows and it needs more room).
 * @example
 * const cookie = await createSessionCookie(app, { userId: '1', role: 'admin' });
 * await request(app.getHttpServer()).get('/admin').set('Cookie', cookie).expect(200);
 */
export async function createSessionCookie(
  app: INestApplicationContext,
  data: Record<string, unknown>,
): Promise<string> {
  const runtime = app.get<SessionRuntime>(SESSION_MANAGER, { strict: false });
  const { options, backend } = runtime;
  const token = SessionTokenSigner.mint();
  const now = runtime.now();
  const set: Record<string, string> = {};
  for (const key of Object.keys(data)) set[key] = stringifySessionValue(data[key]) as string;
  const top = data[options.userKey];
  const user =
    options.userField === undefined
      ? top
      : (top as Record<string, unknown> | undefined)?.[options.userField];
  const userId = typeof user === 'string' || typeof user === 'number' ? String(user) : null;
  const idle = userId === null ? options.anonymousIdleTimeout : options.idleTimeout;
  const write = {
    kind: 'create' as const,
    key: SessionTokenSigner.storageKey(token),
    set,
    unset: [],
    userId,
    createdAt: now,
    lastActiveAt: now,
    expiresAt: now + Math.min(idle, options.absoluteTimeout),
    absoluteExpiresAt: now + options.absoluteTimeout,
  };
  const parts =
    (await backend.save({ write, texts: () => set, previousUser: null })) ??
    backend.cookieFor(token);
  const name = options.cookie.name;
  return parts.map((_, i) => `${chunkName(name, i)}=${chunkValue(parts, i)}`).join('; ');
}
