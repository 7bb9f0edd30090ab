import { createParamDecorator, type ExecutionContext, type Type } from '@nestjs/common';
import { catchError, concatMap, finalize, isObservable } from 'rxjs';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import type { ModulesContainer } from '@nestjs/core';
import { REQUIRE_SESSION_KEY } from './session.constants.js';
import { isSessionRequest, loadedSession, sessionOfRequest } from './session.context.js';
import { toHttpException } from './session.errors.js';
import {
  NEST_REQUEST_PARAM,
  ORIGINAL_HANDLER,
  hiddenParamIndex,
  isHookedRoute,
  locksSession,
  routeInfo,
  takesParam,
  takesSession,
} from './session.metadata.js';
import { markRouteCommits } from './http/request-session.js';
import {
  guardedBySession,
  isThenable,
  methodsOf,
  replaceMethod,
  type Handler,
} from './session.hooks.js';

/**
 * Whether a route handler may use the session: a session parameter, a session guard, a lock, or
 * the request (`@Req()`, through which it can reach `req.session`).
 */
export function usesSession(controller: Type, handler: Handler): boolean {
  return (
    takesSession(controller, handler) ||
    takesParam(controller, handler, NEST_REQUEST_PARAM) ||
    locksSession(controller, handler) ||
    Reflect.getMetadata(REQUIRE_SESSION_KEY, handler) !== undefined ||
    Reflect.getMetadata(REQUIRE_SESSION_KEY, controller) !== undefined ||
    guardedBySession(handler) ||
    guardedBySession(controller)
  );
}

/**
 * The hidden last argument of a hooked handler: the request. Resolving it loads the session for
 * handlers that take it (Nest's own `@Session()` included) and marks a `@SessionLock()` route's
 * session for locking before anything loads it.
 */
const RouteExchange = createParamDecorator((_data: unknown, ctx: ExecutionContext) => {
  const req = ctx.getArgByIndex<object>(0);
  if (!isSessionRequest(req)) return req;
  // From here on the hooked handler commits the session (whoever loaded it: a guard perhaps).
  markRouteCommits(req);
  const route = routeInfo(ctx);
  if (!(route.usesSession || route.lock)) return req;
  // A locked route's session is read under the lock before the handler, also when `eager: true`
  // read it already (then it is read again under the lock).
  return loadedSession(ctx, () => req, true);
});

/**
 * Hooks the session lifecycle into exactly the routes that use the session, before Nest builds
 * its routes: the handler is replaced by one that runs it and then commits the session (before
 * Nest writes the response), or rolls the changes back when it throws. Nest passes the request as
 * one extra, hidden argument, which the hook removes before calling the handler.
 *
 * Why not an interceptor: Nest's interceptor pipeline (RxJS, a ReplaySubject and async-scope
 * binding per request) costs a session route about a fifth of a bare route's time; this hook costs
 * a function call. Routes that never touch the session run no session code at all.
 *
 * Runs from `SessionModule.configure()`, which Nest calls after scanning every module and before
 * registering routes. The hook does not depend on the app: several apps in one process (tests)
 * share it, each request finding its own app's session runtime.
 */
export function hookSessionRoutes(modules: ModulesContainer): void {
  for (const module of modules.values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller?.prototype) continue;
      for (const [owner, name, handler] of methodsOf(controller)) {
        if (isHookedRoute(handler)) continue;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        if (!usesSession(controller, handler)) continue;
        hookHandler(owner, name, handler, locksSession(controller, handler));
      }
    }
  }
}

/** Every route handler of the app's controllers, with its controller. */
export function* routesOf(modules: ModulesContainer): Generator<[Type, Handler]> {
  for (const module of modules.values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller?.prototype) continue;
      for (const [, , handler] of methodsOf(controller)) {
        if (Reflect.getMetadata(PATH_METADATA, handler) !== undefined) yield [controller, handler];
      }
    }
  }
}

/** Whether any route handler or controller of the app asks for `@SessionLock()`. */
export function anyRouteLocks(modules: ModulesContainer): boolean {
  for (const [controller, handler] of routesOf(modules)) {
    if (locksSession(controller, handler)) return true;
  }
  return false;
}

function hookHandler(owner: object, name: string, original: Handler, lock: boolean): void {
  const at = hiddenParamIndex(owner, name, original);
  replaceMethod(
    owner,
    name,
    original,
    at,
    ORIGINAL_HANDLER,
    RouteExchange(),
    (self, params, req) =>
      isSessionRequest(req as object)
        ? runHandler(original, self, params, req as object, lock)
        : original.apply(self, params),
  );
}

/**
 * Runs a hooked handler: commit after success, rollback after failure (unless `commitOnError`).
 * `lock`: the route's `@SessionLock()`, which an observable's values share until it ends.
 */
function runHandler(
  handler: Handler,
  self: unknown,
  params: unknown[],
  req: object,
  lock: boolean,
): unknown {
  let result: unknown;
  try {
    result = handler.apply(self, params);
  } catch (error) {
    return failed(req, error, false);
  }
  if (isObservable(result)) {
    // Under @SessionLock() each value is committed under the one lock, given back when the
    // stream ends (concurrency: 'serialize' alone gives it back after the first value).
    return result.pipe(
      concatMap((value) => Promise.resolve(finish(req, value, lock))),
      catchError((error: unknown) => failed(req, error, false)),
      finalize(() => void sessionOfRequest(req)?.release()),
    );
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(
      (value) => finish(req, value),
      (error: unknown) => failed(req, error, false),
    );
  }
  return finish(req, result);
}

/**
 * Commits the request's session, if anything loaded it; `value` when there was nothing to do.
 * `keepLock`: a value of an observable handler, more may follow.
 */
function finish(req: object, value: unknown, keepLock = false): unknown {
  const session = sessionOfRequest(req);
  if (!session?.isLoaded) return value;
  let settling: Promise<void> | undefined;
  try {
    settling = session.settle(true, keepLock);
  } catch (error) {
    return failed(req, error, true);
  }
  if (!settling) return value;
  return settling.then(
    () => value,
    (error: unknown) => failed(req, error, true),
  );
}

async function failed(req: object, error: unknown, committing: boolean): Promise<never> {
  const session = sessionOfRequest(req);
  if (committing) {
    // The commit itself failed: nothing of it stands (settle() has released the lock, or the
    // observable's finalize will).
    session?.rollback();
  } else {
    await session?.settle(false);
  }
  throw toHttpException(error);
}
