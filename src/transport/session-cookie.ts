import { serialize } from 'cookie';
import { MAX_COOKIE_AGE_MS, type ResolvedCookieOptions } from '../session.options.js';

/** Cookie headers longer than this are ignored outright (IN-1): no parsing, no crypto. */
export const MAX_COOKIE_HEADER = 8192;
/** Browsers keep at most 4096 bytes of `name=value`; longer session values are refused (CK-8). */
export const MAX_COOKIE_BYTES = 4096;

/**
 * At most this many verified same-name cookies are looked up per request (CK-15), bounding store
 * reads; every copy's signature is checked (the header's size bounds them, a check is cheap).
 */
export const MAX_COOKIES_LOOKED_UP = 3;

/** A `Cookie` header as one string: one sent more than once (an array) is one header of all its cookies. */
export function joinCookieHeader(
  header: string | readonly string[] | undefined,
): string | undefined {
  return typeof header === 'string' ? header : header?.join('; ');
}

/**
 * Every value of the cookie `name` in a Cookie header, in order. A browser can send the same name
 * twice (cookie tossing from a sibling domain or path); we return all of them so that a forged copy
 * can never shadow the genuine one (CK-15). Values over 4096 bytes are skipped.
 */
export function readCookieValues(header: string | undefined, name: string): string[] {
  if (!header || header.length > MAX_COOKIE_HEADER) return [];
  const values: string[] = [];
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq !== -1 && eq < end && header.slice(start, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length > 1 && value.charCodeAt(0) === 34 && value.endsWith('"')) {
        value = value.slice(1, -1);
      }
      if (value.length > 0 && value.length <= MAX_COOKIE_BYTES) values.push(value);
    }
    start = end + 1;
  }
  return values;
}

/** Builds the session's `Set-Cookie` header values. */
export class SessionCookieWriter {
  /** `; Path=/; HttpOnly; …` per cookie name and `Secure`, for cookies without `Max-Age`. */
  private readonly attributes = new Map<string, string>();

  constructor(private readonly options: ResolvedCookieOptions) {}

  get name(): string {
    return this.options.name;
  }

  /** Whether the cookie may carry `Secure` on this request, and whether it may be sent at all. */
  secureFor(secureRequest: boolean): { send: boolean; secure: boolean } {
    const { secure } = this.options;
    if (secure === 'auto') return { send: true, secure: secureRequest };
    if (secure) return { send: secureRequest, secure: true };
    return { send: true, secure: false };
  }

  /**
   * The header that sets the session cookie. `Max-Age` is the configured `maxAge` capped by the
   * time left until `absoluteExpiresAt` (CK-9); without `maxAge` it is a browser-session cookie,
   * whose attributes are the same every time: they are serialized once. `value` is made by this
   * library (base64url, `.` and `~` only).
   */
  serialize(
    value: string,
    secure: boolean,
    absoluteExpiresAt: number,
    now: number,
    name = this.options.name,
    /** This session's cookie lifetime, if not the configured one (`undefined`: a browser-session cookie). */
    maxAge: number | undefined = this.options.maxAge,
  ): string {
    if (maxAge !== undefined) {
      const ms = Math.min(maxAge, absoluteExpiresAt - now, MAX_COOKIE_AGE_MS);
      return this.build(name, value, secure, Math.max(0, Math.floor(ms / 1000)));
    }
    const key = secure ? `${name};secure` : name;
    let attributes = this.attributes.get(key);
    if (attributes === undefined) {
      attributes = this.build(name, '', secure, undefined).slice(name.length + 1);
      this.attributes.set(key, attributes);
    }
    return `${name}=${value}${attributes}`;
  }

  /** The header that deletes the cookie: same name, path and domain, empty value, expired (CK-10). */
  serializeClear(secure: boolean, name = this.options.name): string {
    return this.build(name, '', secure, 0);
  }

  private build(
    name: string,
    value: string,
    secure: boolean,
    maxAgeSeconds: number | undefined,
  ): string {
    const o = this.options;
    return serialize(name, value, {
      path: o.path,
      domain: o.domain,
      httpOnly: o.httpOnly,
      secure,
      sameSite: o.sameSite,
      partitioned: o.partitioned,
      priority: o.priority,
      maxAge: maxAgeSeconds,
      expires: maxAgeSeconds === 0 ? new Date(0) : undefined,
    });
  }
}
