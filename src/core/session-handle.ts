import {
  SessionCookieTooLargeError,
  SessionError,
  SessionGoneError,
  SessionTooLargeError,
} from '../session.errors.js';
import type { SessionRecord, SessionWrite } from '../interfaces/session-store.interface.js';
import type { SessionCarrier } from './session-carrier.js';
import type { SessionRuntime } from './session-runtime.js';
import { MAX_COOKIE_BYTES, MAX_COOKIES_LOOKED_UP } from '../transport/session-cookie.js';
import type { SealedSession } from '../transport/session-sealer.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import { parseDuration } from '../utils/duration.js';
import { IDLE_TIMEOUT_KEY, idleTimeoutOf } from '../utils/idle-timeout.js';
import {
  isForbiddenKey,
  isPortableText,
  parseStoredJson,
  stringifySessionValue,
} from '../utils/json.js';

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
 * The session of one request (or of one `SessionService.withSession` call).
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
 * The implementation behind {@link Session}. Loads lazily, tracks which keys were read or written,
 * and turns them into one atomic store write at commit.
 * @internal
 */
export class SessionHandle<T extends object = Record<string, unknown>> implements Session<T> {
  private proxyView: this | undefined;
  /** The API's methods bound to this handle, for `req.session`. */
  private boundMethods: Map<string, unknown> | undefined;

  private state: State = 'unloaded';
  private loading: Promise<void> | undefined;
  /** Current token; minted lazily for new sessions. */
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
  /** JSON text of each key as the store holds it. */
  private texts = new Map<string, string>();
  /** Parsed values of keys read or written in this request. */
  private values: Record<string, unknown> = Object.create(null);
  /** Keys handed out or assigned; only these can have changed. */
  private readonly touched = new Set<string>();
  private readonly removed = new Set<string>();
  private storedUser: string | null = null;
  private rotate = false;
  private replace = false;
  private touchRequested = false;
  /** A CSRF token was handed out: save this session even with no data. */
  private persistRequested = false;
  /** The cookie verified under an old secret: re-issue it under the first one. */
  private reissue = false;
  /** The request carried our cookie but it did not lead to a live session. */
  private deadCookie = false;
  private dataView: Partial<T> | undefined;
  /** This request must hold the session's lock while it uses the session. */
  private lockWanted = false;
  private lockHeld: { key: string; owner: string } | undefined;

