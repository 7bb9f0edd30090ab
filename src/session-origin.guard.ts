import type { IncomingMessage } from 'node:http';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ALLOW_CROSS_SITE_KEY, SESSION_MANAGER } from './session.constants.js';
import { SessionCrossSiteException } from './session.errors.js';
import type { SessionManager } from './session.manager.js';
import { requestHost } from './transport/session-cookie.js';

/** Methods that must not change state, and so need no origin check (RFC 9110 §9.2.1). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The request when it is one a cross-site check must look at: an HTTP request with a method that
 * may change state, on a route not marked `@AllowCrossSite()`. Otherwise `undefined`: browsers
 * send cookies with HTTP requests only (a GraphQL or WebSocket gateway checks its own).
 */
export function requestToCheck(
  context: ExecutionContext,
  reflector: Reflector,
): IncomingMessage | undefined {
  if (context.getType() !== 'http') return undefined;
  const req = context.getArgByIndex<IncomingMessage>(0);
  if (SAFE_METHODS.has(req.method ?? 'GET')) return undefined;
  const exempt = reflector.getAllAndOverride<boolean>(ALLOW_CROSS_SITE_KEY, [
    context.getHandler(),
    context.getClass(),
  ]);
  return exempt ? undefined : req;
}

/** `host[:port]` of an origin such as `https://app.example.com:8443`, or undefined when malformed. */
function hostOf(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.host : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuses cross-site requests that could change state (CSRF-1), with `SameSite=Lax` cookies as the
 * defence in depth: for every method but GET, HEAD, OPTIONS and TRACE it answers 403 unless
 *
 * - `Sec-Fetch-Site` (sent by every current browser) says `same-origin` (or `none`: typed by the
 *   user), or the `Origin` is one of `trustedOrigins`;
 * - without `Sec-Fetch-Site`, the `Origin` header names this host (the `Host` header; behind a
 *   proxy `X-Forwarded-Host`, with `trustProxy: true` or Express's `trust proxy`) or a trusted
 *   origin. A request without `Origin` is
 *   refused too unless `allowMissingOrigin` (browsers send `Origin` with every cross-site POST, so
 *   that lets non-browser clients through without opening a hole for pages).
 *
 * Use it on routes (`@UseGuards(SessionOriginGuard)`) or everywhere (`APP_GUARD`), and exempt a
 * route, such as a webhook signed by other means, with `@AllowCrossSite()`. The 403 comes from
 * {@link createException}, which a subclass can override. Contexts other than HTTP (GraphQL,
 * WebSockets, microservices) pass through.
 */
@Injectable()
export class SessionOriginGuard implements CanActivate {
  constructor(
    @Inject(SESSION_MANAGER) private readonly sessions: SessionManager,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const req = requestToCheck(context, this.reflector);
    if (!req || this.isSameSite(req)) return true;
    throw this.createException(context);
  }

  /** The 403 for a refused request. Override to change the status or the message. */
  protected createException(_context: ExecutionContext): Error {
    return new SessionCrossSiteException();
  }

  private isSameSite(req: IncomingMessage): boolean {
    const { trustedOrigins, allowMissingOrigin, trustProxy } = this.sessions.options;
    const origin = header(req, 'origin');
    const trusted = origin !== undefined && trustedOrigins.includes(origin.toLowerCase());
    const fetchSite = header(req, 'sec-fetch-site');
    if (fetchSite !== undefined) {
      return fetchSite === 'same-origin' || fetchSite === 'none' || trusted;
    }
    if (origin === undefined) return allowMissingOrigin;
    if (trusted) return true;
    return hostOf(origin) === requestHost(req, trustProxy);
  }
}
