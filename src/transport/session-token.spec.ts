import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import * as crypto from 'node:crypto';
import { SessionTokenSigner } from './session-token.js';

const SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';
const OLD = 'Zr8Yq3Wn6Tp1Vm4Xk9Lb2Hc7Fd5Gs0Ja8Ue3Oi6Nm1';

describe('SessionTokenSigner', () => {
  const signer = new SessionTokenSigner([SECRET], 'sid');

  it('mints 256-bit base64url tokens from the CSPRNG, never twice (TOK-1)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const token = SessionTokenSigner.mint();
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      seen.add(token);
    }
    expect(seen.size).toBe(20_000);
  });

  it('keys the store by a SHA-256 of the token, which is not itself a valid cookie (TOK-2, TOK-3)', () => {
    const token = SessionTokenSigner.mint();
    const key = SessionTokenSigner.storageKey(token);
    expect(key).toBe(crypto.createHash('sha256').update(token).digest('base64url'));
    expect(key).not.toContain(token);
    expect(signer.verify(`${key}.${signer.sign(key).split('.')[1]}`)?.token).toBe(key);
    // ...but the key of that "token" is another hash, so a presented hash finds no session.
    expect(SessionTokenSigner.storageKey(key)).not.toBe(key);
  });

  it('verifies what it signed', () => {
    const token = SessionTokenSigner.mint();
    expect(signer.verify(signer.sign(token))).toEqual({ token, stale: false });
  });

  it('rejects every tampering transform (SC-3)', () => {
    const value = signer.sign(SessionTokenSigner.mint());
    const [token, mac] = value.split('.');
    const flip = (s: string, i: number) =>
      s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const transforms = [
      value.toUpperCase(),
      value + 'a',
      'x' + value.slice(1),
      token + mac,
      `${token}.`,
      `${token}.${mac.slice(0, -1)}`,
      `.${mac}`,
      flip(value, 0),
      flip(value, 42),
      flip(value, 44),
      flip(value, value.length - 1),
      `${mac}.${token}`,
      `s:${value}`,
      '',
    ];
    for (const tampered of transforms) {
      if (tampered === value) continue;
      expect(signer.verify(tampered)).toBeUndefined();
    }
  });

  it('accepts exactly one spelling of a signature, not the spare-bit variants of its last character', () => {
    const value = signer.sign(SessionTokenSigner.mint());
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const accepted = [...alphabet].filter((c) => signer.verify(value.slice(0, -1) + c));
    expect(accepted).toEqual([value.at(-1)]);
  });

  it('binds the cookie name: a value signed for another cookie is rejected (SC-1)', () => {
    const other = new SessionTokenSigner([SECRET], 'csrf');
    expect(signer.verify(other.sign(SessionTokenSigner.mint()))).toBeUndefined();
  });

  it('signs with the first secret and verifies older ones as stale, for re-issue (KEY-1, KEY-3)', () => {
    const token = SessionTokenSigner.mint();
    const before = new SessionTokenSigner([OLD], 'sid');
    const rotated = new SessionTokenSigner([SECRET, OLD], 'sid');
    expect(rotated.verify(before.sign(token))).toEqual({ token, stale: true });
    expect(rotated.sign(token)).toBe(signer.sign(token));
  });

  it('rejects cookies of a removed secret (KEY-4)', () => {
    const token = SessionTokenSigner.mint();
    expect(signer.verify(new SessionTokenSigner([OLD], 'sid').sign(token))).toBeUndefined();
  });

  it('never throws and never accepts random input (TOK-5)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (value) => {
        expect(signer.verify(value)).toBeUndefined();
      }),
      { numRuns: 5000 },
    );
  });

  it('never accepts a mutated genuine value', () => {
    const value = signer.sign(SessionTokenSigner.mint());
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: value.length - 1 }),
        fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'),
        (index, char) => {
          const mutated = value.slice(0, index) + char + value.slice(index + 1);
          if (mutated !== value) expect(signer.verify(mutated)).toBeUndefined();
        },
      ),
      { numRuns: 3000 },
    );
  });
});
