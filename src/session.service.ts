import { Inject, Injectable } from '@nestjs/common';
import { SESSION_MANAGER } from './session.constants.js';
import type { SessionRecord } from './interfaces/session-store.interface.js';
import { SessionHandle, type DetachedSource, type Session } from './core/session-handle.js';
import type { SessionRuntime } from './core/session-runtime.js';
import { joinCookieHeader } from './transport/session-cookie.js';
import { isHiddenKey } from './utils/hidden-keys.js';
import { isForbiddenKey, parseStoredJson } from './utils/json.js';

/** A stored session as the service reports it. */
export interface SessionInfo<T extends object = Record<string, unknown>> {
  /** The server-side id (what `session.id` returns); not a cookie token. */
  readonly id: string;
  readonly userId: string | null;
  readonly createdAt: Date;
  readonly lastActiveAt: Date;
  /** The earlier of idle and absolute expiry. */
  readonly expiresAt: Date;
  readonly absoluteExpiresAt: Date;
  readonly data: Partial<T>;
}

/** Options of {@link SessionService.invalidateAllForUser}. */
export interface InvalidateAllOptions {
  /** Session id(s) to keep, typically the current one (`session.id`). */
  except?: string | readonly string[];
}

/**
 * Sessions as a repository, for code that is not an HTTP handler of the session itself: admin
 * tools, "log out everywhere", background jobs. Store failures reject with
 * `SessionStoreUnavailableError`.
 */
@Injectable()
export class SessionService {
  constructor(@Inject(SESSION_MANAGER) private readonly sessions: SessionRuntime) {}

  /** One live session by id, or `null`. */
  async get<T extends object = Record<string, unknown>>(
    id: string,
  ): Promise<SessionInfo<T> | null> {
    const record = await this.sessions.backend.find(id);
    return record && toInfo<T>(record);
  }

  /** Ends one session now. Ending a session that does not exist is not an error. */
  async invalidate(id: string): Promise<void> {
    // In sealed mode the id is deny-listed (needs `revocationStore`) until it would have expired.
    await this.sessions.backend.invalidate(id);
    this.sessions.events.emit('revoked', { key: id, reason: 'invalidate' });
  }

  /** The live sessions of a user (the value stored under `userKey`), oldest first. */
  async listForUser<T extends object = Record<string, unknown>>(
    userId: string | number,
  ): Promise<SessionInfo<T>[]> {
    const records = await this.sessions.backend.sessionsOf(String(userId));
    return records.sort((a, b) => a.createdAt - b.createdAt).map((record) => toInfo<T>(record));
  }

  /**
   * Ends every session of a user ("log out everywhere"), except the ones listed; resolves how many
   * ended. In `'sealed'` mode (with `revocationStore`) every cookie of the user sealed before now is
   * revoked, and it resolves 0 since cookies cannot be counted.
   * @example await sessions.invalidateAllForUser(user.id, { except: session.id })
   */
  async invalidateAllForUser(
    userId: string | number,
    options: InvalidateAllOptions = {},
  ): Promise<number> {
    const except = options.except === undefined ? [] : [options.except].flat();
    const user = String(userId);
    // Sealed mode cannot count cookies it does not hold: it revokes them all and resolves 0.
    const count = await this.sessions.backend.invalidateUser(user, except);
    this.sessions.events.emit('revoked', { userId: user, reason: 'invalidate-user', count });
    return count ?? 0;
  }

  /**
   * Runs `fn` with a session loaded by id, like a request would: the changes are saved when `fn`
   * resolves and dropped when it throws; under `concurrency: 'serialize'` it holds the session's
   * lock meanwhile. Rejects with `SessionGoneError` when the session does not exist or has ended.
   */
  withSession<R, T extends object = Record<string, unknown>>(
    id: string,
    fn: (session: Session<T>) => R | Promise<R>,
  ): Promise<R> {
    return this.run({ id }, fn);
  }

  /**
   * The session a `Cookie` header carries, loaded and verified as a request's would be (signature,
   * expiry, revocation, in store and sealed mode): for transports the module does not serve itself —
   * a WebSocket handshake, server-sent events, a raw `upgrade`, a message that carries cookies.
   * Without a valid cookie it is a new, empty session (`isNew`). Read-only: to change the session,
   * use {@link withCookieHeader}. Store failures reject with `SessionStoreUnavailableError`.
   * @example const session = await sessions.fromCookieHeader(socket.handshake.headers.cookie);
   */
  async fromCookieHeader<T extends object = Record<string, unknown>>(
    cookieHeader: string | readonly string[] | undefined,
  ): Promise<Session<T>> {
    const handle = new SessionHandle<T>(this.sessions, undefined, cookieSource(cookieHeader));
    try {
      return (await handle.load()) as unknown as Session<T>;
    } finally {
      await handle.release();
    }
  }

  /** {@link fromCookieHeader} with the `Cookie` header of a request (Node's, Express's, Fastify's, a socket.io handshake). */
  fromRequest<T extends object = Record<string, unknown>>(req: {
    readonly headers: { readonly cookie?: string | readonly string[] };
  }): Promise<Session<T>> {
    return this.fromCookieHeader<T>(req.headers.cookie);
  }

  /**
   * Runs `fn` with the session a `Cookie` header carries (see {@link fromCookieHeader}), like a
   * request would: the changes are saved when `fn` resolves and dropped when it throws; under
   * `concurrency: 'serialize'` it holds the session's lock meanwhile. There is no response to carry
   * a cookie, so a change that needs one (a first save of a new session, `regenerate()`, any write
   * in sealed mode) rejects with a `SessionError` of code `SESSION_NO_TRANSPORT`.
   */
  withCookieHeader<R, T extends object = Record<string, unknown>>(
    cookieHeader: string | readonly string[] | undefined,
    fn: (session: Session<T>) => R | Promise<R>,
  ): Promise<R> {
    return this.run(cookieSource(cookieHeader), fn);
  }

  private async run<R, T extends object>(
    source: DetachedSource,
    fn: (session: Session<T>) => R | Promise<R>,
  ): Promise<R> {
    const handle = new SessionHandle<T>(this.sessions, undefined, source);
    try {
      const session = await handle.load();
      try {
        const result = await fn(session as unknown as Session<T>);
        await session.commit();
        return result;
      } catch (error) {
        session.rollback();
        throw error;
      }
    } finally {
      await handle.release();
    }
  }
}

function cookieSource(cookieHeader: string | readonly string[] | undefined): DetachedSource {
  return { cookieHeader: joinCookieHeader(cookieHeader) };
}

function toInfo<T extends object>(record: SessionRecord): SessionInfo<T> {
  const data: Record<string, unknown> = {};
  for (const key of Object.keys(record.data)) {
    // A stored `__proto__` key (never one a session writes: it refuses it) would set the
    // prototype of `data` if assigned: left out with `constructor` and `prototype`, which stored
    // JSON loses at every depth too (IN-2).
    if (!isHiddenKey(key) && !isForbiddenKey(key)) data[key] = parseStoredJson(record.data[key]);
  }
  return {
    id: record.key,
    userId: record.userId,
    createdAt: new Date(record.createdAt),
    lastActiveAt: new Date(record.lastActiveAt),
    expiresAt: new Date(record.expiresAt),
    absoluteExpiresAt: new Date(record.absoluteExpiresAt),
    data: data as Partial<T>,
  };
}