  constructor(
    private readonly manager: SessionRuntime,
    /** The transport of the request the session belongs to; absent for `withSession`. */
    readonly carrier: SessionCarrier | undefined,
    private readonly loadKey?: string,
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
    return (this.dataView ??= new Proxy(this.values, new DataTraps(this)) as Partial<T>);
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

  get<K extends keyof T & string>(key: K): T[K] | undefined {
    this.assertLoaded();
    return this.read(key) as T[K] | undefined;
  }

  set<K extends keyof T & string>(key: K, value: T[K] | undefined): void {
    this.assertLoaded();
    this.write(key, value);
  }

  unset(key: keyof T & string): void {
    this.assertLoaded();
    this.remove(key);
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
    this.values[IDLE_TIMEOUT_KEY] = ms;
    this.touched.add(IDLE_TIMEOUT_KEY);
    this.removed.delete(IDLE_TIMEOUT_KEY);
  }

  async load(): Promise<this> {
    await this.loadNow();
    return this;
  }

  // --- used by the runtime ----------------------------------------------------------------

  /**
   * Loads the session, without waiting when nothing has to be waited for (a sealed cookie, a store
   * that answers synchronously, a request without a cookie). Returns a promise only while the
   * store is read; throws or rejects with the store's error.
   */
  loadNow(): Promise<void> | undefined {
    if (this.state === 'loaded') return undefined;
    if (this.loading) return this.loading;
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
    this.values = Object.create(null);
    this.dataView = undefined;
    this.touched.clear();
    this.removed.clear();
    this.touchRequested = false;
    this.persistRequested = false;
    this.rotate = false;
    this.replace = false;
    this.token = this.storedToken;
    this.key = this.storedKey;
    this.idleTimeout = idleTimeoutOf(
      this.texts.get(IDLE_TIMEOUT_KEY),
      this.manager.options.idleTimeout,
    );
  }

  /**
   * Writes this request's changes in one atomic store call and sets the cookie when it changed.
   * Does nothing for a session nobody loaded, or one without changes. Returns a promise only while
   * a store call is pending; `undefined` when the commit finished at once (or had nothing to do).
   */
  commit(options: { explicit?: boolean } = {}): Promise<void> | undefined {
    if (this.state !== 'loaded') return undefined;
    if (this.manager.options.maxSessionsPerUser !== undefined) {
      const user = this.pendingUser();
      if (user !== null && user !== this.storedUser) return this.commitLogin(user, options);
    }
    return this.commitChanges(options);
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
      await this.commitChanges(options);
      // Nothing was stored when the cookie could not be set: then there is nothing to trim for.
      if (this.storedUser === user) await m.evictBeyondLimit(user, this.storedKey as string);
    });
  }

  /**
   * Whether a new session stays unstored: nothing written to it, no `saveUninitialized`, no CSRF
   * token handed out. A dead cookie the request carried is then cleared.
   */
  private skipsCreate(set: Record<string, string>): boolean {
    const m = this.manager;
    if (Object.keys(set).length > 0 || m.options.saveUninitialized || this.persistRequested) {
      return false;
    }
    if (this.deadCookie && this.carrier) m.clearCookie(this.carrier);
    this.deadCookie = false;
    return true;
  }

  /** Whether activity is to be recorded: asked for with `touch()`, or `touchAfter` has passed. */
  private touchDue(now: number): boolean {
    return this.touchRequested || now - this.lastActive >= this.touchAfter();
  }

  /** {@link commit} itself: the delta of this request, written in one store call. */
  private commitChanges(options: { explicit?: boolean }): Promise<void> | undefined {
    const m = this.manager;
    const now = this.manager.now();
    const { set, unset } = this.delta();
    const user = this.pendingUser();
    const persisted = this.storedKey !== undefined;

    if (persisted && user !== this.storedUser) {
      // A change of user is a privilege change: a new id (LC-2), unless this request already
      // minted one. Another user does not inherit what the previous one left in the session.
      if (!this.rotate) this.rotateToken();
      if (this.storedUser !== null && user !== null) this.keepOnly(set);
    }
    // The session's own idle timeout belongs to the browser's session, not to its data: a write
    // that replaces the data (regenerate({ keep: false }), another user) keeps it.
    if (this.replace && this.idleTimeout < m.options.idleTimeout) {
      set[IDLE_TIMEOUT_KEY] = String(this.idleTimeout);
    }

    if (m.sealer) return this.commitSealed(options.explicit === true, now, set, unset, user);

    let write: SessionWrite | undefined;
    let touchOnly = false;
    if (!persisted) {
      if (this.skipsCreate(set)) return undefined;
      write = this.buildWrite('create', now, set, [], user);
    } else if (this.replace || this.rotate || unset.length > 0 || Object.keys(set).length > 0) {
      write = this.buildWrite('update', now, set, unset, user);
    } else if (this.touchDue(now)) {
      touchOnly = true;
    } else if (!this.reissue) {
      return undefined;
    }

    const needsCookie = write?.kind === 'create' || this.rotate;
    const http = this.carrier;
    let sendCookie = false;
    if (http) {
      const refresh = write !== undefined || touchOnly;
      if (needsCookie || this.reissue || (refresh && m.options.cookie.maxAge !== undefined)) {
        sendCookie = m.canSetCookie(http, options.explicit === true);
        // Never store a session whose cookie cannot reach the browser (CK-2, headers already sent).
        if (needsCookie && !sendCookie) return undefined;
      }
    } else if (this.rotate) {
      throw new SessionError(
        'SESSION_NO_TRANSPORT',
        'regenerate() needs an HTTP response to send the new cookie; it cannot be used in withSession()',
      );
    }

    if (write) this.assertSize(this.finalTexts(write.set));
    return this.store(write, touchOnly, sendCookie, now);
  }

  /** The store half of {@link commit}: the write (or the touch), then the cookie. */
  private store(
    write: SessionWrite | undefined,
    touchOnly: boolean,
    sendCookie: boolean,
    now: number,
  ): Promise<void> | undefined {
    const m = this.manager;
    if (write) {
      const saving = m.saveNow(write);
      if (saving) return saving.then(() => this.stored(write, sendCookie, now));
      return this.stored(write, sendCookie, now);
    }
    if (touchOnly) {
      const times = { lastActiveAt: now, expiresAt: this.expiryFrom(now, this.storedUser) };
      // A session destroyed meanwhile stays destroyed; this request only read it.
      return m
        .storeCall(() => m.store.touch(this.storedKey as string, times))
        .then((alive) => {
          this.touchRequested = false;
          if (!alive) return;
          this.lastActive = now;
          this.sendCookie(sendCookie, now);
        });
    }
    return this.sendCookie(sendCookie, now);
  }

  private stored(write: SessionWrite, sendCookie: boolean, now: number): undefined {
    this.applyWrite(write);
    return this.sendCookie(sendCookie, now);
  }

  private sendCookie(send: boolean, now: number): undefined {
    const m = this.manager;
    if (send && this.carrier && this.token !== undefined) {
      m.setCookies(this.carrier, [m.signer.sign(this.token)], this.absoluteExpiry, now);
      this.reissue = false;
    }
    return undefined;
  }

  /**
   * Sealed mode: the cookie is the store. Seals the session after the same delta rules (changes,
   * a due touch, a key rotation) and sets it; a seal over 4096 bytes fails before anything is sent.
   */
  private commitSealed(
    explicit: boolean,
    now: number,
    set: Record<string, string>,
    unset: string[],
    user: string | null,
  ): Promise<void> | undefined {
    const m = this.manager;
    const http = this.carrier;
    if (!http) {
      throw new SessionError(
        'SESSION_UNSUPPORTED',
        "Sealed sessions exist only in a request's cookie",
      );
    }
    const persisted = this.storedKey !== undefined;
    const changed = this.replace || this.rotate || unset.length > 0 || Object.keys(set).length > 0;
    if (!persisted) {
      if (this.skipsCreate(set)) return undefined;
    } else if (!changed && !this.reissue && !this.touchDue(now)) {
      return undefined;
    }
    if (!m.canSetCookie(http, explicit)) return undefined;
    const write = this.buildWrite(persisted ? 'update' : 'create', now, set, unset, user);
    const data = this.finalTexts(write.set);
    this.assertSize(data);
    const value = m.sealer!.seal({
      id: write.key,
      userId: user,
      createdAt: this.created,
      lastActiveAt: now,
      absoluteExpiresAt: this.absoluteExpiry,
      sealedAt: now,
      data,
    });
    const parts = m.cookieParts(value);
    if (!parts) {
      const limit = MAX_COOKIE_BYTES * m.options.cookieChunks;
      throw new SessionCookieTooLargeError(
        Buffer.byteLength(m.cookie.name) + 1 + value.length,
        limit,
      );
    }
    const done = () => {
      this.applyWrite(write);
      m.setCookies(http, parts, this.absoluteExpiry, now);
      this.reissue = false;
    };
    if (write.previousKey !== undefined && m.options.revocationStore) {
      // The old id's cookie may have been copied: it must not outlive the regenerate.
      return m.revoke(write.previousKey, this.storedUser === null, this.absoluteExpiry).then(done);
    }
    done();
    return undefined;
  }

  // --- data access, through `data` and get/set/unset ----------------------------------------

  /** @internal */
  read(key: string): unknown {
    if (this.removed.has(key) || key === IDLE_TIMEOUT_KEY) return undefined;
    let value: unknown;
    if (key in this.values) {
      value = this.values[key];
    } else {
      const text = this.texts.get(key);
      if (text === undefined) return undefined;
      value = parseStoredJson(text);
    }
    // An object handed out may be changed in place, so it is compared at commit; a primitive
    // cannot change without an assignment, which marks it itself.
    if (typeof value === 'object' && value !== null) this.touched.add(key);
    this.values[key] = value;
    return value;
  }

  /** @internal */
  write(key: string, value: unknown): void {
    if (value === undefined) return this.remove(key);
    if (
      typeof key !== 'string' ||
      isForbiddenKey(key) ||
      key === IDLE_TIMEOUT_KEY ||
      !isPortableText(key)
    ) {
      throw new SessionError(
        'SESSION_INVALID_KEY',
        `${JSON.stringify(key)} cannot be a session key`,
      );
    }
    this.removed.delete(key);
    this.touched.add(key);
    this.values[key] = value;
  }

  /** @internal */
  remove(key: string): void {
    if (key === IDLE_TIMEOUT_KEY) return;
    delete this.values[key];
    this.touched.delete(key);
    if (this.texts.has(key)) this.removed.add(key);
  }

  /** @internal */
  has(key: string): boolean {
    return (
      key !== IDLE_TIMEOUT_KEY &&
      !this.removed.has(key) &&
      (key in this.values || this.texts.has(key))
    );
  }

  /** @internal */
  keys(): string[] {
    const keys = this.liveKeys();
    keys.delete(IDLE_TIMEOUT_KEY);
    return [...keys];
  }

  /** Every key the session will hold after this request, hidden ones included. */
  private liveKeys(): Set<string> {
    const keys = new Set(Object.keys(this.values));
    for (const key of this.texts.keys()) if (!this.removed.has(key)) keys.add(key);
    return keys;
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

  /** Starts loading: the record named by `loadKey`, or the one the request's cookie points to. */
  private startLoad(): Promise<void> | undefined {
    const m = this.manager;
    if (this.loadKey !== undefined) {
      return Promise.resolve(this.loadLocked(this.loadKey)).then((record) => {
        if (!record) throw new SessionGoneError();
        this.adopt(record, undefined);
      });
    }
    const http = this.carrier;
    if (!http) return undefined;
    m.varyOnCookie(http);
    const values = m.sealer ? m.sealedValues(http) : m.cookieValues(http);
    this.deadCookie = values.length > 0;
    return m.sealer ? this.openSealed(values, 0, this.manager.now()) : this.loadSigned(values, 0);
  }

  private loaded(): void {
    if (this.storedKey === undefined) this.startNew();
    this.state = 'loaded';
    // A hooked route handler commits the session after it returns. Otherwise (a guard, an
    // interceptor or middleware used it on a route whose handler does not take it) the response
    // commits it just before it ends.
    if (this.carrier && !this.carrier.routeCommits) this.carrier.settleBeforeResponse(this);
  }

  /**
   * Called as the response ends, for a session that no hooked handler committed: commits it (or,
   * after an error status, rolls it back unless `commitOnError`) and releases its lock. Returns a
   * promise only while the store is written.
   */
  settleAtEnd(status: number): Promise<void> | undefined {
    // Hooked only once loaded (see loaded()); the route may have committed it since.
    if (this.carrier?.routeCommits) return undefined;
    return this.settle(status < 400);
  }

  /**
   * Ends this request's use of the session: commits after success (and after a failure with
   * `commitOnError`), rolls back otherwise, and releases the lock. Returns a promise only while the
   * store is written or the lock released; rejects (the lock released) when the commit fails.
   */
  settle(succeeded: boolean): Promise<void> | undefined {
    let committing: Promise<void> | undefined;
    try {
      this.keepPrivate();
      if (succeeded || this.manager.options.commitOnError) committing = this.commit();
      else this.rollback();
    } catch (error) {
      // Refused before any store call (too large, say): the lock still goes.
      if (!this.holdsLock) throw error;
      return this.release().then(() => Promise.reject(error));
    }
    if (!committing && !this.holdsLock) return undefined;
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
   * Store mode: the first cookie value that verifies and names a live record, from `from` on. Every
   * copy's signature is checked; only verified ones reach the store, at most a few (CK-15).
   */
  private loadSigned(
    values: readonly string[],
    from: number,
    lookups = 0,
  ): Promise<void> | undefined {
    const m = this.manager;
    for (let i = from; i < values.length && lookups < MAX_COOKIES_LOOKED_UP; i++) {
      const verified = m.signer.verify(values[i]);
      if (!verified) {
        m.events.emit('invalid', { reason: 'signature' });
        continue;
      }
      lookups++;
      const found = this.loadLocked(SessionTokenSigner.storageKey(verified.token), true);
      if (found instanceof Promise) {
        const tried = lookups;
        return found.then((record) =>
          record ? this.adoptFromCookie(record, verified) : this.loadSigned(values, i + 1, tried),
        );
      }
      if (found) return this.adoptFromCookie(found, verified);
    }
    return undefined;
  }

  /** Sealed mode: the first cookie value that opens, is unexpired and not revoked, from `from` on. */
  private openSealed(
    values: readonly string[],
    from: number,
    now: number,
  ): Promise<void> | undefined {
    const m = this.manager;
    for (let i = from; i < values.length; i++) {
      const opened = m.sealer!.open(values[i], now);
      if (!opened) {
        m.events.emit('invalid', { reason: 'seal' });
        continue;
      }
      const record = sealedRecord(opened.session, m.options);
      if (m.isExpired(record, now)) {
        m.expired(record, now);
        continue;
      }
      if (m.options.revocationStore) {
        return m
          .isRevoked(opened.session)
          .then((revoked) =>
            revoked
              ? this.openSealed(values, i + 1, now)
              : this.adoptFromCookie(record, { token: undefined, stale: opened.stale }),
          );
      }
      return this.adoptFromCookie(record, { token: undefined, stale: opened.stale });
    }
    return undefined;
  }

  private adoptFromCookie(
    record: SessionRecord,
    cookie: { token: string | undefined; stale: boolean },
  ): undefined {
    this.adopt(record, cookie.token);
    this.reissue = cookie.stale;
    this.deadCookie = false;
    return undefined;
  }

  /**
   * Loads a record, first taking its lock when this request must hold it (`@SessionLock()`,
   * `concurrency: 'serialize'`): the lock comes before the read, so the holder sees every write of
   * the previous holder.
   */
  private loadLocked(
    key: string,
    presented = false,
  ): SessionRecord | null | Promise<SessionRecord | null> {
    const m = this.manager;
    if (!this.lockWanted && m.options.concurrency !== 'serialize') {
      return m.loadLiveNow(key, presented);
    }
    return this.lockAndLoad(key, presented);
  }

  private async lockAndLoad(key: string, presented: boolean): Promise<SessionRecord | null> {
    const m = this.manager;
    const owner = await m.lock(key);
    this.lockHeld = { key, owner };
    // Whatever way the request ends (even a guard or filter that skips the handler).
    this.carrier?.onClose(() => void this.release());
    try {
      const record = await m.loadLive(key, presented);
      if (!record) await this.release();
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
    this.idleTimeout = idleTimeoutOf(
      record.data[IDLE_TIMEOUT_KEY],
      this.manager.options.idleTimeout,
    );
    this.storedUser = record.userId;
    this.texts = new Map(Object.entries(record.data));
  }

  private startNew(): void {
    const now = this.manager.now();
    this.token = undefined;
    this.storedToken = undefined;
    this.key = undefined;
    this.storedKey = undefined;
    this.created = now;
    this.lastActive = now;
    this.absoluteExpiry = now + this.manager.options.absoluteTimeout;
    this.idleTimeout = this.manager.options.idleTimeout;
    this.storedUser = null;
    this.texts = new Map();
    this.values = Object.create(null);
    this.dataView = undefined;
    this.touched.clear();
    this.removed.clear();
    this.rotate = false;
    this.replace = false;
    this.reissue = false;
    this.persistRequested = false;
  }

  /** The session's user as this request leaves it (the `userKey` data key). */
  private pendingUser(): string | null {
    const { userKey, userField } = this.manager.options;
    if (this.touched.has(userKey)) {
      const value = this.values[userKey];
      if (userField === undefined) return userIdOf(value);
      return userIdOf(
        typeof value === 'object' && value !== null
          ? (value as Record<string, unknown>)[userField]
          : undefined,
      );
    }
    // Removing the key (a logout that keeps the session) is a change of user too.
    return this.removed.has(userKey) ? null : this.storedUser;
  }

  private async doRegenerate(options: SessionRegenerateOptions<T>): Promise<void> {
    await this.load();
    const keep = options.keep ?? true;
    if (keep === false) {
      for (const key of this.keys()) this.remove(key);
      this.replace = true;
    } else if (Array.isArray(keep)) {
      for (const key of this.keys()) if (!keep.includes(key)) this.remove(key);
    }
    this.rotateToken();
  }

  private rotateToken(): void {
    if (this.storedKey !== undefined) this.rotate = true;
    this.token = SessionTokenSigner.mint();
    this.key = SessionTokenSigner.storageKey(this.token);
  }

  /** Keeps only the keys in `set` (this request's writes); the write will replace the stored data. */
  private keepOnly(set: Record<string, string>): void {
    for (const key of this.keys()) if (!(key in set)) this.remove(key);
    this.replace = true;
  }

  private async doDestroy(): Promise<void> {
    await this.load();
    const m = this.manager;
    const hadSession = this.storedKey !== undefined;
    if (hadSession && m.sealer) {
      if (m.options.revocationStore) {
        await m.revoke(this.storedKey as string, this.storedUser === null, this.absoluteExpiry);
      }
    } else if (hadSession) {
      await m.storeCall(() => m.store.destroy(this.storedKey as string));
    }
    if (hadSession) m.events.emit('destroyed', { key: this.storedKey, userId: this.storedUser });
    this.startNew();
    this.deadCookie = false;
    const http = this.carrier;
    if (hadSession && http) {
      m.clearCookie(http);
      if (m.options.clearSiteData && !http.headersSent()) {
        http.setHeader('Clear-Site-Data', m.options.clearSiteData);
      }
    }
  }

  private async doReload(): Promise<void> {
    await this.load();
    if (this.manager.sealer) {
      // The cookie is the only copy: reloading means forgetting this request's changes.
      this.rollback();
      return;
    }
    const key = this.storedKey;
    // The stored session's token: a regenerate() before the reload is dropped with the changes.
    const token = this.storedToken;
    this.startNew();
    if (key === undefined) return;
    const record = await this.manager.loadLive(key);
    if (record) this.adopt(record, token);
  }

  /** Changed and removed keys, as JSON texts, compared with what the store holds. */
  private delta(): { set: Record<string, string>; unset: string[] } {
    // After a regenerate that starts empty, the store drops everything: write every live key.
    const base = this.replace ? undefined : this.texts;
    const set: Record<string, string> = Object.create(null);
    for (const key of this.touched) {
      let text: string | undefined;
      try {
        text = stringifySessionValue(this.values[key]);
      } catch (cause) {
        if (cause instanceof SessionError) throw cause;
        throw new SessionError(
          'SESSION_NOT_SERIALIZABLE',
          `Session key "${key}" holds a value that cannot be saved as JSON`,
          { cause },
        );
      }
      if (text === undefined) {
        throw new SessionError(
          'SESSION_NOT_SERIALIZABLE',
          `Session key "${key}" holds a value that cannot be saved as JSON`,
        );
      }
      if (base?.get(key) !== text) set[key] = text;
    }
    const unset: string[] = [];
    for (const key of this.removed) if (this.texts.has(key)) unset.push(key);
    return { set, unset };
  }

  private buildWrite(
    kind: 'create' | 'update',
    now: number,
    set: Record<string, string>,
    unset: string[],
    userId: string | null,
  ): SessionWrite {
    let expect: Record<string, string | null> | undefined;
    if (kind === 'update' && !this.replace && this.manager.options.concurrency === 'optimistic') {
      expect = {};
      for (const key of [...Object.keys(set), ...unset]) expect[key] = this.texts.get(key) ?? null;
    }
    return {
      kind,
      key: this.currentKey(),
      previousKey: this.rotate ? this.storedKey : undefined,
      replace: this.replace || undefined,
      expect,
      set,
      unset: this.replace ? [] : unset,
      userId,
      createdAt: this.created,
      lastActiveAt: now,
      expiresAt: this.expiryFrom(now, userId),
      absoluteExpiresAt: this.absoluteExpiry,
    };
  }

  /** Every key's JSON text once `set` is applied: what the store (or the seal) will hold. */
  private finalTexts(set: Readonly<Record<string, string>>): Record<string, string> {
    const texts: Record<string, string> = Object.create(null);
    for (const key of this.liveKeys()) {
      const text = set[key] ?? (this.replace ? undefined : this.texts.get(key));
      if (text !== undefined) texts[key] = text;
    }
    return texts;
  }

  private assertSize(texts: Record<string, string>): void {
    let size = 0;
    for (const key of Object.keys(texts))
      size += Buffer.byteLength(key) + Buffer.byteLength(texts[key]);
    if (size > this.manager.options.maxSize) {
      throw new SessionTooLargeError(size, this.manager.options.maxSize);
    }
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
    if (write.replace) this.texts = new Map();
    this.storedToken = this.token;
    for (const key of write.unset) this.texts.delete(key);
    for (const key of Object.keys(write.set)) this.texts.set(key, write.set[key]);
    this.removed.clear();
    this.storedKey = write.key;
    this.storedUser = write.userId;
    this.lastActive = write.lastActiveAt;
    this.rotate = false;
    this.replace = false;
    this.touchRequested = false;
  }
}

/** A sealed session seen as a store record, so that one set of expiry rules covers both modes. */
function sealedRecord(
  session: SealedSession,
  options: { idleTimeout: number; anonymousIdleTimeout: number },
): SessionRecord {
  // The session's own idle timeout, if any, is in its data, where isExpired() applies it.
  const idle = session.userId === null ? options.anonymousIdleTimeout : options.idleTimeout;
  return {
    key: session.id,
    data: session.data,
    userId: session.userId,
    createdAt: session.createdAt,
    lastActiveAt: session.lastActiveAt,
    expiresAt: Math.min(session.lastActiveAt + idle, session.absoluteExpiresAt),
    absoluteExpiresAt: session.absoluteExpiresAt,
    version: 0,
  };
}

/** Runs a promise and reports to a Node-style callback (express-session / Passport compatibility). */
function settle(promise: Promise<unknown>, callback: Callback): void {
  promise.then(
    () => callback(),
    (err: unknown) => callback(err),
  );
}

/**
 * Traps for `session.data`: reads parse stored JSON lazily and mark the key as touched, writes and
 * deletes go through the handle. One instance per handle, created only when `data` is used.
 */
class DataTraps implements ProxyHandler<Record<string, unknown>> {
  constructor(private readonly handle: SessionHandle<object>) {}

  get(_target: Record<string, unknown>, prop: string | symbol): unknown {
    if (typeof prop === 'symbol') return undefined;
    return this.handle.read(prop);
  }

  set(_target: Record<string, unknown>, prop: string | symbol, value: unknown): boolean {
    if (typeof prop === 'symbol') return false;
    this.handle.write(prop, value);
    return true;
  }

  deleteProperty(_target: Record<string, unknown>, prop: string | symbol): boolean {
    if (typeof prop === 'string') this.handle.remove(prop);
    return true;
  }

  has(_target: Record<string, unknown>, prop: string | symbol): boolean {
    return typeof prop === 'string' && this.handle.has(prop);
  }

  ownKeys(): string[] {
    return this.handle.keys();
  }

  getOwnPropertyDescriptor(
    _target: Record<string, unknown>,
    prop: string | symbol,
  ): PropertyDescriptor | undefined {
    if (typeof prop !== 'string' || !this.handle.has(prop)) return undefined;
    return { value: this.handle.read(prop), writable: true, enumerable: true, configurable: true };
  }

  defineProperty(
    _target: Record<string, unknown>,
    prop: string | symbol,
    descriptor: PropertyDescriptor,
  ): boolean {
    if (typeof prop !== 'string' || !('value' in descriptor)) return false;
    this.handle.write(prop, descriptor.value);
    return true;
  }
}

/** What `req.session` exposes of the handle: the {@link Session} API. Any other name is a data key. */
const PUBLIC_MEMBERS: ReadonlySet<string | symbol> = new Set([
  'data',
  'id',
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
