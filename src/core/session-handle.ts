import { SessionConflictError, SessionError, SessionGoneError } from '../session.errors.js';
import type { SessionRecord, SessionWrite } from '../interfaces/session-store.interface.js';
import type { OpenedSession, SessionBackend, SessionSave } from './session-backend.js';
import type { SessionCarrier } from './session-carrier.js';
import { planCommit, type CommitPlan } from './session-commit.js';
import {
  SessionCookieView,
  type CookieLifetime,
  type SessionCookie,
} from './session-cookie-view.js';
import { SessionData } from './session-data.js';
import type { SessionRuntime } from './session-runtime.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import { parseDuration } from '../utils/duration.js';
import {
  COOKIE_MAX_AGE_KEY,
  IDLE_TIMEOUT_KEY,
  cookieMaxAgeOf,
  idleTimeoutOf,
} from '../utils/hidden-keys.js';
import { isPortableText } from '../utils/json.js';

/** Options of {@link Session.regenerate}. */
export interface SessionRegenerateOptions<T> {
  /**
   * What the new session keeps: `true` keeps everything, `false` starts empty, a list keeps only
   * those keys.
   * @default true
   */
  keep?: boolean | readonly (keyof T & string)[];
}

type Callback = (err?: unknown) => void;

/**
 * Where a handle without a response finds its session: a stored id (`SessionService.withSession`),
 * or a Cookie header that came in some other way (a WebSocket handshake, an SSE request).
 */
export type DetachedSource =
  { readonly id: string } | { readonly cookieHeader: string | undefined };

/**
 * The session of one request (or of one `SessionService.withSession` / `withCookieHeader` call).
 *
 * Read and change values through `data` (or `get` / `set` / `unset`); changes are saved
 * automatically when the handler succeeds, before the response is sent. Only changed top-level keys
 * are written, and changes made in place inside nested objects are detected. The same object stays
 * valid for the whole request, across `regenerate()`.
 *
 * @typeParam T - the shape of the session data.
 */
export interface Session<T extends object = Record<string, unknown>> {
  /** The session values. Assign, mutate or `delete` keys; only JSON-representable values are kept. */
  readonly data: Partial<T>;
  /**
   * The session's server-side id: the hash under which the store keeps it. It is not the cookie
   * token and cannot be used as one. Changes on `regenerate()`.
   */
  readonly id: string;
  /** True until the session has been stored (a request without a valid session cookie). */
  readonly isNew: boolean;
  /** When the session was created. */
  readonly createdAt: Date;
  /** The last recorded activity (recorded at most once per `touchAfter`). */
  readonly lastActiveAt: Date;
  /** When the session will end if unused: the earlier of idle and absolute expiry. */
  readonly expiresAt: Date;
  /**
   * The session cookie, as express-session's `req.session.cookie`: its attributes and lifetime;
   * assign `maxAge` (or `expires`) to change this session's cookie lifetime ("remember me").
   */
  readonly cookie: SessionCookie;
  /** One value, or `undefined`. */
  get<K extends keyof T & string>(key: K): T[K] | undefined;
  /** Sets one value; `undefined` removes the key. */
  set<K extends keyof T & string>(key: K, value: T[K] | undefined): void;
  /** Removes one key. */
  unset(key: keyof T & string): void;
  /**
   * Gives the session a new id (and a new cookie) and ends the old id, atomically, when the
   * changes are saved. Call it at login and at any privilege change. Keeps the data unless told
   * otherwise. The callback form (`regenerate(cb)`, used by Passport) starts empty, like
   * express-session.
   */
  regenerate(options?: SessionRegenerateOptions<T>): Promise<void>;
  regenerate(callback: Callback): void;
  /** Deletes the session from the store now and clears the cookie. The object becomes a new, empty session. */
  destroy(): Promise<void>;
  destroy(callback: Callback): void;
  /** Saves pending changes now (for routes that write the response themselves). */
  save(): Promise<void>;
  save(callback: Callback): void;
  /** Drops pending changes and reads the session again from the store. */
  reload(): Promise<void>;
  reload(callback: Callback): void;
  /** Records activity on the next save even if `touchAfter` has not passed. */
  touch(): void;
  /**
   * Gives this session a shorter idle timeout than the module's `idleTimeout` (a shared computer,
   * an elevated session), from its next save on; it is kept with the session (a hidden data key,
   * in every store and inside the seal in sealed mode) and enforced on every read. Activity is
   * then recorded at least every half of it. A longer one is refused: the module's timeouts are
   * the upper bound.
   * @example session.setIdleTimeout('5m')
   */
  setIdleTimeout(timeout: number | string): void;
  /**
   * A new CSRF token for this session (CSRF-2): send it with state-changing requests in the
   * `X-CSRF-Token` header or the `_csrf` body field, and protect those routes with
   * `SessionCsrfGuard`. Each call returns a different token; all stay valid while the session
   * keeps its id, so `regenerate()`, a change of user and `destroy()` void them — take the token
   * after those calls. A new session that hands out a token is saved, so the token has a session
   * to match.
   * @example return { csrfToken: session.createCsrfToken() }
   */
  createCsrfToken(): string;
  /** Loads the session if it is not loaded yet. `@Session()` and `SessionGuard` do this for you. */
  load(): Promise<this>;
}

