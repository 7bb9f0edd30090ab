import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SessionCsrfTokens } from './csrf-token.js';
import { SessionTokenSigner } from './session-token.js';

const SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';
const OLD = 'Zr8Yq3Wn6Tp1Vm4Xk9Lb2Hc7Fd5Gs0Ja8Ue3Oi6Nm1';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';

const newId = () => SessionTokenSigner.storageKey(SessionTokenSigner.mint());

describe('SessionCsrfTokens', () => {
  const tokens = new SessionCsrfTokens([SECRET]);

  it('verifies a token for the session it was issued to, and for no other (CSRF-2)', () => {
    const id = newId();
    const token = tokens.issue(id);
    expect(token).toMatch(/^[\w-]{22}\.[\w-]{43}$/);
    expect(tokens.verify(id, token)).toBe(true);
    expect(tokens.verify(newId(), token)).toBe(false);
  });

  it('issues a different token every time, all valid (BREACH)', () => {
    const id = newId();
    const issued = new Set(Array.from({ length: 1000 }, () => tokens.issue(id)));
    expect(issued.size).toBe(1000);
    for (const token of issued) expect(tokens.verify(id, token)).toBe(true);
  });

  it('refuses every change of a single character (CSRF-2)', () => {
    const id = newId();
    const token = tokens.issue(id);
    fc.assert(
      fc.property(fc.nat(token.length - 1), fc.constantFrom(...ALPHABET), (at, char) => {
        fc.pre(token[at] !== char);
        const forged = token.slice(0, at) + char + token.slice(at + 1);
        expect(tokens.verify(id, forged)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses what is not a token, without throwing', () => {
    const id = newId();
    const token = tokens.issue(id);
    for (const bad of [
      undefined,
      null,
      42,
      {},
      [token],
      '',
      token + 'A',
      ` ${token}`,
      token.replace('.', '-'),
    ]) {
      expect(tokens.verify(id, bad)).toBe(false);
    }
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (text) => !tokens.verify(id, text)));
  });

  it('keeps tokens valid across a secret rotation while the old secret is listed (KEY-2)', () => {
    const id = newId();
    const before = new SessionCsrfTokens([OLD]).issue(id);
    expect(new SessionCsrfTokens([SECRET, OLD]).verify(id, before)).toBe(true);
    expect(new SessionCsrfTokens([SECRET]).verify(id, before)).toBe(false);
  });
});
