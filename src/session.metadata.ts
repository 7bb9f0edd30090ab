import type { ExecutionContext, Type } from '@nestjs/common';
import {
  GUARDS_METADATA,
  HTTP_CODE_METADATA,
  METHOD_METADATA,
  ROUTE_ARGS_METADATA,
} from '@nestjs/common/constants.js';
import { RequestMethod } from '@nestjs/common/enums/request-method.enum.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import { SESSION_LOCK_KEY, USES_SESSION_KEY } from './session.constants.js';
import type { Session } from './core/session-handle.js';

/** Decides whether a session may use a route: `true` to allow. May be async. */
export type SessionPredicate<T extends object = Record<string, unknown>> = (
  /** The session data, typed as the predicate declares it (keys may still be missing). */
  data: T,
  session: Session<T>,
) => boolean | Promise<boolean>;

type Handler = (...args: unknown[]) => unknown;

/** Param keys of Nest's own `@Session()` and `@Req()`: `<paramtype>:<index>`. */
export const NEST_SESSION_PARAM = `${RouteParamtypes.SESSION}:`;
export const NEST_REQUEST_PARAM = `${RouteParamtypes.REQUEST}:`;

/** The original handler behind one the route hook replaced. */
export const ORIGINAL_HANDLER = Symbol.for('nestjs-sessions:original-handler');

/** Whether `SessionModule` hooked this route handler (it commits the session after it returns). */
export function isHookedRoute(handler: object): boolean {
  return (handler as { [ORIGINAL_HANDLER]?: unknown })[ORIGINAL_HANDLER] !== undefined;
}

/** Whether one of a handler's parameters has a param key starting with `prefix`. */
export function takesParam(controller: Type, handler: Handler, prefix: string): boolean {
  const args: Record<string, unknown> =
    Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, handler.name) ?? {};
  return Object.keys(args).some((key) => key.startsWith(prefix));
}

/**
 * The index of a hidden argument the module appends to a handler: after every declared and
 * decorated parameter.
 */
export function hiddenParamIndex(owner: object, name: string, handler: Handler): number {
  const args: Record<string, { index: number }> =
    Reflect.getMetadata(ROUTE_ARGS_METADATA, owner.constructor, name) ?? {};
  return Math.max(handler.length, ...Object.values(args).map(({ index }) => index + 1));
}

/** Whether a handler takes the session as a parameter: ours (`@Session()`, `@SessionId()`) or Nest's. */
export function takesSession(controller: Type, handler: Handler): boolean {
  if (Reflect.getMetadata(USES_SESSION_KEY, handler) === true) return true;
  return takesParam(controller, handler, NEST_SESSION_PARAM);
}

/** The guards `@UseGuards()` put on a handler or a class (classes or instances). */
export function guardsOf(target: object): readonly unknown[] {
  return (Reflect.getMetadata(GUARDS_METADATA, target) as unknown[] | undefined) ?? [];
}

/** `@SessionLock()` on a handler or its class. */
export function locksSession(controller: object, handler: object): boolean {
  return (
    Reflect.getMetadata(SESSION_LOCK_KEY, handler) === true ||
    Reflect.getMetadata(SESSION_LOCK_KEY, controller) === true
  );
}

/** What a route needs from the session, read once from its decorators. */
export interface RouteSessionInfo {
  /** A handler parameter takes the session: load it before the handler runs. */
  readonly usesSession: boolean;
  /** `@SessionLock()` on the handler or its controller. */
  readonly lock: boolean;
  /** `SessionModule` hooked the handler: the session is committed after it returns. */
  readonly hooked: boolean;
}

const routes = new WeakMap<object, RouteSessionInfo>();

/** What the handler of a context needs from the session (read once per handler, then cached). */
export function routeInfo(context: ExecutionContext): RouteSessionInfo {
  const handler = context.getHandler();
  let info = routes.get(handler);
  if (!info) {
    const controller = context.getClass();
    info = {
      usesSession: takesSession(controller, handler as Handler),
      lock: locksSession(controller, handler),
      hooked: isHookedRoute(handler),
    };
    routes.set(handler, info);
  }
  return info;
}

/** The status a route answers on success: its `@HttpCode()`, else 201 for POST and 200 otherwise. */
export function successStatusOf(handler: object): number {
  const status: number | undefined = Reflect.getMetadata(HTTP_CODE_METADATA, handler);
  if (status !== undefined) return status;
  return Reflect.getMetadata(METHOD_METADATA, handler) === RequestMethod.POST ? 201 : 200;
}
