import type { Type } from '@nestjs/common';
import {
  GUARDS_METADATA,
  INTERCEPTORS_METADATA,
  PATH_METADATA,
  ROUTE_ARGS_METADATA,
} from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import type { ModulesContainer } from '@nestjs/core';
import { REQUIRE_SESSION_KEY, SESSION_LOCK_KEY, USES_SESSION_KEY } from './session.constants.js';
import { SessionGuard } from './session.guard.js';
import { SessionInterceptor } from './session.interceptor.js';

const NEST_SESSION_PARAM = `${RouteParamtypes.SESSION}:`;

function guardedBySession(target: object): boolean {
  const guards: unknown[] = Reflect.getMetadata(GUARDS_METADATA, target) ?? [];
  return guards.some(
    (guard) =>
      guard instanceof SessionGuard ||
      (typeof guard === 'function' &&
        (guard === SessionGuard || guard.prototype instanceof SessionGuard)),
  );
}

/** Whether a handler takes the session as a parameter: ours (`@Session()`, `@SessionId()`) or Nest's. */
export function takesSession(controller: Type, handler: (...args: unknown[]) => unknown): boolean {
  if (Reflect.getMetadata(USES_SESSION_KEY, handler) === true) return true;
  const args: Record<string, unknown> =
    Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, handler.name) ?? {};
  return Object.keys(args).some((key) => key.startsWith(NEST_SESSION_PARAM));
}

/** Whether a route handler uses the session: a session parameter, a session guard, a lock. */
function usesSession(controller: Type, handler: (...args: unknown[]) => unknown): boolean {
  return (
    takesSession(controller, handler) ||
    Reflect.getMetadata(SESSION_LOCK_KEY, handler) === true ||
    Reflect.getMetadata(SESSION_LOCK_KEY, controller) === true ||
    Reflect.getMetadata(REQUIRE_SESSION_KEY, handler) !== undefined ||
    Reflect.getMetadata(REQUIRE_SESSION_KEY, controller) !== undefined ||
    guardedBySession(handler) ||
    guardedBySession(controller)
  );
}

/**
 * Binds the session interceptor (load before, commit after) to exactly the routes that use the
 * session, before Nest builds its routes. A global interceptor would cost every request Nest's
 * interceptor pipeline; routes that never touch the session now run no session code at all.
 *
 * Runs from `SessionModule.configure()`, which Nest calls after scanning every module and before
 * registering routes. The interceptor goes in as an instance, first in the handler's list, so it
 * wraps the route's own interceptors.
 */
export function bindSessionInterceptor(
  modules: ModulesContainer,
  interceptor: SessionInterceptor,
): void {
  for (const module of modules.values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      if (!controller?.prototype) continue;
      for (const handler of routeHandlers(controller)) {
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        if (!usesSession(controller, handler)) continue;
        // Another app in this process (tests) may have bound its own instance: Nest reads this
        // list when it registers routes, so replacing it cannot affect an app already running.
        const others = (
          (Reflect.getMetadata(INTERCEPTORS_METADATA, handler) as unknown[] | undefined) ?? []
        ).filter((bound) => !(bound instanceof SessionInterceptor));
        Reflect.defineMetadata(INTERCEPTORS_METADATA, [interceptor, ...others], handler);
      }
    }
  }
}

/** Every method of a controller, inherited ones included (as Nest's own route scan). */
function* routeHandlers(controller: Type): Generator<(...args: unknown[]) => unknown> {
  const seen = new Set<string>();
  for (
    let prototype = controller.prototype as object | null;
    prototype && prototype !== Object.prototype;
    prototype = Object.getPrototypeOf(prototype) as object | null
  ) {
    for (const name of Object.getOwnPropertyNames(prototype)) {
      if (name === 'constructor' || seen.has(name)) continue;
      seen.add(name);
      const value = Object.getOwnPropertyDescriptor(prototype, name)?.value as unknown;
      if (typeof value === 'function') yield value as (...args: unknown[]) => unknown;
    }
  }
}
