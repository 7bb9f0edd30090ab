import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ALLOW_ANONYMOUS_KEY, REQUIRE_SESSION_KEY, SESSION_MANAGER } from './session.constants.js';
import {
  admitSession,
  contextError,
  exchangeOf,
  refuseSession,
  sessionFor,
  socketRefusal,
} from './session.context.js';
import type { SessionPredicate } from './session.metadata.js';
import {
  SessionForbiddenException,
  SessionStoreUnavailableError,
  SessionUnauthorizedException,
  SessionUnavailableException,
} from './session.errors.js';
import type { SessionHandle } from './core/session-handle.js';
import type { SessionRuntime } from './core/session-runtime.js';

interface GuardRouteOptions {
  readonly allowAnonymous: boolean;
  readonly predicate: SessionPredicate | undefined;
}

/** Why {@link SessionGuard} refused a request. */
export type SessionDenialReason = 'missing' | 'forbidden' | 'unavailable';

/**
 * Lets a request through only with a stored, unexpired session: 401 without one, 403 when the
 * route's `@RequireSession(predicate)` returns false, 503 when the store is down. Use it with
 * `@UseGuards(SessionGuard)`, through `@RequireSession()`, or for every route as `APP_GUARD`
 * (routes marked `@AllowAnonymous()` are then let through).
 *
 * In a GraphQL resolver the same refusals are GraphQL errors with `extensions.code`
 * `UNAUTHENTICATED`, `FORBIDDEN` and `SERVICE_UNAVAILABLE` (a `SessionGraphQLError`).
 *
 * Subclass it to change the responses: override {@link SessionGuard.createException}.
 */
@Injectable()
export class SessionGuard implements CanActivate {
  private readonly routes = new WeakMap<object, GuardRouteOptions>();

  constructor(
    protected readonly reflector: Reflector,
    @Inject(SESSION_MANAGER) protected readonly sessions: SessionRuntime,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const route = this.routeOptions(context);
    if (route.allowAnonymous || this.shouldSkip(context)) return true;
    let session: SessionHandle;
    let loading: Promise<void> | undefined;
    try {
      session = sessionFor(context, this.getRequestResponse(context), this.sessions);
      loading = session.loadNow();
    } catch (error) {
      throw this.failure(error, context);
    }
    if (!loading) return this.decide(session, route, context);
    return loading.then(
      () => this.decide(session, route, context),
      (error: unknown) => {
        throw this.failure(error, context);
      },
    );
  }

  /** Lets a loaded session through, or throws; synchronous unless a predicate or a write waits. */
  private decide(
    session: SessionHandle,
    route: GuardRouteOptions,
    context: ExecutionContext,
  ): boolean | Promise<boolean> {
    if (session.isNew) return this.deny(session, 'missing', context);
    const { predicate } = route;
    if (predicate) {
      return Promise.resolve(predicate(session.data as Record<string, unknown>, session)).then(
        (allowed) =>
          allowed ? this.admit(session, context) : this.deny(session, 'forbidden', context),
      );
    }
    return this.admit(session, context);
  }

  private admit(session: SessionHandle, context: ExecutionContext): boolean | Promise<boolean> {
    return admitSession(session, context, (error) => this.failure(error, context));
  }

  private deny(
    session: SessionHandle,
    reason: SessionDenialReason,
    context: ExecutionContext,
  ): never | Promise<never> {
    return refuseSession(
      session,
      contextError(this.createException(reason, context), context),
      context,
    );
  }

  /**
   * A store that is down answers through {@link createException}; other session errors map to HTTP
   * (in a gateway, to an `exception` event). In a GraphQL resolver, an HTTP exception becomes the
   * GraphQL error with the matching `extensions.code` (`UNAUTHENTICATED`, `FORBIDDEN`,
   * `SERVICE_UNAVAILABLE`).
   */
  private failure(error: unknown, context: ExecutionContext): unknown {
    if (error instanceof SessionStoreUnavailableError)
      return contextError(this.createException('unavailable', context), context);
    return contextError(error, context);
  }

  /** The route's `@AllowAnonymous()` and `@RequireSession()` settings, read once per handler. */
  private routeOptions(context: ExecutionContext): GuardRouteOptions {
    const handler = context.getHandler();
    let options = this.routes.get(handler);
    if (!options) {
      const targets = [handler, context.getClass()];
      const predicate = this.reflector.getAllAndOverride<SessionPredicate | true | undefined>(
        REQUIRE_SESSION_KEY,
        targets,
      );
      options = {
        allowAnonymous:
          this.reflector.getAllAndOverride<boolean>(ALLOW_ANONYMOUS_KEY, targets) === true,
        predicate: typeof predicate === 'function' ? predicate : undefined,
      };
      this.routes.set(handler, options);
    }
    return options;
  }

  /**
   * The request and response whose session the guard checks. Override for a context the library
   * does not know (a custom transport); the default handles HTTP on Express and Fastify, GraphQL
   * over HTTP, and WebSocket messages (the client's handshake request; no response).
   */
  protected getRequestResponse(context: ExecutionContext): {
    req: object;
    res: object | undefined;
  } {
    return exchangeOf(context);
  }

  /**
   * Return `true` to let a request through without looking at its session (a health probe, an
   * internal caller), as `@AllowAnonymous()` does per route. Synchronous: it runs on every request.
   */
  protected shouldSkip(_context: ExecutionContext): boolean {
    return false;
  }

  /**
   * The error thrown for a refused request. Override to change status codes or messages. In a
   * WebSocket gateway it is a `WsException` whose `exception` event carries
   * `{ status: 'error', message, code, reason }`.
   * @param reason - `'missing'` (no valid session, 401), `'forbidden'` (predicate false, 403),
   *   `'unavailable'` (store down, 503)
   */
  protected createException(reason: SessionDenialReason, context: ExecutionContext): Error {
    if (context.getType() === 'ws') return socketRefusal(reason);
    switch (reason) {
      case 'missing':
        return new SessionUnauthorizedException();
      case 'forbidden':
        return new SessionForbiddenException();
      case 'unavailable':
        return new SessionUnavailableException();
    }
  }
}
