import { createParamDecorator, type ExecutionContext, type Type } from '@nestjs/common';
import type { ModulesContainer } from '@nestjs/core';
import { catchError, isObservable } from 'rxjs';
import { REQUIRE_SESSION_KEY } from './session.constants.js';
import { isSessionRequest, sessionOfRequest } from './session.context.js';
import { SessionError, toGraphQLError, toHttpException } from './session.errors.js';
import {
  guardedBySession,
  isThenable,
  methodsOf,
  replaceMethod,
  type Handler,
} from './session.hooks.js';
import { hiddenParamIndex, locksSession, takesSession } from './session.metadata.js';

/**
 * The session lifecycle in GraphQL resolvers (Apollo, Mercurius, any driver of `@nestjs/graphql`),
 * without importing `@nestjs/graphql` or `graphql`: resolvers are found by the metadata keys
 * `@nestjs/graphql` sets on their methods.
 *
 * The rule: **one request, one session, one commit.** Every resolver of a GraphQL request (all the
 * operations of a batched one included) sees the same session; its changes are committed once,
 * as the response ends (so the cookie goes out with it), unless a resolver that uses the session
 * threw, or the response has an error status: then none of them are saved. A GraphQL response is
 * a 200 even when resolvers fail, so the hook below is what tells the response's end.
 *
 * Why not per operation or per resolver: the fields of a query, and the operations of a batch,
 * run concurrently on one session object, so "the changes of one resolver" has no well-defined
 * boundary to roll back to; a request-wide rule is the one that holds under concurrency.
 */

/** Set by `@Query()`, `@Mutation()`, `@Subscription()` (`graphql:resolver_type`). */
const RESOLVER_TYPE_METADATA = 'graphql:resolver_type';
/** Set by `@ResolveField()`. */
const RESOLVER_PROPERTY_METADATA = 'graphql:resolve_property';
/** Set by `@ResolveReference()` (federation). */
const RESOLVER_REFERENCE_METADATA = 'graphql:resolve_reference';
/** The provider of `GraphQLModule`'s options. */
const GRAPHQL_MODULE_OPTIONS = 'GqlModuleOptions';

/** The original method behind one this hook replaced. */
const ORIGINAL_RESOLVER = Symbol.for('nestjs-sessions:original-resolver');

/** Whether a method is a GraphQL resolver (query, mutation, subscription, field, reference). */
function isResolverMethod(method: object): boolean {
  return (
    Reflect.getMetadata(RESOLVER_TYPE_METADATA, method) !== undefined ||
    Reflect.getMetadata(RESOLVER_PROPERTY_METADATA, method) === true ||
    Reflect.getMetadata(RESOLVER_REFERENCE_METADATA, method) === true
  );
}

/** Whether a guard of the library checks the session before the resolver runs. */
function sessionGuarded(resolver: Type, method: Handler): boolean {
  return (
    Reflect.getMetadata(REQUIRE_SESSION_KEY, method) !== undefined ||
    Reflect.getMetadata(REQUIRE_SESSION_KEY, resolver) !== undefined ||
    guardedBySession(method) ||
    guardedBySession(resolver)
  );
}

/**
 * The hidden last argument of a hooked resolver: the request behind the GraphQL context (Apollo's
 * `req`, Mercurius' `request`), or `undefined`. It reads no session.
 */
const ResolverRequest = createParamDecorator((_data: unknown, ctx: ExecutionContext) => {
  const gql = ctx.getArgByIndex<Record<string, unknown> | undefined>(2);
  return (gql?.req ?? gql?.request) as object | undefined;
});

/**
 * Hooks the resolvers that use the session (`@Session()`, `@SessionId()`, `SessionGuard`,
 * `@RequireSession()` on the method or its class): when one throws (or its promise rejects, or
 * its observable errors), the request's session is rolled back as the response ends instead of
 * committed, and a library error it threw becomes a GraphQL error with `extensions.code`.
 * Resolvers that do not use the session are left as they are: they run no session code.
 *
 * Runs from `SessionModule.configure()`, before `GraphQLModule` builds its schema (on module
 * init), which takes the methods from the resolvers' prototypes. Returns what is wrong when a
 * session guard sits on a field resolver that Nest would serve without running it (the module
 * refuses to boot then: an admin-only field would be served to anyone).
 */
