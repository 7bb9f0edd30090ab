import type { INestApplicationContext, Type } from '@nestjs/common';
import { APP_GUARD, type ModulesContainer } from '@nestjs/core';
import { ALLOW_ANONYMOUS_KEY, REQUIRE_SESSION_KEY, SESSION_MANAGER } from './session.constants.js';
import type { SessionRuntime } from './core/session-runtime.js';
import { SessionGuard } from './session.guard.js';
import { successStatusOf } from './session.metadata.js';
import { guardedBySession } from './session.hooks.js';
import { routesOf } from './session.routes.js';

/**
 * OpenAPI for session-guarded routes, without depending on `@nestjs/swagger`: the module writes the
 * metadata keys swagger reads (`swagger/apiSecurity`, `swagger/apiResponse`) on every route
 * `SessionGuard` protects, before swagger scans the app, and {@link applySessionSecurity} adds the
 * cookie security scheme, with the cookie name the module uses, to the document.
 */

/** Name of the security scheme guarded routes refer to. */
export const SESSION_SECURITY_SCHEME = 'session';

const API_SECURITY = 'swagger/apiSecurity';
const API_RESPONSE = 'swagger/apiResponse';
const API_EXCLUDE = 'swagger/apiExcludeEndpoint';

const DENIALS = {
  401: { description: 'A valid session is required' },
  403: { description: 'This session may not access this resource' },
  503: { description: 'Sessions are temporarily unavailable; please retry shortly' },
} as const;

type Handler = (...args: unknown[]) => unknown;

/** Whether an app-wide guard (`APP_GUARD`) is `SessionGuard` or a subclass of it. */
function globalSessionGuard(modules: ModulesContainer): boolean {
  for (const module of modules.values()) {
    for (const [token, wrapper] of module.providers) {
      if (typeof token !== 'string' || !token.startsWith(APP_GUARD)) continue;
      const type = wrapper.metatype as Type | null;
      if (type === SessionGuard || type?.prototype instanceof SessionGuard) return true;
    }
  }
  return false;
}

/**
 * Writes swagger's metadata on every route `SessionGuard` protects: the session cookie as its
 * security requirement, and its 401 / 503 answers (403 too when `@RequireSession(predicate)` may
 * refuse). Responses a route declares itself are kept; a route that declared none keeps its
 * success response. Runs when `SessionModule` is created, which is before swagger reads the app.
 */
export function describeGuardedRoutes(modules: ModulesContainer): void {
  const everyRoute = globalSessionGuard(modules);
  for (const [controller, handler] of routesOf(modules)) {
    const targets = [handler, controller];
    const requirement = firstMetadata(REQUIRE_SESSION_KEY, targets);
    const guarded =
      requirement !== undefined ||
      guardedBySession(handler) ||
      guardedBySession(controller) ||
      (everyRoute && firstMetadata(ALLOW_ANONYMOUS_KEY, targets) !== true);
    if (!guarded || Reflect.getMetadata(API_EXCLUDE, handler)) continue;
    describeRoute(handler, typeof requirement === 'function');
  }
}

function describeRoute(handler: Handler, mayForbid: boolean): void {
  const security: Record<string, string[]>[] = Reflect.getMetadata(API_SECURITY, handler) ?? [];
  if (!security.some((entry) => SESSION_SECURITY_SCHEME in entry)) {
    Reflect.defineMetadata(API_SECURITY, [...security, { [SESSION_SECURITY_SCHEME]: [] }], handler);
  }
  const declared: Record<string, unknown> | undefined = Reflect.getMetadata(API_RESPONSE, handler);
  // Swagger documents the success response only when a route declares no responses: keep it.
  const responses = declared ?? { [successStatusOf(handler)]: { description: '' } };
  const denials: Record<string, unknown> = { 401: DENIALS[401], 503: DENIALS[503] };
  if (mayForbid) denials[403] = DENIALS[403];
  Reflect.defineMetadata(API_RESPONSE, { ...denials, ...responses }, handler);
}

function firstMetadata(key: string, targets: object[]): unknown {
  for (const target of targets) {
    const value: unknown = Reflect.getMetadata(key, target);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** The part of an OpenAPI document {@link applySessionSecurity} writes to. */
export interface OpenApiDocumentLike {
  components?: { securitySchemes?: Record<string, unknown> };
}

/**
 * Adds the session cookie's security scheme (`in: cookie`, the name the module uses) to an OpenAPI
 * document, under {@link SESSION_SECURITY_SCHEME}, the name the guarded routes' requirements use.
 * @example
 * const document = applySessionSecurity(SwaggerModule.createDocument(app, config), app);
 * SwaggerModule.setup('docs', app, document);
 */
export function applySessionSecurity<D extends OpenApiDocumentLike>(
  document: D,
  app: Pick<INestApplicationContext, 'get'>,
): D {
  const runtime = app.get<SessionRuntime>(SESSION_MANAGER, { strict: false });
  const components = (document.components ??= {});
  components.securitySchemes = {
    ...components.securitySchemes,
    [SESSION_SECURITY_SCHEME]: {
      type: 'apiKey',
      in: 'cookie',
      name: runtime.options.cookie.name,
      description:
        runtime.options.mode === 'sealed'
          ? 'The sealed session cookie, set by the login route'
          : 'The session cookie, set by the login route',
    },
  };
  return document;
}
