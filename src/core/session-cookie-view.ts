import { SessionError } from '../session.errors.js';
import type { ResolvedCookieOptions } from '../session.options.js';

/**
 * The session cookie as `req.session.cookie` shows it in express-session, for middleware that
 * expects it: its attributes, and its lifetime, which a handler can change for this session
 * ("remember me"). The server's own timeouts still decide when the session ends.
 */
export interface SessionCookie {
  /**
   * Milliseconds until the cookie expires in the browser, or `null` for a browser-session cookie.
   * Assigning sets this session's cookie lifetime from now on (kept with the session, sent with
   * this response); `null` makes it a browser-session cookie. Never beyond the absolute timeout.
   * @example session.cookie.maxAge = 30 * 24 * 3600 * 1000 // remember me
   */
  maxAge: number | null;
  /** When the cookie expires in the browser, or `null` for a browser-session cookie. Assignable, like `maxAge`. */
  expires: Date | null;
  /** This session's cookie lifetime in milliseconds (`cookie.maxAge` of the module unless changed), or `null`. */
  readonly originalMaxAge: number | null;
  readonly httpOnly: boolean;
  readonly secure: boolean | 'auto';
  readonly sameSite: 'lax' | 'strict' | 'none';
  readonly path: string;
  readonly domain: string | undefined;
}

/** What the view needs of the session it belongs to. */
export interface CookieLifetime {
  /** This session's cookie lifetime (`undefined`: a browser-session cookie). */
  readonly cookieMaxAge: number | undefined;
  /** When the cookie set now would expire, for a lifetime. */
  cookieExpiry(maxAge: number): number;
  /** Changes this session's cookie lifetime. */
  setCookieMaxAge(maxAge: number | undefined): void;
  readonly now: () => number;
}

/** {@link SessionCookie} over a session handle. */
export class SessionCookieView implements SessionCookie {
  constructor(
    private readonly session: CookieLifetime,
    private readonly options: ResolvedCookieOptions,
  ) {}

  get maxAge(): number | null {
    const own = this.session.cookieMaxAge;
    return own === undefined ? null : this.session.cookieExpiry(own) - this.session.now();
  }

  set maxAge(value: number | null) {
    if (value === null || value === undefined) {
      this.session.setCookieMaxAge(undefined);
      return;
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new SessionError(
        'SESSION_INVALID_TIMEOUT',
        `session.cookie.maxAge takes milliseconds (a finite number ≥ 0) or null; got ${JSON.stringify(value)}`,
      );
    }
    this.session.setCookieMaxAge(Math.floor(value));
  }

  get expires(): Date | null {
    const own = this.session.cookieMaxAge;
    return own === undefined ? null : new Date(this.session.cookieExpiry(own));
  }

  set expires(value: Date | null) {
    if (value === null || value === undefined) {
      this.session.setCookieMaxAge(undefined);
      return;
    }
    if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
      throw new SessionError(
        'SESSION_INVALID_TIMEOUT',
        'session.cookie.expires takes a valid Date or null',
      );
    }
    this.maxAge = Math.max(0, value.getTime() - this.session.now());
  }

  get originalMaxAge(): number | null {
    return this.session.cookieMaxAge ?? null;
  }

  get httpOnly(): boolean {
    return this.options.httpOnly;
  }

  get secure(): boolean | 'auto' {
    return this.options.secure;
  }

  get sameSite(): 'lax' | 'strict' | 'none' {
    return this.options.sameSite;
  }

  get path(): string {
    return this.options.path;
  }

  get domain(): string | undefined {
    return this.options.domain;
  }

  /** What `JSON.stringify(req.session.cookie)` shows, as express-session does. */
  toJSON(): Record<string, unknown> {
    return {
      originalMaxAge: this.originalMaxAge,
      expires: this.expires,
      httpOnly: this.httpOnly,
      secure: this.secure,
      sameSite: this.sameSite,
      path: this.path,
      domain: this.domain,
    };
  }
}