type State = 'unloaded' | 'loading' | 'loaded';

function userIdOf(value: unknown): string | null {
  if (typeof value === 'string' && value.length > 0) {
    // Every store must be able to index it (PostgreSQL's text cannot hold a NUL).
    if (!isPortableText(value)) {
      throw new SessionError(
        'SESSION_INVALID_USER',
        'A session user id cannot contain the NUL character or unpaired surrogates',
      );
    }
    return value;
  }
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/**
 * The implementation behind {@link Session}: the state machine of one request's session (load →
 * adopt → commit | rollback → settle). What changed is tracked by {@link SessionData}, what a
 * commit does is decided by {@link planCommit}, and where the session lives is the runtime's
 * backend (a store, or the cookie itself): this class knows neither cookies nor stores.
 * @internal
 */
export class SessionHandle<T extends object = Record<string, unknown>>
  implements Session<T>, CookieLifetime
{
  private proxyView: this | undefined;
  /** The API's methods bound to this handle, for `req.session`. */
  private boundMethods: Map<string, unknown> | undefined;

  private state: State = 'unloaded';
  private loading: Promise<void> | undefined;
  /** Current token; minted lazily for new sessions (store mode; sealed sessions have none). */
  private token: string | undefined;
  /** Token of the stored record, kept so a rollback can undo a pending regenerate. */
  private storedToken: string | undefined;
  private key: string | undefined;
  /** Key of the stored record this handle represents, if any. */
  private storedKey: string | undefined;
  private created = 0;
  private lastActive = 0;
  private absoluteExpiry = 0;
  /** This session's idle timeout: the module's, or shorter (`setIdleTimeout`). */
  private idleTimeout = 0;
  /** This session's cookie lifetime: the module's `cookie.maxAge`, or its own. */
  cookieMaxAge: number | undefined;
  /** The values and what this request changed of them. */
  private readonly values = new SessionData();
  private storedUser: string | null = null;
  private rotate = false;
  private touchRequested = false;
  /** A CSRF token was handed out: save this session even with no data. */
  private persistRequested = false;
  /** The cookie must go out again: verified under an old secret, or its lifetime changed. */
  private reissue = false;
  /** The request carried our cookie but it did not lead to a live session. */
  private deadCookie = false;
  private cookieView: SessionCookieView | undefined;
  /** This request must hold the session's lock while it uses the session. */
  private lockWanted = false;
  private lockHeld: { key: string; owner: string } | undefined;
  /** A session loaded without the lock, being read again under it ({@link lockLate}). */
  private relocking: Promise<void> | undefined;
  /**
   * The lock this request took, kept after an early release (the client went away): its write is
   * still fenced by it, so it cannot land over the next holder's.
   */
  private fence: { key: string; owner: string } | undefined;
  /** The exchange failed whatever its status says: the response's end rolls back. */
  private failedExchange = false;
  /** `req.session` was used: the response's end settles the session if the handler does not. */
  private outsideRoute = false;

  constructor(
    private readonly manager: SessionRuntime,
    /** The transport of the request the session belongs to; absent for a detached session. */
    readonly carrier: SessionCarrier | undefined,
    /** A detached session's source (without a carrier). */
    private readonly source?: DetachedSource,
  ) {}

  /**
   * This handle behind a proxy that also exposes data keys as properties, as `req.session` does
   * with express-session (Passport and Nest's own `@Session()` rely on it).
   */
  get proxy(): this {
    return (this.proxyView ??= new Proxy(this, HANDLE_TRAPS) as this);
  }

  /**
   * @internal A method of the API bound to this handle, for `req.session`; `load()` resolves
   * `req.session` itself, as it resolves the handle when called on the handle.
   */
  bound(name: string, method: (...args: unknown[]) => unknown): unknown {
    this.boundMethods ??= new Map();
    let bound = this.boundMethods.get(name);
    if (!bound) {
      bound = name === 'load' ? () => this.load().then(() => this.proxy) : method.bind(this);
      this.boundMethods.set(name, bound);
    }
    return bound;
  }

  /**
   * @internal `data` for `req.session`, which middleware reads synchronously: loads the session
   * first when that needs no waiting (a request without the cookie, an in-process store, a sealed
   * cookie); otherwise throws as `data` does, naming `eager: true`.
   */
  dataNow(): Partial<T> {
    if (this.state !== 'loaded') this.loadNow()?.catch(() => undefined);
    return this.data;
  }

  // --- public API -------------------------------------------------------------------------

  get data(): Partial<T> {
    this.assertLoaded();
    return this.values.proxy as Partial<T>;
  }

  get id(): string {
    this.assertLoaded();
    return this.currentKey();
  }

  get isNew(): boolean {
    this.assertLoaded();
    return this.storedKey === undefined;
  }

  get createdAt(): Date {
    this.assertLoaded();
    return new Date(this.created);
  }

  get lastActiveAt(): Date {
    this.assertLoaded();
    return new Date(this.lastActive);
  }

  get expiresAt(): Date {
    this.assertLoaded();
    return new Date(this.expiryFrom(this.lastActive, this.pendingUser()));
  }

  get cookie(): SessionCookie {
    this.assertLoaded();
    return (this.cookieView ??= new SessionCookieView(this, this.manager.options.cookie));
  }

  get<K extends keyof T & string>(key: K): T[K] | undefined {
    this.assertLoaded();
    return this.values.read(key) as T[K] | undefined;
  }

  set<K extends keyof T & string>(key: K, value: T[K] | undefined): void {
    this.assertLoaded();
    this.values.write(key, value);
  }

  unset(key: keyof T & string): void {
    this.assertLoaded();
    this.values.remove(key);
  }

  regenerate(options?: SessionRegenerateOptions<T>): Promise<void>;
  regenerate(callback: Callback): void;
  regenerate(arg?: SessionRegenerateOptions<T> | Callback): Promise<void> | void {
    if (typeof arg === 'function') return settle(this.doRegenerate({ keep: false }), arg);
    return this.doRegenerate(arg ?? {});
  }

  destroy(): Promise<void>;
  destroy(callback: Callback): void;
  destroy(callback?: Callback): Promise<void> | void {
    return callback ? settle(this.doDestroy(), callback) : this.doDestroy();
  }

  save(): Promise<void>;
  save(callback: Callback): void;
  save(callback?: Callback): Promise<void> | void {
    const saving = this.load().then(() => this.commit({ explicit: true }));
    return callback ? settle(saving, callback) : saving;
  }

  reload(): Promise<void>;
  reload(callback: Callback): void;
  reload(callback?: Callback): Promise<void> | void {
    return callback ? settle(this.doReload(), callback) : this.doReload();
  }

  touch(): void {
    this.touchRequested = true;
  }

  createCsrfToken(): string {
    this.assertLoaded();
    // A change of user rotates the id when the session is saved (LC-2): rotate now instead, so
    // the token is bound to the id the browser will hold.
    if (this.storedKey !== undefined && !this.rotate && this.pendingUser() !== this.storedUser) {
      this.rotateToken();
    }
    this.persistRequested = true;
    return this.manager.csrf.issue(this.currentKey());
  }

  setIdleTimeout(timeout: number | string): void {
    this.assertLoaded();
    const ms = parseDuration(timeout);
    const limit = this.manager.options.idleTimeout;
    if (ms === undefined || ms > limit) {
      throw new SessionError(
        'SESSION_INVALID_TIMEOUT',
        `setIdleTimeout() takes a duration of at most the module's idleTimeout (${limit} ms); got ${JSON.stringify(timeout)}`,
      );
    }
    this.idleTimeout = ms;
    // Kept with the session as a hidden data key: a request that loaded it earlier and writes
    // other keys cannot undo it, and every read enforces it.
    this.values.writeHidden(IDLE_TIMEOUT_KEY, ms);
  }

  async load(): Promise<this> {
    await this.loadNow();
    return this;
  }

  // --- the cookie's lifetime (SessionCookieView) ------------------------------------------------

  /** @internal */
  get now(): () => number {
    return this.manager.now;
  }

  /** @internal When a cookie set now with lifetime `maxAge` expires: never after the session. */
  cookieExpiry(maxAge: number): number {
    return Math.min(this.lastActive + maxAge, this.absoluteExpiry);
  }

  /** @internal This session's cookie lifetime from now on, kept with the session. */
  setCookieMaxAge(maxAge: number | undefined): void {
    this.assertLoaded();
    this.cookieMaxAge = maxAge;
    this.values.writeHidden(COOKIE_MAX_AGE_KEY, maxAge ?? null);
    this.reissue = true;
  }

  // --- used by the runtime ----------------------------------------------------------------

  /**
   * Loads the session, without waiting when nothing has to be waited for (a sealed cookie, a store
   * that answers synchronously, a request without a cookie). Returns a promise only while the
   * store is read; throws or rejects with the store's error.
   */
  loadNow(): Promise<void> | undefined {
    if (this.state === 'loaded') return this.lockWanted ? this.lockLate() : this.relocking;
    // A load without the lock is under way (a parallel resolver): the lock follows it.
    if (this.loading)
      return this.lockWanted ? this.loading.then(() => this.loadNow()) : this.loading;
    const pending = this.startLoad();
    if (!pending) {
      this.loaded();
      return undefined;
    }
    this.loading = pending
      .then(() => this.loaded())
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  /** Asks for the per-session lock when the session is loaded (`@SessionLock()`). */
  requireLock(): void {
    this.lockWanted = true;
  }

  /** Releases the session's lock if this request holds it. Safe to call more than once. */
  async release(): Promise<void> {
    const held = this.lockHeld;
    if (!held) return;
    this.lockHeld = undefined;
    await this.manager.unlock(held.key, held.owner);
  }

  /** Whether this request holds the session's lock. */
  get holdsLock(): boolean {
    return this.lockHeld !== undefined;
  }

  /** The server-side id once the session is loaded (express-session's `req.sessionID`). */
  get sessionId(): string | undefined {
    return this.state === 'loaded' ? this.currentKey() : undefined;
  }

  /** @internal A session settled as the response ended could not be saved. */
  reportUnsaved(error: unknown): void {
    this.manager.reportUnsaved(error);
  }

  /** Whether anything loaded the session during this request. */
  get isLoaded(): boolean {
    return this.state === 'loaded';
  }

  /** Drops changes not yet saved (a handler failed). Destroy and saved changes stay. */
  rollback(): void {
    if (this.state !== 'loaded') return;
    this.values.discard();
    this.touchRequested = false;
    this.persistRequested = false;
    this.rotate = false;
    this.token = this.storedToken;
    this.key = this.storedKey;
    this.applySettings();
  }

  /**
   * Writes this request's changes in one atomic call to the backend and sets the cookie when it
   * changed. Does nothing for a session nobody loaded, or one without changes. Returns a promise
   * only while the backend is written; `undefined` when the commit finished at once (or had
   * nothing to do).
   */
  commit(options: { explicit?: boolean } = {}): Promise<void> | undefined {
    if (this.state !== 'loaded') return undefined;
    if (this.manager.options.maxSessionsPerUser !== undefined) {
      const user = this.pendingUser();
      if (user !== null && user !== this.storedUser) return this.commitLogin(user, options);
    }
    return this.commitChanges(options.explicit === true);
  }

  /**
   * A commit that makes the session `user`'s while sessions per user are limited (REV-3): under
   * the user's lock, the limit is checked before anything changes (a refused login leaves the
   * session as it was), then the commit, then the eviction of the user's oldest other sessions.
   */
  private async commitLogin(user: string, options: { explicit?: boolean }): Promise<void> {
    const m = this.manager;
    await m.withUserLock(user, async () => {
      await m.checkSessionLimit(user);
      await this.commitChanges(options.explicit === true);
      // Nothing was stored when the cookie could not be set: then there is nothing to trim for.
      if (this.storedUser === user) await m.evictBeyondLimit(user, this.storedKey as string);
    });
  }

  /** {@link commit} itself: the plan of this request's delta, carried out. */
  private commitChanges(explicit: boolean): Promise<void> | undefined {
    const m = this.manager;
    const now = m.now();
    let delta = this.values.delta();
    const user = this.pendingUser();
    const plan = planCommit({
      holdsSessions: m.backend.holdsSessions,
      persisted: this.storedKey !== undefined,
      storedUser: this.storedUser,
      user,
      rotating: this.rotate,
      replacing: this.values.replace,
      changedKeys: Object.keys(delta.set).length,
      removedKeys: delta.unset.length,
      keepEmpty: m.options.saveUninitialized || this.persistRequested,
      touchDue: this.touchRequested || now - this.lastActive >= this.touchAfter(),
      reissue: this.reissue,
      hasResponse: this.carrier !== undefined,
      persistentCookie: this.cookieMaxAge !== undefined,
    });
    if (plan.clearDeadCookie) {
      if (this.deadCookie && this.carrier) m.clearCookie(this.carrier);
      this.deadCookie = false;
    }
    if (plan.action === 'skip') return undefined;
    if (plan.rotate) this.rotateToken();
    if (plan.keepOnlyWritten) {
      // Another user does not inherit what the previous one left in the session.
      const written = delta.set;
      this.values.keepOnly((key) => key in written);
      delta = this.values.delta();
    }
    const sendCookie = this.cookieGoesOut(plan, explicit);
    if (sendCookie === undefined) return undefined;

    if (plan.action === 'cookie') return this.sendCookie(sendCookie, now, undefined);
    if (plan.action === 'touch') return this.touchStored(sendCookie, now);
    const write = this.buildWrite(plan.action, now, delta.set, delta.unset, user);
    const { values } = this;
    values.assertFits(write.set, m.options.maxSize);
    const save = {
      write,
      texts: () => values.finalTexts(write.set),
      previousUser: this.storedUser,
    };
    const saving = write.lockOwner === undefined ? m.backend.save(save) : this.saveFenced(save);
    if (saving instanceof Promise) {
      return saving.then((values) => this.stored(write, sendCookie, now, values));
    }
    return this.stored(write, sendCookie, now, saving);
  }

  /** A write under this request's lock; its refusal goes through `fencedWriteFailure`. */
  private saveFenced(save: SessionSave): ReturnType<SessionBackend['save']> {
    const m = this.manager;
    const locked = save.write.previousKey ?? save.write.key;
    let saving: ReturnType<SessionBackend['save']>;
    try {
      saving = m.backend.save(save);
    } catch (error) {
      throw m.fencedWriteFailure(error, locked);
    }
    if (!(saving instanceof Promise)) return saving;
    return saving.catch((error: unknown) => {
      throw m.fencedWriteFailure(error, locked);
    });
  }

  /**
   * Whether the plan's cookie can go out; `undefined` when the plan needs it and it cannot (CK-2,
   * headers already sent): then nothing is written, since the browser would never hold it.
   */
  private cookieGoesOut(plan: CommitPlan, explicit: boolean): boolean | undefined {
    const http = this.carrier;
    if (!http) {
      // A first save, a new id (regenerate, a change of user) or a new seal: the browser would
      // keep a cookie that no longer leads anywhere.
      if (plan.cookie === 'required') {
        throw new SessionError(
          'SESSION_NO_TRANSPORT',
          'This change needs a response to carry the session cookie (a new id, or a sealed session); it cannot be made without one (SessionService.withSession(), withCookieHeader())',
        );
      }
      return false;
    }
    if (plan.cookie === 'none') return false;
    const send = this.manager.canSetCookie(http, explicit);
    return send || plan.cookie === 'wanted' ? send : undefined;
  }

  /** Records activity only; a session destroyed meanwhile stays destroyed (this request only read it). */
  private touchStored(sendCookie: boolean, now: number): Promise<void> {
    const times = { lastActiveAt: now, expiresAt: this.expiryFrom(now, this.storedUser) };
    return this.manager.backend.touch(this.storedKey as string, times).then((alive) => {
      this.touchRequested = false;
      if (!alive) return;
      this.lastActive = now;
      this.sendCookie(sendCookie, now, undefined);
    });
  }

  private stored(
    write: SessionWrite,
    sendCookie: boolean,
    now: number,
    values: readonly string[] | undefined,
  ): undefined {
    this.applyWrite(write);
    return this.sendCookie(sendCookie, now, values);
  }

  /** Sets the cookie: the values a write chose (a seal), or the signed token. */
  private sendCookie(send: boolean, now: number, values: readonly string[] | undefined): undefined {
    const http = this.carrier;
    if (!send || !http) return undefined;
    const parts =
      values ?? (this.token === undefined ? undefined : this.manager.backend.cookieFor(this.token));
    if (!parts) return undefined;
    this.manager.setCookies(http, parts, this.absoluteExpiry, now, this.cookieMaxAge);
    this.reissue = false;
    return undefined;
  }

  // --- data access, for the `req.session` proxy ---------------------------------------------

  /** @internal */
  has(key: string): boolean {
    return this.values.has(key);
  }

  // --- internals ------------------------------------------------------------------------------

  private assertLoaded(): void {
    if (this.state !== 'loaded') {
      throw new SessionError(
        'SESSION_NOT_LOADED',
        'The session is not loaded yet: take it with @Session(), protect the route with SessionGuard, call `await req.session.load()` first, or set `eager: true` in SessionModule.forRoot() for middleware that reads req.session synchronously (Passport)',
      );
    }
  }

  private currentKey(): string {
    if (this.key === undefined) {
      this.token = SessionTokenSigner.mint();
      this.key = SessionTokenSigner.storageKey(this.token);
    }
    return this.key;
  }

  private expiryFrom(lastActive: number, user: string | null): number {
    return Math.min(lastActive + this.idleFor(user), this.absoluteExpiry);
  }

  /** The idle timeout that applies: the session's own, and at most `anonymousIdleTimeout` without a user. */
  private idleFor(user: string | null): number {
    const { anonymousIdleTimeout } = this.manager.options;
    return user === null ? Math.min(this.idleTimeout, anonymousIdleTimeout) : this.idleTimeout;
  }

  /** Activity is recorded at least this often: `touchAfter`, or half a shorter idle timeout. */
  private touchAfter(): number {
    return Math.min(this.manager.options.touchAfter, Math.floor(this.idleFor(this.storedUser) / 2));
  }

  /** Starts loading: the record named by the source's id, or the one the cookie points to. */
  private startLoad(): Promise<void> | undefined {
    const m = this.manager;
    const { source, carrier } = this;
    if (source && 'id' in source) {
      return Promise.resolve(this.fetch(source.id, false)).then((record) => {
        if (!record) throw new SessionGoneError();
        this.adopt(record, undefined);
      });
    }
    let cookieHeader: string | undefined;
    if (carrier) {
      m.varyOnCookie(carrier);
      cookieHeader = carrier.cookieHeader();
    } else {
      cookieHeader = source?.cookieHeader;
    }
    const values = m.backend.presented(cookieHeader);
    if (values.length === 0) return undefined;
    this.deadCookie = true;
    const opened = m.backend.open(values, (key) => this.fetch(key, true));
    if (opened instanceof Promise) return opened.then((found) => this.adoptOpened(found));
    return this.adoptOpened(opened);
  }

  private adoptOpened(opened: OpenedSession | undefined): undefined {
    if (!opened) return undefined;
    this.adopt(opened.record, opened.token);
    this.reissue = opened.stale;
    this.deadCookie = false;
    return undefined;
  }

  private loaded(): void {
    if (this.storedKey === undefined) this.startNew();
    this.state = 'loaded';
    // A hooked route handler commits the session after it returns. Otherwise (a guard, an
    // interceptor or middleware used it on a route whose handler does not take it) the response
    // commits it just before it ends. A guard on a hooked route needs no such commit, unless
    // `req.session` is used before the handler, which may then never run (an interceptor's cache).
    const http = this.carrier;
    if (http && !http.routeCommits && (this.outsideRoute || !http.routeWillCommit)) {
      http.settleBeforeResponse(this);
    }
  }

  /** @internal `req.session` was read: middleware, a guard or an interceptor may change the session. */
  usedOutsideRoute(): void {
    if (this.outsideRoute) return;
    this.outsideRoute = true;
    const http = this.carrier;
    if (this.state === 'loaded' && http && !http.routeCommits) http.settleBeforeResponse(this);
  }

  /**
   * Called as the response ends, for a session that no hooked handler committed: commits it (or,
   * after an error status, rolls it back unless `commitOnError`) and releases its lock. Returns a
   * promise only while the store is written.
   */
  settleAtEnd(status: number): Promise<void> | undefined {
    // Hooked only once loaded (see loaded()); the route may have committed it since.
    if (this.carrier?.routeCommits) return undefined;
    return this.settle(status < 400 && !this.failedExchange);
  }

  /**
   * The request failed although its status will not show it (a GraphQL resolver threw: the
   * response is still a 200): the response's end rolls the session back as after an error status.
   */
  failAtEnd(): void {
    this.failedExchange = true;
  }

  /**
   * Ends this request's use of the session: commits after success (and after a failure with
   * `commitOnError`), rolls back otherwise, and releases the lock. Returns a promise only while the
   * store is written or the lock released; rejects (the lock released) when the commit fails.
   * `keepLock`: for each value of an observable handler, whose later values are committed under
   * the same lock; {@link release} gives it back when the observable ends.
   */
  settle(succeeded: boolean, keepLock = false): Promise<void> | undefined {
    let committing: Promise<void> | undefined;
    try {
      this.keepPrivate();
      if (succeeded || this.manager.options.commitOnError) committing = this.commit();
      else this.rollback();
    } catch (error) {
      // Refused before any store call (too large, say): the lock still goes.
      if (!this.holdsLock || keepLock) throw error;
      return this.release().then(() => Promise.reject(error));
    }
    if (keepLock || !this.holdsLock) return committing;
    return (committing ?? Promise.resolve()).finally(() => this.release());
  }

  /**
   * A response that read a logged-in session shows that user's data: `Cache-Control: private,
   * no-store`, so that neither a shared cache nor the back button after logout shows it again,
   * unless the handler chose its own (`cacheControl: false` turns this off).
   */
  private keepPrivate(): void {
    const http = this.carrier;
    if (!http || !this.manager.options.cacheControl || http.headersSent()) return;
    if (this.state !== 'loaded' || (this.storedUser === null && this.pendingUser() === null)) {
      return;
    }
    if (http.getHeader('cache-control') === undefined) {
      http.setHeader('Cache-Control', 'private, no-store');
    }
  }

  /**
   * Reads a live record, first taking its lock when this request must hold it (`@SessionLock()`,
   * `concurrency: 'serialize'`): the lock comes before the read, so the holder sees every write of
   * the previous holder. `presented`: the key came from a verified cookie.
   */
  private fetch(
    key: string,
    presented: boolean,
  ): SessionRecord | null | Promise<SessionRecord | null> {
    const m = this.manager;
    if (!this.lockWanted && m.options.concurrency !== 'serialize') {
      return m.backend.find(key, presented);
    }
    return this.lockAndLoad(key, presented);
  }

  /**
   * `@SessionLock()` asked for by a session loaded without the lock (`eager: true` loaded it for
   * Passport, or another resolver of the GraphQL request did): takes the lock now and reads the
   * session again under it, so that the locked section still sees every write of the previous
   * holder. A session this request changed before the lock was held is refused (409), the lock
   * released: those changes rest on a read the lock did not cover. Nothing to do for a session not
   * stored yet, a sealed one, or one this request holds or has held (`fence`, kept after release).
   */
  private lockLate(): Promise<void> | undefined {
    this.lockWanted = false;
    // Asked again (each `@Session()` of the route does) while the lock is being taken.
    if (this.relocking) return this.relocking;
    const key = this.storedKey;
    if (
      key === undefined ||
      this.lockHeld ||
      this.fence?.key === key ||
      !this.manager.backend.holdsSessions
    ) {
      return undefined;
    }
    if (this.changedSinceLoad()) throw this.lateLockRefused();
    const token = this.storedToken;
    this.relocking = this.lockAndLoad(key, true)
      .then(async (record) => {
        // Another resolver of this request wrote while the lock was taken.
        if (this.changedSinceLoad()) {
          await this.release();
          throw this.lateLockRefused();
        }
        if (record) this.adopt(record, token);
        else this.startNew();
      })
      .finally(() => {
        this.relocking = undefined;
      });
    return this.relocking;
  }

  /** Drops the changes made without the lock (none may be saved, `commitOnError` or not): 409. */
  private lateLockRefused(): SessionConflictError {
    this.rollback();
    return new SessionConflictError(
      "This request changed the session before @SessionLock() held the session's lock; nothing was written",
    );
  }

  /** Whether this request changed the session since it was read (data, id, user). */
  private changedSinceLoad(): boolean {
    const { set, unset } = this.values.delta();
    return (
      Object.keys(set).length > 0 ||
      unset.length > 0 ||
      this.values.replace ||
      this.rotate ||
      this.pendingUser() !== this.storedUser
    );
  }

  private async lockAndLoad(key: string, presented: boolean): Promise<SessionRecord | null> {
    const m = this.manager;
    const owner = await m.lock(key);
    this.lockHeld = { key, owner };
    this.fence = this.lockHeld;
    // Whatever way the request ends (even a guard or filter that skips the handler).
    this.carrier?.onClose(() => void this.release());
    try {
      const record = await m.backend.find(key, presented);
      // Held on a live session: a later loadNow() of this request must not lock again (lockLate).
      // A dead key (the first of several cookies) gives the lock back; the next key still locks.
      if (record) this.lockWanted = false;
      else await this.release();
      return record;
    } catch (error) {
      await this.release();
      throw error;
    }
  }

  private adopt(record: SessionRecord, token: string | undefined): void {
    this.token = token;
    this.storedToken = token;
    this.key = record.key;
    this.storedKey = record.key;
    this.created = record.createdAt;
    this.lastActive = record.lastActiveAt;
    this.absoluteExpiry = record.absoluteExpiresAt;
    this.storedUser = record.userId;
    this.values.reset(record.data);
    this.applySettings();
  }

  /** The session's own settings (idle timeout, cookie lifetime) as stored, or the module's. */
  private applySettings(): void {
    const { options } = this.manager;
    this.idleTimeout = idleTimeoutOf(this.values.storedText(IDLE_TIMEOUT_KEY), options.idleTimeout);
    this.cookieMaxAge = cookieMaxAgeOf(
      this.values.storedText(COOKIE_MAX_AGE_KEY),
      options.cookie.maxAge,
    );
  }

  private startNew(): void {
    const now = this.manager.now();
    const { options } = this.manager;
    this.token = undefined;
    this.storedToken = undefined;
    this.key = undefined;
    this.storedKey = undefined;
    this.created = now;
    this.lastActive = now;
    this.absoluteExpiry = now + options.absoluteTimeout;
    this.idleTimeout = options.idleTimeout;
    this.cookieMaxAge = options.cookie.maxAge;
    this.storedUser = null;
    this.values.reset(undefined);
    this.rotate = false;
    this.reissue = false;
    this.persistRequested = false;
  }

  /** The session's user as this request leaves it (the `userKey` data key). */
  private pendingUser(): string | null {
    const { userKey, userField } = this.manager.options;
    if (this.values.isTouched(userKey)) {
      const value = this.values.valueOf(userKey);
      if (userField === undefined) return userIdOf(value);
      return userIdOf(
        typeof value === 'object' && value !== null
          ? (value as Record<string, unknown>)[userField]
          : undefined,
      );
    }
    // Removing the key (a logout that keeps the session) is a change of user too.
    return this.values.isRemoved(userKey) ? null : this.storedUser;
  }

  private async doRegenerate(options: SessionRegenerateOptions<T>): Promise<void> {
    await this.load();
    const keep = options.keep ?? true;
    if (keep === false) this.values.keepOnly(() => false);
    else if (Array.isArray(keep)) {
      for (const key of this.values.keys()) if (!keep.includes(key)) this.values.remove(key);
    }
    this.rotateToken();
  }

  private rotateToken(): void {
    if (this.storedKey !== undefined) this.rotate = true;
    this.token = SessionTokenSigner.mint();
    this.key = SessionTokenSigner.storageKey(this.token);
  }

  private async doDestroy(): Promise<void> {
    await this.load();
    const m = this.manager;
    const key = this.storedKey;
    if (key !== undefined) {
      const userId = this.storedUser;
      await m.backend.end({ key, userId, absoluteExpiresAt: this.absoluteExpiry });
      m.events.emit('destroyed', { key, userId });
    }
    this.startNew();
    this.deadCookie = false;
    const http = this.carrier;
    if (key !== undefined && http) {
      m.clearCookie(http);
      if (m.options.clearSiteData && !http.headersSent()) {
        http.setHeader('Clear-Site-Data', m.options.clearSiteData);
      }
    }
  }

  private async doReload(): Promise<void> {
    await this.load();
    if (!this.manager.backend.holdsSessions) {
      // The cookie is the only copy: reloading means forgetting this request's changes.
      this.rollback();
      return;
    }
    const key = this.storedKey;
    // The stored session's token: a regenerate() before the reload is dropped with the changes.
    const token = this.storedToken;
    this.startNew();
    if (key === undefined) return;
    const record = await this.manager.backend.find(key);
    if (record) this.adopt(record, token);
  }

  private buildWrite(
    kind: 'create' | 'update',
    now: number,
    set: Record<string, string>,
    unset: string[],
    userId: string | null,
  ): SessionWrite {
    const { replace } = this.values;
    const optimistic =
      kind === 'update' && !replace && this.manager.options.concurrency === 'optimistic';
    const key = this.currentKey();
    const previousKey = this.rotate ? this.storedKey : undefined;
    const lock = this.fence;
    return {
      kind,
      key,
      previousKey,
      replace: replace || undefined,
      expect: optimistic ? this.values.expected([...Object.keys(set), ...unset]) : undefined,
      // Fenced: the store refuses the write if this request's lock has passed to another.
      lockOwner: kind === 'update' && lock?.key === (previousKey ?? key) ? lock.owner : undefined,
      set,
      unset: replace ? [] : unset,
      userId,
      createdAt: this.created,
      lastActiveAt: now,
      expiresAt: this.expiryFrom(now, userId),
      absoluteExpiresAt: this.absoluteExpiry,
    };
  }

  private applyWrite(write: SessionWrite): void {
    const { events } = this.manager;
    if (write.kind === 'create') {
      events.emit('created', { key: write.key, userId: write.userId });
    } else if (write.previousKey !== undefined) {
      events.emit('regenerated', {
        key: write.key,
        previousKey: write.previousKey,
        userId: write.userId,
      });
    }
    this.values.stored(write.set, write.unset, write.replace === true);
    this.storedToken = this.token;
    this.storedKey = write.key;
    this.storedUser = write.userId;
    this.lastActive = write.lastActiveAt;
    this.rotate = false;
    this.touchRequested = false;
  }
}

/** Runs a promise and reports to a Node-style callback (express-session / Passport compatibility). */
function settle(promise: Promise<unknown>, callback: Callback): void {
  promise.then(
    () => callback(),
    (err: unknown) => callback(err),
  );
}

/** What `req.session` exposes of the handle: the {@link Session} API. Any other name is a data key. */
const PUBLIC_MEMBERS: ReadonlySet<string | symbol> = new Set([
  'data',
  'id',
  'cookie',
  'isNew',
  'createdAt',
  'lastActiveAt',
  'expiresAt',
  'get',
  'set',
  'unset',
  'regenerate',
  'destroy',
  'save',
  'reload',
  'touch',
  'setIdleTimeout',
  'createCsrfToken',
  'load',
]);

/**
 * Traps for `req.session`: the {@link Session} API, with methods bound to the handle; any other
 * string property reads and writes a data key, as `req.session.x` does with express-session
 * (Passport relies on it). The handle's internals are out of reach: `req.session.token = …` is a
 * data key, and enumerating or serialising `req.session` shows the data only.
 */
const HANDLE_TRAPS: ProxyHandler<SessionHandle<object>> = {
  get(target, prop) {
    if (PUBLIC_MEMBERS.has(prop)) {
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function'
        ? target.bound(prop as string, value as (...args: unknown[]) => unknown)
        : value;
    }
    // Promise resolution probes `then`; the handle is not a thenable.
    if (typeof prop === 'symbol' || prop === 'then') return undefined;
    return (target.dataNow() as Record<string, unknown>)[prop];
  },
  set(target, prop, value) {
    // The API's members are read-only (`id` cannot be assigned: TOK-10).
    if (typeof prop === 'symbol' || PUBLIC_MEMBERS.has(prop)) return false;
    (target.dataNow() as Record<string, unknown>)[prop] = value;
    return true;
  },
  deleteProperty(target, prop) {
    if (typeof prop === 'symbol' || PUBLIC_MEMBERS.has(prop)) return false;
    delete (target.dataNow() as Record<string, unknown>)[prop];
    return true;
  },
  has(target, prop) {
    return (
      PUBLIC_MEMBERS.has(prop) || (typeof prop === 'string' && target.isLoaded && target.has(prop))
    );
  },
  ownKeys(target) {
    return target.isLoaded ? Reflect.ownKeys(target.data) : [];
  },
  getOwnPropertyDescriptor(target, prop) {
    return target.isLoaded ? Reflect.getOwnPropertyDescriptor(target.data, prop) : undefined;
  },
};
