/**
 * A change in a session's life, or a security event (REV-7):
 *
 * - `created`: a new session was stored (or first sealed);
 * - `regenerated`: it got a new id (`regenerate()`, or a change of user); `previousRef` is the old one;
 * - `destroyed`: `destroy()` ended it (logout);
 * - `expired`: it was presented after its idle (`reason: 'idle'`) or absolute (`'absolute'`) expiry
 *   and the server saw the record (sealed mode; a store whose own expiry lags);
 * - `revoked`: `SessionService.invalidate()` (`'invalidate'`) or `invalidateAllForUser()`
 *   (`'invalidate-user'`, with `userId` and, where the store can count, `count`) ended it, or a
 *   login past `maxSessionsPerUser` evicted it (`'evicted'`, with `userId`);
 * - `invalid`: a cookie failed its signature (`'signature'`) or could not be opened (`'seal'`):
 *   tampered, forged, or signed with a secret no longer configured; or it was correctly signed but
 *   its session is gone (`'unknown'`, with the ref): expired in the store, destroyed, revoked or
 *   evicted — stores drop expired sessions themselves and cannot tell which.
 *
 * Expiry events are informational: they fire when an expired session is presented, not when it
 * expires, and security never depends on them (REV-7).
 */
export type SessionEventType =
  'created' | 'regenerated' | 'destroyed' | 'expired' | 'revoked' | 'invalid';

/** What `onEvent` receives and what is logged. Never holds a token, a cookie or a session id. */
export interface SessionEvent {
  readonly type: SessionEventType;
  /** Epoch milliseconds. */
  readonly at: number;
  /**
   * The session, as a keyed hash of its id truncated to 16 characters: the same session has the
   * same ref (as long as the first secret stays the same), which neither reveals its id nor lets
   * anyone find or forge its cookie. Safe to log.
   */
  readonly ref?: string;
  /** `regenerated`: the ref of the id it replaced. */
  readonly previousRef?: string;
  /** The session's user (the `userKey` value), when known. */
  readonly userId?: string | null;
  /** Why, for `expired`, `revoked` and `invalid`. */
  readonly reason?: string;
  /** `revoked` for a user: how many sessions ended, when the store can count them. */
  readonly count?: number;
}
