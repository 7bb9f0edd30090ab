import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { SessionCsrfException, toHttpException } from './session.errors.js';
import type { SessionHandle } from './core/session-handle.js';
import type { SessionRuntime } from './core/session-runtime.js';
import {
  admitSession,
  loadedSession,
  refuseSession,
  stateChangingRequest,
} from './session.context.js';
import type { RequestLike } from './http/request-info.js';
import { SESSION_MANAGER } from './session.constants.js';

/** Headers that carry the token, in the order they are read (`X-XSRF-TOKEN` is Angular's). */
const TOKEN_HEADERS = ['x-csrf-token', 'x-xsrf-token'] as const;
/** The body field that carries the token (a URL-encoded form, or JSON). */
const TOKEN_FIELD = '_csrf';

/**
 * Requires a CSRF token of the request's session on state-changing requests (CSRF-2): for every
 * method but GET, HEAD, OPTIONS and TRACE it answers 403 unless the `X-CSRF-Token` (or
 * `X-XSRF-TOKEN`) header or the `_csrf` body field holds a token from `session.createCsrfToken()` of
 * this very session. A request without a session, with a token of another session, or with one
 * issued before the session's last `regenerate()` is refused.
 *
 * It complements {@link SessionOriginGuard} (which needs no token and is enough for current
 * browsers): use this one where forms must also be safe from same-site attackers (a sibling
 * subdomain) or from browsers that send neither `Sec-Fetch-Site` nor `Origin`. Use it on routes
 * or as `APP_GUARD`; `@AllowCrossSite()` exempts a route; other contexts than HTTP pass. Override
 * {@link tokenOf} to read the token from somewhere else, {@link createException} to change the 403.
 */
@Injectable()
export class SessionCsrfGuard implements CanActivate {
  constructor(
    @Inject(SESSION_MANAGER) private readonly sessions: SessionRuntime,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const req = stateChangingRequest(context, this.reflector);
    if (!req) return true;
    const token = this.tokenOf(req);
    // No token: refused without loading the session.
    if (token === undefined) throw this.createException(context);
    // Loads the session (a store failure is a 503), then checks the token against its id.
    return loadedSession(context, (session) => this.decide(session, token, context), true) as
      boolean | Promise<boolean>;
  }

  /** The token the request presents, or `undefined`. */
  protected tokenOf(req: RequestLike): string | undefined {
    for (const name of TOKEN_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string' && value !== '') return value;
    }
    const body = (req as RequestLike & { body?: unknown }).body;
    if (typeof body === 'object' && body !== null) {
      const value = (body as Record<string, unknown>)[TOKEN_FIELD];
      if (typeof value === 'string') return value;
    }
    return undefined;
  }

  /** The 403 for a refused request. Override to change the status or the message. */
  protected createException(_context: ExecutionContext): Error {
    return new SessionCsrfException();
  }

  /** Lets the request through with a valid token of this session; refuses it otherwise. */
  private decide(
    session: SessionHandle,
    token: string,
    context: ExecutionContext,
  ): true | Promise<true> {
    if (session.isNew || !this.sessions.csrf.verify(session.id, token)) {
      return refuseSession(session, this.createException(context), context);
    }
    return admitSession(session, context, toHttpException);
  }
}