export function hookSessionResolvers(modules: ModulesContainer): string | undefined {
  const unguardedFields: string[] = [];
  let options: { fieldResolverEnhancers?: readonly string[] } | undefined;
  for (const module of modules.values()) {
    const gqlOptions = module.providers.get(GRAPHQL_MODULE_OPTIONS)?.instance as
      typeof options | undefined;
    if (gqlOptions) options = gqlOptions;
  }
  for (const [resolver, owner, name, method] of resolverMethodsOf(modules)) {
    const guarded = sessionGuarded(resolver, method);
    if (!guarded && !takesSession(resolver, method)) continue;
    if (guarded && Reflect.getMetadata(RESOLVER_PROPERTY_METADATA, method) === true) {
      unguardedFields.push(`${resolver.name}.${name}`);
    }
    if (!isHookedResolver(method)) hookResolver(owner, name, method);
  }
  if (!options || options.fieldResolverEnhancers?.includes('guards') || !unguardedFields.length) {
    return undefined;
  }
  return (
    `SessionGuard / @RequireSession() on the field resolvers ${unguardedFields.join(', ')} would not run: ` +
    "Nest runs guards on field resolvers only with fieldResolverEnhancers: ['guards'] in the GraphQLModule options. Add it, or move the guard to the query."
  );
}

/** Whether any GraphQL resolver of the app (a method or its class) asks for `@SessionLock()`. */
export function anyResolverLocks(modules: ModulesContainer): boolean {
  for (const [resolver, , , method] of resolverMethodsOf(modules)) {
    if (locksSession(resolver, method)) return true;
  }
  return false;
}

/** Every resolver method of the app's providers, with its class and the prototype it is on. */
function* resolverMethodsOf(modules: ModulesContainer): Generator<[Type, object, string, Handler]> {
  for (const module of modules.values()) {
    for (const wrapper of module.providers.values()) {
      const resolver = wrapper.metatype as Type | null;
      if (typeof resolver !== 'function' || !resolver.prototype) continue;
      for (const [owner, name, method] of methodsOf(resolver)) {
        // A hooked method carries the original's metadata (another app in this process hooked it).
        if (isResolverMethod(method)) yield [resolver, owner, name, method];
      }
    }
  }
}

function isHookedResolver(method: object): boolean {
  return (method as { [ORIGINAL_RESOLVER]?: unknown })[ORIGINAL_RESOLVER] !== undefined;
}

function hookResolver(owner: object, name: string, original: Handler): void {
  const at = hiddenParamIndex(owner, name, original);
  replaceMethod(
    owner,
    name,
    original,
    at,
    ORIGINAL_RESOLVER,
    ResolverRequest(),
    (self, params, req) =>
      isSessionRequest(req as object | undefined)
        ? runResolver(original, self, params, req as object)
        : original.apply(self, params),
  );
}

/** Runs a hooked resolver; its failure, however it comes, marks the request's session. */
function runResolver(resolver: Handler, self: unknown, params: unknown[], req: object): unknown {
  let result: unknown;
  try {
    result = resolver.apply(self, params);
  } catch (error) {
    throw failed(req, error);
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(undefined, (error: unknown) => {
      throw failed(req, error);
    });
  }
  if (isObservable(result)) {
    return result.pipe(
      catchError((error: unknown) => {
        throw failed(req, error);
      }),
    );
  }
  return result;
}

/** The request's session rolls back at the end; returns the error to throw. */
function failed(req: object, error: unknown): unknown {
  sessionOfRequest(req)?.failAtEnd();
  return error instanceof SessionError ? toGraphQLError(toHttpException(error)) : error;
}
