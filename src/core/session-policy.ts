import type { SessionRecord } from '../interfaces/session-store.interface.js';
import { IDLE_TIMEOUT_KEY, idleTimeoutOf } from '../utils/hidden-keys.js';
import { sha256Text } from '../utils/sha256.js';

/** The timeouts that decide when a session ends. */
export interface ExpiryPolicy {
  readonly idleTimeout: number;
  readonly anonymousIdleTimeout: number;
  readonly absoluteTimeout: number;
}

/**
 * Whether a session has ended by the server's own rules, whatever a store's TTL did (TO-3): its
 * recorded expiry, its absolute lifetime, or its idle timeout (its own, from `setIdleTimeout`, and
 * at most `anonymousIdleTimeout` without a user).
 */
export function isExpired(record: SessionRecord, now: number, policy: ExpiryPolicy): boolean {
  let idle = idleTimeoutOf(record.data[IDLE_TIMEOUT_KEY], policy.idleTimeout);
  if (record.userId === null && policy.anonymousIdleTimeout < idle) {
    idle = policy.anonymousIdleTimeout;
  }
  return (
    now >= record.expiresAt ||
    now >= record.absoluteExpiresAt ||
    now >= record.createdAt + policy.absoluteTimeout ||
    now >= record.lastActiveAt + idle
  );
}

/** Why a session ended, for the `expired` event. */
export function expiryReason(record: SessionRecord, now: number): 'absolute' | 'idle' {
  return now >= record.absoluteExpiresAt ? 'absolute' : 'idle';
}

/**
 * A storage key derived from a value (a lock per user, a revocation record): the SHA-256 of a
 * labelled text, so it can never equal a session key nor reveal the value.
 */
export function derivedKey(kind: string, value: string): string {
  return sha256Text(`nestjs-sessions:${kind}:${value}`);
}
