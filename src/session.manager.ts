import type { IncomingMessage, ServerResponse } from 'node:http';
import { Logger } from '@nestjs/common';
import { SessionError, SessionGoneError, SessionStoreUnavailableError } from './session.errors.js';
import type { SessionRecord, SessionStore } from './interfaces/session-store.interface.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionHandle, type SessionExchange } from './session.js';
import {
  SessionCookieWriter,
  isSecureRequest,
  readCookieValues,
} from './transport/session-cookie.js';
import { SessionTokenSigner } from './transport/session-token.js';

/** At most this many same-name cookies are tried per request (CK-15), bounding store reads. */
const MAX_COOKIES_TRIED = 3;

type SessionRequest = IncomingMessage & { session?: unknown };

/**
 * The session runtime shared by the middleware, interceptor, guard and service: resolved options,
 * the store, the token signer and the cookie writer. One per `SessionModule`.
 */
export class SessionManager {
  readonly signer: SessionTokenSigner;
  readonly cookie: SessionCookieWriter;
  private readonly logger = new Logger('SessionModule');
  private warnedInsecure = false;

  constructor(
    readonly options: ResolvedSessionOptions,
    readonly store: SessionStore,
  ) {
    this.signer = new SessionTokenSigner(options.secrets, options.cookie.name);
    this.cookie = new SessionCookieWriter(options.cookie);
  }

  /** The session of a request, attached on first use; also available as `req.session`. */
  handleFor(req: IncomingMessage, res: ServerResponse): SessionHandle {
    const request = req as SessionRequest;
    const existing = request.session;
    if (existing instanceof SessionHandle) return existing;
    const handle = new SessionHandle(this, { req, res });
    request.session = handle.proxy;
    return handle.proxy;
  }

  /** A session loaded by id, outside any HTTP request (`SessionService.withSession`). */
  handleForKey(key: string): SessionHandle {
    return new SessionHandle(this, undefined, key).proxy;
  }

  /** Values of our cookie in the request, at most a few. */
  cookieValues(req: IncomingMessage): string[] {
    const values = readCookieValues(req.headers.cookie, this.options.cookie.name);
    return values.length > MAX_COOKIES_TRIED ? values.slice(0, MAX_COOKIES_TRIED) : values;
  }

  /**
   * Loads a record and applies the server's own expiry rules, whatever the store's TTL did (TO-3):
   * an expired record is deleted and reported as absent.
   */
  async loadLive(key: string): Promise<SessionRecord | null> {
    const record = await this.storeCall(() => this.store.load(key));
    if (!record) return null;
    if (this.isExpired(record, Date.now())) {
      await this.storeCall(() => this.store.destroy(key));
      return null;
    }
    return record;
  }

  isExpired(record: SessionRecord, now: number): boolean {
    const { idleTimeout, absoluteTimeout } = this.options;
    return (
      now >= record.expiresAt ||
      now >= record.absoluteExpiresAt ||
      now >= record.createdAt + absoluteTimeout ||
      now >= record.lastActiveAt + idleTimeout
    );
  }

  /** Runs a store call; failures other than "session gone" become `SessionStoreUnavailableError`. */
  async storeCall<R>(call: () => Promise<R>): Promise<R> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof SessionGoneError || error instanceof SessionStoreUnavailableError) {
        throw error;
      }
      throw new SessionStoreUnavailableError(error);
    }
  }

  /**
   * Whether a cookie can be set on this response: headers not yet sent, and `Secure` cookies only
   * over HTTPS (CK-2, with a warning). An explicit `save()` after headers were sent throws.
   */
  canSetCookie({ req, res }: SessionExchange, explicit: boolean): boolean {
    if (res.headersSent) {
      if (explicit) {
        throw new SessionError(
          'SESSION_HEADERS_SENT',
          'session.save() was called after the response headers were sent; save before writing the response',
        );
      }
      this.logger.warn(
        'The response was sent before the session was saved, so its cookie could not be set. ' +
          'In handlers that use @Res(), call `await session.save()` before writing the response.',
      );
      return false;
    }
    if (!this.cookie.secureFor(isSecureRequest(req, this.options.trustProxy)).send) {
      if (!this.warnedInsecure) {
        this.warnedInsecure = true;
        this.logger.warn(
          'A Secure session cookie was not sent because the request came over plain HTTP. Serve over HTTPS, ' +
            "set 'trustProxy: true' behind a TLS-terminating proxy, or use cookie.secure: 'auto' / false in development.",
        );
      }
      return false;
    }
    return true;
  }

  setCookie({ req, res }: SessionExchange, token: string, absoluteExpiresAt: number, now: number) {
    const { secure } = this.cookie.secureFor(isSecureRequest(req, this.options.trustProxy));
    const header = this.cookie.serialize(this.signer.sign(token), secure, absoluteExpiresAt, now);
    this.replaceSetCookie(res, header);
  }

  /** Responses that depend on the session vary with the Cookie header (CK-12). */
  varyOnCookie(res: ServerResponse): void {
    if (res.headersSent) return;
    const vary = res.getHeader('vary');
    if (vary === undefined) res.setHeader('Vary', 'Cookie');
    else if (!/(^|,)\s*(cookie|\*)\s*(,|$)/i.test(String(vary))) res.setHeader('Vary', `${String(vary)}, Cookie`);
  }

  /** Expires the cookie in the browser, with the same name, path and domain (CK-10). */
  clearCookie({ req, res }: SessionExchange): void {
    if (res.headersSent) return;
    const { secure } = this.cookie.secureFor(isSecureRequest(req, this.options.trustProxy));
    this.replaceSetCookie(res, this.cookie.serializeClear(secure));
  }

  private replaceSetCookie(res: ServerResponse, header: string): void {
    const prefix = `${this.cookie.name}=`;
    const current = res.getHeader('set-cookie');
    const others = (Array.isArray(current) ? current : current ? [String(current)] : []).filter(
      (value) => !value.startsWith(prefix),
    );
    res.setHeader('Set-Cookie', [...others, header]);
    // Responses that carry a session cookie must never be cached (CK-12).
    res.setHeader('Cache-Control', 'no-store');
  }
}
