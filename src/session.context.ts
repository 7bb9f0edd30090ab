import type { ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { ALLOW_CROSS_SITE_KEY } from './session.constants.js';
import { SessionError, toGraphQLError, toHttpException } from './session.errors.js';
import { SessionHandle } from './core/session-handle.js';
import type { SessionRuntime } from './core/session-runtime.js';
import { isHookedRoute, routeInfo } from './session.metadata.js';
import { existingSession, isSessionRequest, sessionOf } from './http/request-session.js';
import type { RequestLike } from './http/request-info.js';
import {
  SocketSessionParam,
  cookieHeaderOf,
  toSocketError,
  requireHandshake,
  type SocketHandshake,
} from './session.sockets.js';

/**
 * The one bridge from a Nest `ExecutionContext` to a request, a response and a session handle,
 * for every context type. Guards and decorators use it and never import each other.
 */

/**
 * The request and response behind a context: HTTP (Express or Fastify), a GraphQL operation over
 * HTTP, or a WebSocket message (its client's handshake request, and no response).
 */
export function exchangeOf(context: ExecutionContext): { req: object; res: object | undefined } {
  switch (context.getType<string>()) {
    case 'http':
      // switchToHttp() allocates three closures per call.
      return { req: context.getArgByIndex(0), res: context.getArgByIndex(1) };
    case 'graphql': {
      // Apollo on Express puts { req, res } in the GraphQL context; Mercurius { request, reply }.
      const gql = (context.getArgByIndex(2) ?? {}) as Record<string, unknown>;
      const req = (gql.req ?? gql.request) as object | undefined;
      if (req) return { req, res: (gql.res ?? gql.reply) as object | undefined };
      break;
    }
    case 'ws':
      return { req: requireHandshake(context.getArgByIndex(0)), res: undefined };
  }
  throw new SessionError(
    'SESSION_UNSUPPORTED',
    `Sessions are not available in a '${context.getType()}' context here: use SessionService to resolve a session from a Cookie header`,
  );
}

/**
 * The request when it is one a cross-site check must look at: an HTTP request with a method that
 * may change state, on a route not marked `@AllowCrossSite()`. Otherwise `undefined`: browsers
 * send cookies with HTTP requests only (a GraphQL or WebSocket gateway checks its own).
 */
export function stateChangingRequest(
  context: ExecutionContext,
  reflector: Reflector,
): RequestLike | undefined {
  if (context.getType() !== 'http') return undefined;
  const req = context.getArgByIndex<RequestLike>(0);
  if (SAFE_METHODS.has(req.method ?? 'GET')) return undefined;
  const exempt = reflector.getAllAndOverride<boolean>(ALLOW_CROSS_SITE_KEY, [
    context.getHandler(),
    context.getClass(),
  ]);
  return exempt ? undefined : req;
}

/** Methods that must not change state, and so need no cross-site check (RFC 9110 §9.2.1). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * A session the GraphQL context carries itself, as `session`: the one `SessionService` resolved
 * from the Cookie header of a subscription's WebSocket connection (graphql-ws `onConnect`). It
 * has no response, so nothing commits it: read-only.
 */
function carriedSession(context: ExecutionContext): SessionHandle | undefined {
  if (context.getType<string>() !== 'graphql') return undefined;
  const gql = context.getArgByIndex<Record<string, unknown> | undefined>(2);
  return gql?.session instanceof SessionHandle ? gql.session : undefined;
}

/**
 * The session behind a context, created on first use, with the route's `@SessionLock()` applied.
 * A WebSocket message has no request the module serves: its session is loaded afresh, from the
 * handshake's Cookie header, by `runtime` (the caller's module), for every message. In GraphQL,
 * the context's own `session` when it carries one (a subscription).
 * @throws {Error} when no `SessionModule` serves the request.
 */
export function sessionFor(
  context: ExecutionContext,
  { req, res }: { req: object; res: object | undefined } = exchangeOf(context),
  runtime?: SessionRuntime,
): SessionHandle {
  if (context.getType() === 'ws' && runtime) {
    const cookieHeader = cookieHeaderOf(req as SocketHandshake);
    const handle = new SessionHandle(runtime, undefined, { cookieHeader });
    if (routeInfo(context).lock) handle.requireLock();
    return handle;
  }
  const carried = carriedSession(context);
  if (carried) return carried;
  const type = context.getType<string>();
  const route = type === 'http' || type === 'graphql' ? routeInfo(context) : undefined;
  const session = sessionOf<SessionHandle>(req, res, type === 'http' && route!.hooked);
  if (!session) {
    throw new SessionError(
      'SESSION_CONFIG_INVALID',
      'No session on this request: import SessionModule.forRoot() in the application module',
    );
  }
  if (route?.lock) session.handle.requireLock();
  return session.handle;
}

/** The session of a request if anything created it (for the route hook). */
export function sessionOfRequest(req: object): SessionHandle | undefined {
  return existingSession<SessionHandle>(req);
}

/** Whether a `SessionModule` serves this request. */
export { isSessionRequest };

/** How guards answer in a WebSocket gateway (an `exception` event the client can read). */
export { socketRefusal } from './session.sockets.js';

/**
 * What a session failure becomes in a context: an HTTP exception (503 store down, 409 lock busy,
 * …); in a GraphQL resolver the {@link SessionGraphQLError} with the matching `extensions.code`;
 * in a WebSocket gateway the error its `exception` event carries. Errors that are not the
 * library's pass unchanged.
 */
export function contextError(error: unknown, context: ExecutionContext): unknown {
  const type = context.getType<string>();
  if (type === 'ws') return toSocketError(error);
  const mapped = toHttpException(error);
  return type === 'graphql' ? toGraphQLError(mapped) : mapped;
}

/**
 * The context's session, loaded (when `load`), and passed through `pick`; a promise of it while
 * the store is read, which Nest settles before the handler runs. Load failures become HTTP errors,
 * or GraphQL errors in a resolver ({@link contextError}).
 */
export function loadedSession<R>(
  context: ExecutionContext,
  pick: (session: SessionHandle) => R,
  load: boolean,
): R | Promise<R> {
  if (context.getType() === 'ws') return socketParam(context, pick) as R;
  let session: SessionHandle | undefined;
  let loading: Promise<void> | undefined;
  try {
    session = sessionFor(context);
    loading = load ? session.loadNow() : undefined;
  } catch (error) {
    throw loadFailed(error, context, session);
  }
  if (!loading) return pick(session);
  const loaded = session;
  return loading.then(
    () => pick(loaded),
    (error: unknown) => {
      throw loadFailed(error, context, loaded);
    },
  );
}

/**
 * A session parameter that could not be resolved. In GraphQL its resolver fails: as when a
 * session resolver throws, none of the request's changes are saved.
 */
function loadFailed(error: unknown, context: ExecutionContext, session?: SessionHandle): unknown {
  if (session && context.getType<string>() === 'graphql') session.failAtEnd();
  return contextError(error, context);
}

/** In a gateway, the message handler hooked by `SessionModule` loads the session and fills it in. */
function socketParam<R>(
  context: ExecutionContext,
  pick: (session: SessionHandle) => R,
): SocketSessionParam<SessionHandle> {
  if (!isHookedRoute(context.getHandler())) {
    throw new SessionError(
      'SESSION_CONFIG_INVALID',
      'No session on this message: import SessionModule.forRoot() in the application module',
    );
  }
  return new SocketSessionParam(pick);
}

/**
 * A guard lets a loaded session through. On a route whose handler does not commit the session (a
 * global guard on a route that does not use it), nothing commits after the handler: record the
 * activity, re-issue a rotated-key cookie and release a lock taken for the guard now, so the lock
 * is not held through the handler. `failure` maps what that throws. In a GraphQL resolver the
 * response's end settles the request's one session, once for all its resolvers: a commit here
 * would save what earlier resolvers changed before the request's outcome is known.
 */
export function admitSession(
  session: SessionHandle,
  context: ExecutionContext,
  failure: (error: unknown) => unknown,
): true | Promise<true> {
  const type = context.getType<string>();
  if (type === 'graphql' || (type === 'http' && routeInfo(context).hooked)) return true;
  // settle() releases the lock whether it succeeds or fails.
  let settling: Promise<void> | undefined;
  try {
    settling = session.settle(true);
  } catch (error) {
    throw failure(error);
  }
  if (!settling) return true;
  return settling.then(
    () => true as const,
    (error: unknown) => {
      throw failure(error);
    },
  );
}

/**
 * A guard refuses a request: the handler will not run, so nothing else releases a lock taken while
 * loading. Releases it, if held, then throws `error`. In a GraphQL resolver the lock is the
 * request's, which the response's end gives back: other resolvers of the request still run.
 */
export function refuseSession(
  session: SessionHandle,
  error: unknown,
  context: ExecutionContext,
): never | Promise<never> {
  if (!session.holdsLock || context.getType<string>() === 'graphql') throw error;
  return session.release().then(() => {
    throw error;
  });
}
