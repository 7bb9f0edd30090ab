import { ServiceUnavailableException } from '@nestjs/common';
import { SessionError } from '../session.errors.js';

/**
 * Why a {@link SharedSessionUnavailableException} was thrown. Stable, safe to switch on.
 *
 * - `login-failed`: the login threw, timed out, or yielded no credential.
 * - `login-backoff`: a recent login failed; no new one is tried before `retryAfterMs`.
 * - `login-timeout`: another process held the login lock for longer than `lockTtl`, or this
 *   process's own login outlived its lock (its result was not shared).
 * - `session-rejected`: the upstream still refused the credential after every allowed re-login.
 * - `not-retried`: the credential expired on a non-idempotent request; the credential was renewed
 *   but the request was not sent again (see `retryNonIdempotent`). Sending it again is up to you.
 * - `request-failed`: the request failed (network error, timeout) on every allowed attempt, or once
 *   for a non-idempotent request.
 * - `store-unavailable`: the credential store failed or did not answer within `storeTimeout`.
 * - `closed`: the client was closed (application shutdown).
 */
export type SharedSessionFailureReason =
  | 'login-failed'
  | 'login-backoff'
  | 'login-timeout'
  | 'session-rejected'
  | 'not-retried'
  | 'request-failed'
  | 'store-unavailable'
  | 'closed';

/**
 * 503: the upstream could not be reached with a valid shared session within the bounded attempts.
 * The message names the upstream and the reason, never a credential, cookie, token or URL query.
 * Thrown from a controller it becomes a 503 response.
 *
 * @example
 * try { return await legacy.get('/data'); }
 * catch (e) { if (e instanceof SharedSessionUnavailableException && e.reason === 'not-retried') ... }
 */
export class SharedSessionUnavailableException extends ServiceUnavailableException {
  constructor(
    /** The upstream's name. */
    readonly upstream: string,
    /** Why, see {@link SharedSessionFailureReason}. */
    readonly reason: SharedSessionFailureReason,
    detail: string,
    /** When a retry may succeed, in milliseconds (backoff), if known. */
    readonly retryAfterMs?: number,
  ) {
    super(`Upstream "${upstream}" is unavailable: ${detail}`);
    this.name = 'SharedSessionUnavailableException';
  }
}

/**
 * Thrown when shared session options are wrong (at boot with the module, in the constructor
 * otherwise), or when a request names another origin than `baseUrl`. The message says what to change.
 */
export class SharedSessionConfigError extends SessionError {
  constructor(upstream: string | undefined, message: string) {
    super(
      'SESSION_CONFIG_INVALID',
      upstream === undefined
        ? `Invalid shared session options: ${message}`
        : `Invalid shared session options for "${upstream}": ${message}`,
    );
  }
}
