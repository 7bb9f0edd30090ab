import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { SESSION_MANAGER } from './session.constants.js';
import { SessionCrossSiteException } from './session.errors.js';
import type { SessionRuntime } from './core/session-runtime.js';
import { stateChangingRequest } from './session.context.js';
import { requestHost, type RequestLike } from './http/request-info.js';

function header(req: RequestLike, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
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
    @Inject(SESSION_MANAGER) private readonly sessions: SessionRuntime,
    private readonly reflector: Reflector,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const req = stateChangingRequest(context, this.reflector);
    if (!req || this.isSameSite(req)) return true;
    throw this.createException(context);
  }

  /** The 403 for a refused request. Override to change the status or the message. */
  protected createException(_context: ExecutionContext): Error {
    return new SessionCrossSiteException();
  }

  private isSameSite(req: RequestLike): boolean {
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
