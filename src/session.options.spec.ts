import { describe, expect, it } from '@jest/globals';
import { SessionConfigError } from './session.errors.js';
import { resolveSessionOptions } from './session.options.js';
import { parseDuration } from './utils/duration.js';

const SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';
const dev = { NODE_ENV: 'development' };
const prod = { NODE_ENV: 'production' };
type Options = Parameters<typeof resolveSessionOptions>[0];
const resolve = (options: Partial<Options>, env: NodeJS.ProcessEnv = dev) =>
  resolveSessionOptions({ secret: SECRET, ...options } as Options, env);
const refuses = (options: Partial<Options>, message: RegExp, env: NodeJS.ProcessEnv = dev) =>
  expect(() => resolve(options, env)).toThrow(message);

describe('resolveSessionOptions', () => {
  it('has documented, safe defaults (TO-7, CFG-1)', () => {
    const o = resolve({});
    expect(o.idleTimeout).toBe(30 * 60_000);
    expect(o.absoluteTimeout).toBe(12 * 3_600_000);
    expect(o.touchAfter).toBe(60_000);
    expect(o.saveUninitialized).toBe(false);
    expect(o.commitOnError).toBe(false);
    expect(o.userKey).toBe('userId');
    expect(o.maxSize).toBe(65_536);
    expect(o.cookie).toEqual({
      name: 'sid',
      httpOnly: true,
      secure: false,
      sameSite: 'lax',
      path: '/',
      domain: undefined,
      maxAge: undefined,
      partitioned: false,
      priority: undefined,
    });
    const p = resolve({}, prod);
    expect(p.cookie.secure).toBe(true);
    expect(p.cookie.name).toBe('__Host-sid');
  });

  it('names a Secure cookie with a domain or a path __Secure-sid, since __Host- could not hold (CK-4)', () => {
    expect(resolve({ cookie: { domain: 'example.com' } }, prod).cookie.name).toBe('__Secure-sid');
    expect(resolve({ cookie: { path: '/app' } }, prod).cookie.name).toBe('__Secure-sid');
    expect(resolve({ cookie: { domain: 'example.com' } }).cookie.name).toBe('sid');
  });

  it('makes the cookie Secure everywhere but local development and tests (CK-2)', () => {
    for (const NODE_ENV of ['production', 'staging', 'preview']) {
      expect(resolve({}, { NODE_ENV }).cookie).toMatchObject({ secure: true, name: '__Host-sid' });
    }
    for (const NODE_ENV of [undefined, '', 'development', 'test']) {
      expect(resolve({}, { NODE_ENV }).cookie).toMatchObject({ secure: false, name: 'sid' });
    }
  });

  it('accepts durations as milliseconds or strings', () => {
    const o = resolve({ idleTimeout: '15m', absoluteTimeout: '14d', touchAfter: 5000 });
    expect([o.idleTimeout, o.absoluteTimeout, o.touchAfter]).toEqual([
      900_000,
      14 * 86_400_000,
      5000,
    ]);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    for (const bad of ['', '10', '10 weeks', '-1s', 0, -5, Number.NaN, Infinity, null]) {
      expect(parseDuration(bad)).toBeUndefined();
    }
    refuses({ idleTimeout: '30 minutes' }, /'idleTimeout' must be/);
  });

  it('requires a secret of at least 32 characters, and says how to make one', () => {
    expect(() => resolveSessionOptions({} as Options, dev)).toThrow(
      /'secret' is required.*randomBytes/,
    );
    refuses({ secret: 'short' }, /'secret' is 5 characters long; use at least 32/);
    refuses({ secret: [SECRET, 'short'] }, /'secret\[1\]' is 5 characters/);
    refuses({ secret: [] }, /'secret' is required/);
  });

  it('accepts 32+ random bytes as a secret, and refuses fewer (EC-7)', () => {
    expect(resolve({ secret: Buffer.alloc(32, 7) }, prod).secrets).toHaveLength(1);
    refuses(
      { secret: Buffer.alloc(31) },
      /'secret' is 31 bytes long; use at least 32 random bytes/,
    );
  });

  it('refuses weak or placeholder secrets in production and warns elsewhere (KEY-5)', () => {
    const weak = 'a'.repeat(40);
    const placeholder = 'change-me-change-me-change-me-change-me-1234';
    refuses({ secret: weak }, /weak \(it repeats too few distinct characters\)/, prod);
    refuses({ secret: placeholder }, /weak \(it looks like a placeholder\)/, prod);
    expect(resolve({ secret: weak }).warnings.join()).toMatch(/would be refused in production/);
  });

  it('turns clearSiteData into the header value, and refuses unknown types (CK-13)', () => {
    expect(resolve({}).clearSiteData).toBeUndefined();
    expect(resolve({ clearSiteData: true }).clearSiteData).toBe('"cookies", "storage"');
    expect(resolve({ clearSiteData: ['cache', 'cookies'] }).clearSiteData).toBe(
      '"cache", "cookies"',
    );
    refuses({ clearSiteData: ['executionContexts' as never] }, /clearSiteData/);
    refuses({ clearSiteData: [] }, /clearSiteData/);
  });

  it('accepts trusted origins written as origins only, lowercased', () => {
    expect(
      resolve({ trustedOrigins: ['https://App.example.com', 'http://localhost:5173/'] })
        .trustedOrigins,
    ).toEqual(['https://app.example.com', 'http://localhost:5173']);
    refuses({ trustedOrigins: ['https://app.example.com/login'] }, /is not an origin/);
    refuses({ trustedOrigins: ['app.example.com'] }, /is not an origin/);
    refuses({ trustedOrigins: 'https://app.example.com' as never }, /must be an array/);
  });

  it('refuses SameSite=None without Secure (CK-3)', () => {
    refuses({ cookie: { sameSite: 'none' } }, /sameSite: "none"' needs 'cookie.secure: true'/);
    expect(resolve({ cookie: { sameSite: 'none', secure: true } }).cookie.sameSite).toBe('none');
  });

  it('enforces cookie prefix rules (CK-4)', () => {
    refuses(
      { cookie: { name: '__Host-s', secure: false } },
      /'__Host-' cookie name needs 'cookie.secure: true'/,
    );
    refuses(
      { cookie: { name: '__Host-s', secure: true, domain: 'a.com' } },
      /may not have a domain/,
    );
    refuses(
      { cookie: { name: '__Host-s', secure: true, path: '/x' } },
      /needs 'cookie.path: "\/"'/,
    );
    refuses({ cookie: { name: '__Secure-s', secure: 'auto' } }, /'__Secure-' cookie name needs/);
  });

  it('refuses cookie names, paths and domains that could inject attributes (CK-7)', () => {
    refuses({ cookie: { name: 'a=b; Max-Age=9; x' } }, /'cookie.name' must be a cookie token/);
    refuses({ cookie: { name: 'sid\r\nX: y' } }, /'cookie.name'/);
    refuses({ cookie: { name: 'séance' } }, /'cookie.name'/);
    refuses({ cookie: { path: '/;Domain=evil' } }, /'cookie.path' must start with '\/'/);
    refuses({ cookie: { path: 'app' } }, /'cookie.path'/);
    refuses({ cookie: { domain: 'evil.com; Path=/' } }, /'cookie.domain' must be a host name/);
  });

  it('refuses inconsistent timeouts', () => {
    refuses(
      { idleTimeout: '2h', absoluteTimeout: '1h' },
      /'absoluteTimeout' .* is shorter than 'idleTimeout'/,
    );
    refuses(
      { idleTimeout: '1m', touchAfter: '2m' },
      /'touchAfter' .* must be shorter than 'idleTimeout'/,
    );
  });

  it('remembers 1000 opened seals in sealed mode unless told, and refuses a bad sealCache at boot', () => {
    expect(resolve({ mode: 'sealed' }).sealCache).toBe(1000);
    expect(resolve({ mode: 'sealed', sealCache: 0 }).sealCache).toBe(0);
    for (const sealCache of [-1, 1.5, Number.NaN, 2_000_000, '10' as unknown as number]) {
      refuses({ mode: 'sealed', sealCache }, /'sealCache' must be a whole number from 0/);
    }
    refuses({ sealCache: 10 }, /'sealCache' is for mode: 'sealed'/);
  });

  it('refuses unknown options with the list of known ones', () => {
    refuses(
      { secrets: SECRET } as Partial<Options>,
      /unknown option 'secrets'. Known options: secret,/,
    );
    refuses(
      { cookie: { sameSites: 'lax' } } as Partial<Options>,
      /unknown option 'cookie.sameSites'/,
    );
  });

  it('refuses a store that is not a SessionStore, pointing at the adapter', () => {
    refuses(
      { store: { get() {}, set() {} } as unknown as Options['store'] },
      /ExpressSessionStoreAdapter/,
    );
  });

  it('throws SessionConfigError with a stable code', () => {
    try {
      resolve({ maxSize: 1 });
      throw new Error('did not throw');
    } catch (error) {
      expect(error).toBeInstanceOf(SessionConfigError);
      expect((error as SessionConfigError).code).toBe('SESSION_CONFIG_INVALID');
    }
  });
});
