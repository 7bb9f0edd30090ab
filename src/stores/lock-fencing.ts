import {
  SessionConflictError,
  SessionStoreUnavailableError,
  type SessionError,
} from '../session.errors.js';

/**
 * Fenced writes (`SessionWrite.lockOwner`): the built-in stores apply a write made under a session
 * lock only while its writer still holds that lock, so that a write arriving late (a client
 * library's resend after the request gave up, a holder past its lease) cannot overwrite what the
 * next holder wrote. These are the refusals they throw, nothing written.
 */

/** A 503 that is the store's answer, not its failure: nothing to probe or to fail fast on. */
export class LockLapsedError extends SessionStoreUnavailableError {
  constructor() {
    super(new Error("the session's lock lease lapsed before the write; nothing was written"));
  }
}

/**
 * 409 when another request holds the lock now; 503 when nobody does (the lease lapsed because the
 * store or this process stalled for longer than a lease), as for any outage.
 */
export function lockLostError(heldByAnother: boolean): SessionError {
  return heldByAnother
    ? new SessionConflictError(
        "Another request holds the session's lock now (this request's lease ran out); nothing was written",
      )
    : new LockLapsedError();
}
