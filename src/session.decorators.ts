import {
  Inject,
  SetMetadata,
  UseGuards,
  applyDecorators,
  createParamDecorator,
  type ExecutionContext,
} from '@nestjs/common';
import {
  ALLOW_ANONYMOUS_KEY,
  ALLOW_CROSS_SITE_KEY,
  REQUIRE_SESSION_KEY,
  SESSION_LOCK_KEY,
  USES_SESSION_KEY,
} from './session.constants.js';
import { SessionGuard } from './session.guard.js';
import { SessionStore } from './interfaces/session-store.interface.js';
import type { Session as SessionContract } from './core/session-handle.js';
import { loadedSession } from './session.context.js';
import type { SessionPredicate } from './session.metadata.js';

export type { SessionPredicate };

/** Marks the method as one that takes the session, so that `SessionModule` hooks it. */
function usesSession(target: object, key: string | symbol | undefined): void {
  if (key === undefined) return;
  const method = (target as Record<string | symbol, unknown>)[key];
  if (typeof method === 'function') Reflect.defineMetadata(USES_SESSION_KEY, true, method);
}

/** The session of a request: see {@link SessionContract}. */
export type Session<T extends object = Record<string, unknown>> = SessionContract<T>;

export const Session = createParamDecorator(
  (key: string | undefined, ctx: ExecutionContext) =>
    loadedSession(ctx, (session) => (key === undefined ? session : session.get(key)), true),
  [usesSession],
);

/** The request's session id (the server-side id, never the cookie token). */
export const SessionId = createParamDecorator(
  (_key: unknown, ctx: ExecutionContext) => loadedSession(ctx, (session) => session.id, true),
  [usesSession],
);

/**
 * Requires a stored session (401 without one) and, with a predicate, that it passes (403 when it
 * returns false). Applies {@link SessionGuard}.
 * @example @RequireSession((s: UserSession) => s.role === 'admin')
 */
export function RequireSession<T extends object = Record<string, unknown>>(
  predicate?: SessionPredicate<T>,
): MethodDecorator & ClassDecorator {
  return applyDecorators(
    SetMetadata(REQUIRE_SESSION_KEY, predicate ?? true),
    UseGuards(SessionGuard),
  );
}

/** Lets a route through a global `SessionGuard` (`APP_GUARD`) without a session. */
export const AllowAnonymous = (): MethodDecorator & ClassDecorator =>
  SetMetadata(ALLOW_ANONYMOUS_KEY, true);

/**
 * Exempts a route (or a controller) from `SessionOriginGuard`: for requests that other sites send
 * on purpose and that prove themselves otherwise, such as signed webhooks.
 */
export const AllowCrossSite = (): MethodDecorator & ClassDecorator =>
  SetMetadata(ALLOW_CROSS_SITE_KEY, true);

/**
 * Runs the route's session section under the session's lock, whatever the module's `concurrency`:
 * requests of the same session take turns (across instances, through the store), so
 * read-modify-write of one key is safe. Requests of other sessions never wait. The lock is taken
 * before the session is loaded and released after the commit; waiting longer than `lockTimeout`
 * answers 409. A session read before the lock (`eager: true`, an earlier GraphQL resolver of the
 * request) is read again under it; one already changed by the request is refused with 409. On a
 * GraphQL resolver, the lock holds until the request's commit.
 * @example
 * @Post('cart/items') @SessionLock()
 * add(@Session() s: Session<Cart>) { s.data.items = [...(s.data.items ?? []), item]; }
 */
export const SessionLock = (): MethodDecorator & ClassDecorator =>
  SetMetadata(SESSION_LOCK_KEY, true);

/**
 * Injects the module's session store (token {@link SessionStore}): the store in `'store'` mode, the
 * revocation store in `'sealed'` mode.
 * @example constructor(@InjectSessionStore() private readonly store: SessionStore) {}
 */
export const InjectSessionStore = (): PropertyDecorator & ParameterDecorator =>
  Inject(SessionStore);
