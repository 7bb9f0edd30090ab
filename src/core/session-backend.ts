import type {
  SessionRecord,
  SessionTimes,
  SessionWrite,
} from '../interfaces/session-store.interface.js';

/** A value now, or a promise of it only when something had to be waited for (the sync fast path). */
export type MaybePromise<T> = T | Promise<T>;

/** A session found behind a cookie the request presented. */
export interface OpenedSession {
  readonly record: SessionRecord;
  /** The cookie's token (store mode), kept so a rollback can undo a pending regenerate. */
  readonly token: string | undefined;
  /** The cookie verified under an old secret: re-issue it under the first one. */
  readonly stale: boolean;
}

/**
 * Reads a live record by storage key for {@link SessionBackend.open}; the handle passes one that
 * takes the session's lock first when the request must hold it.
 */
export type FetchRecord = (key: string) => MaybePromise<SessionRecord | null>;

/** One planned write, with what the backend may need to persist it. */
export interface SessionSave {
  readonly write: SessionWrite;
  /**
   * Every key's JSON text once the write is applied (what a seal carries), built when asked: a
   * store takes the write's delta only.
   */
  texts(): Record<string, string>;
  /** The user the session had before this write. */
  readonly previousUser: string | null;
}

/**
 * Where sessions live: in a store, with a signed id in the cookie, or in the cookie itself
 * (sealed). The handle, the service and the guards talk to this interface only; neither knows
 * which mode runs.
 */
export interface SessionBackend {
  /**
   * The backend holds sessions server-side: they can be read, listed and changed by id, touched
   * without a new cookie, and reloaded. When `false` the cookie carries the session: every change
   * or touch is a new cookie.
   */
  readonly holdsSessions: boolean;
  /** The values of the session cookie the request carries that this backend can open, in order. */
  presented(cookieHeader: string | undefined): string[];
  /** The first presented value that leads to a live session, if any. */
  open(values: readonly string[], fetch: FetchRecord): MaybePromise<OpenedSession | undefined>;
  /** A live session by id. `presented`: the id came from a verified cookie (a miss is reported). */
  find(key: string, presented?: boolean): MaybePromise<SessionRecord | null>;
  /**
   * Persists a write. Resolves the cookie values that now carry the session when the write chose
   * them (a seal), or `undefined` when the token cookie ({@link cookieFor}) does.
   */
  save(save: SessionSave): MaybePromise<readonly string[] | undefined>;
  /** Records activity of a stored session; `false` when it is gone. */
  touch(key: string, times: SessionTimes): Promise<boolean>;
  /** The cookie values that carry a stored session's token. */
  cookieFor(token: string): readonly string[];
  /** Ends one session of this request (`destroy()`). */
  end(session: { key: string; userId: string | null; absoluteExpiresAt: number }): Promise<void>;
  /** Ends a session by id (`SessionService.invalidate`). */
  invalidate(key: string): Promise<void>;
  /**
   * Ends every session of a user but the listed ids; resolves how many ended, or `undefined` when
   * they cannot be counted (sealed cookies).
   */
  invalidateUser(userId: string, except: readonly string[]): Promise<number | undefined>;
  /** The live sessions of a user, in no particular order. */
  sessionsOf(userId: string): Promise<SessionRecord[]>;
}
