import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { resolveSessionOptions } from '../session.options.js';
import { SessionCookieWriter, readCookieValues } from './session-cookie.js';

const SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';
const writer = (cookie = {}, env = { NODE_ENV: 'test' }) =>
  new SessionCookieWriter(resolveSessionOptions({ secret: SECRET, cookie }, env).cookie);

describe('readCookieValues', () => {
  it('returns every value of the name, in order (CK-15)', () => {
    expect(readCookieValues('a=1; sid=x; b=2; sid=y', 'sid')).toEqual(['x', 'y']);
    expect(readCookieValues('sidx=1; xsid=2', 'sid')).toEqual([]);
    expect(readCookieValues(' sid = "quoted" ', 'sid')).toEqual(['quoted']);
    expect(readCookieValues('sid=', 'sid')).toEqual([]);
    expect(readCookieValues(undefined, 'sid')).toEqual([]);
  });

  it('ignores oversized headers and values (IN-1)', () => {
    expect(readCookieValues(`sid=${'a'.repeat(5000)}`, 'sid')).toEqual([]);
    expect(readCookieValues(`x=${'a'.repeat(9000)}; sid=ok`, 'sid')).toEqual([]);
  });

  it('never throws on arbitrary headers', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (header) => {
        const values = readCookieValues(header, 'sid');
        expect(Array.isArray(values)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('SessionCookieWriter', () => {
  it('defaults to HttpOnly, SameSite=Lax, Path=/, host-only, browser-session (CK-1, CK-3, CK-5, CK-14)', () => {
    const header = writer().serialize('v', false, Date.now() + 3_600_000, Date.now());
    expect(header).toBe('sid=v; Path=/; HttpOnly; SameSite=Lax');
  });

  it('uses __Host- and Secure in production (CK-4, CFG-1)', () => {
    const w = writer({}, { NODE_ENV: 'production' });
    expect(w.name).toBe('__Host-sid');
    expect(w.serialize('v', true, Date.now() + 1000, Date.now())).toBe(
      '__Host-sid=v; Path=/; HttpOnly; Secure; SameSite=Lax',
    );
    expect(w.secureFor(false)).toEqual({ send: false, secure: true });
  });

  it("follows the request with secure: 'auto'", () => {
    const w = writer({ secure: 'auto' });
    expect(w.secureFor(true)).toEqual({ send: true, secure: true });
    expect(w.secureFor(false)).toEqual({ send: true, secure: false });
  });

  it('caps Max-Age at the remaining absolute lifetime and at 400 days (CK-9)', () => {
    const now = Date.now();
    expect(writer({ maxAge: '2h' }).serialize('v', false, now + 3_600_000, now)).toContain(
      'Max-Age=3600',
    );
    expect(writer({ maxAge: '20m' }).serialize('v', false, now + 3_600_000, now)).toContain(
      'Max-Age=1200',
    );
    const twoYears = writer({ maxAge: 2 * 365 * 86_400_000 });
    expect(twoYears.serialize('v', false, now + 10 * 365 * 86_400_000, now)).toContain(
      'Max-Age=34560000',
    );
  });

  it('clears with the same name, path and domain, empty value, Max-Age=0 and a past Expires (CK-10)', () => {
    const w = writer({ path: '/app', domain: 'example.com', sameSite: 'strict' });
    expect(w.serializeClear(false)).toBe(
      'sid=; Max-Age=0; Domain=example.com; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict',
    );
  });

  it('writes Partitioned and Priority when asked', () => {
    const w = writer({ secure: true, partitioned: true, priority: 'high' });
    const header = w.serialize('v', true, Date.now() + 1000, Date.now());
    expect(header).toContain('Partitioned');
    expect(header).toContain('Priority=High');
  });
});
