import { createHmac } from 'node:crypto';
import type { SessionLogger, SessionLogLevel as LogLevel } from './session-logger.js';
import type { SessionEvent, SessionEventType } from '../interfaces/session-event.interface.js';

export type { SessionEvent, SessionEventType };

/** What an event is built from: storage keys, turned into refs only when someone listens. */
export interface SessionEventInput {
  readonly key?: string;
  readonly previousKey?: string;
  readonly userId?: string | null;
  readonly reason?: string;
  readonly count?: number;
}

/**
 * Lifecycle at verbose level (every visitor's first request makes one: routine, and floodable),
 * revocations at log level, forged or tampered cookies as warnings (a cookie whose session is
 * merely gone is routine: verbose). `undefined`: not a security event.
 */
function levelOf(type: SessionEventType, reason: string | undefined): LogLevel {
  if (type === 'revoked') return 'log';
  if (type === 'invalid' && reason !== 'unknown') return 'warn';
  return 'verbose';
}

/** Events that say something about an attack or an account, logged whatever `logEvents` says. */
function isSecurityEvent(type: SessionEventType, reason: string | undefined): boolean {
  return type === 'revoked' || (type === 'invalid' && reason !== 'unknown');
}

/** At most one warning per this interval; the ones in between are counted in the next. */
const WARN_INTERVAL_MS = 10_000;

/**
 * Sends session events to the `onEvent` listener and to the log (OBS-1): revocations at log level,
 * forged or tampered cookies as warnings (at most one per 10 s, with a count of the others), and,
 * with `logEvents: true`, lifecycle events at verbose level. Costs nothing when neither is on.
 */
export class SessionEvents {
  private readonly refKey: Buffer;
  private warnAfter = 0;
  private suppressed = 0;

  constructor(
    secret: string | Buffer,
    private readonly listener: ((event: SessionEvent) => void) | undefined,
    private readonly logger: SessionLogger | undefined,
    /** Log lifecycle events too, not only security events. */
    private readonly logLifecycle = true,
  ) {
    // Its own key: a ref says nothing about the signing key, and refs differ between apps.
    this.refKey = createHmac('sha256', secret).update('nestjs-sessions event refs').digest();
  }

  /** The ref of a storage key (see {@link SessionEvent.ref}). */
  private ref(key: string): string {
    return createHmac('sha256', this.refKey).update(key).digest('base64url').slice(0, 16);
  }

  emit(type: SessionEventType, input: SessionEventInput = {}): void {
    const level = levelOf(type, input.reason);
    const logging =
      this.logger !== undefined &&
      (this.logLifecycle || isSecurityEvent(type, input.reason)) &&
      this.logger.isLevelEnabled(level);
    if (!this.listener && !logging) return;
    const event: SessionEvent = {
      type,
      at: Date.now(),
      ...(input.key !== undefined && { ref: this.ref(input.key) }),
      ...(input.previousKey !== undefined && { previousRef: this.ref(input.previousKey) }),
      ...(input.userId !== undefined && { userId: input.userId }),
      ...(input.reason !== undefined && { reason: input.reason }),
      ...(input.count !== undefined && { count: input.count }),
    };
    if (logging) this.log(event, level);
    if (!this.listener) return;
    try {
      this.listener(event);
    } catch (error) {
      this.logger?.error(
        `The session onEvent listener threw on a "${type}" event: ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
  }

  /** One line per event, without the user id (it may be an e-mail address): `onEvent` has it. */
  private log(event: SessionEvent, level: LogLevel): void {
    if (level === 'warn') {
      // Anyone can send forged cookies: they must not flood the log.
      if (event.at < this.warnAfter) {
        this.suppressed++;
        return;
      }
      this.warnAfter = event.at + WARN_INTERVAL_MS;
    }
    const parts = [`Session ${event.type}`];
    if (event.ref) parts.push(event.ref);
    if (event.previousRef) parts.push(`(was ${event.previousRef})`);
    if (event.reason) parts.push(`reason ${event.reason}`);
    if (event.count !== undefined) parts.push(`count ${event.count}`);
    if (level === 'warn' && this.suppressed > 0) {
      parts.push(`(${this.suppressed} more since the last warning)`);
      this.suppressed = 0;
    }
    this.logger![level === 'fatal' ? 'error' : level](parts.join(' '));
  }
}
