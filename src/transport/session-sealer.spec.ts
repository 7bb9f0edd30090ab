import { afterEach, describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { SEAL_MAX_SKEW_MS, SessionSealer, type SealedSession } from './session-sealer.js';

const SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';

function session(
  data: Record<string, string> = { name: '"ada"' },
  now = Date.now(),
): SealedSession {
  return {
    id: 'id-1',
    userId: 'u1',
    createdAt: now,
    lastActiveAt: now,
    absoluteExpiresAt: now + 3_600_000,
    sealedAt: now,
    data,
  };
}

/** Counts the decryptions a sealer does (the private step behind open()). */
function countDecryptions(): { readonly calls: number } {
  const prototype = SessionSealer.prototype as unknown as { decrypt(...args: unknown[]): unknown };
  const spy = jest.spyOn(prototype, 'decrypt');
  return {
    get calls() {
      return spy.mock.calls.length;
    },
  };
}

describe('SessionSealer: opened seals are remembered (sealCache)', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('opens a value it made, or opened before, without decrypting it again', () => {
    const sealer = new SessionSealer([SECRET], 'sid', 10);
    const made = session();
    const value = sealer.seal(made);
    sealer.remember(value, made);
    const decryptions = countDecryptions();
    const first = sealer.open(value, Date.now());
    const second = sealer.open(value, Date.now());
    expect(decryptions.calls).toBe(0);
    expect(second).toBe(first);
    expect(first?.session.data).toEqual({ name: '"ada"' });

    const other = new SessionSealer([SECRET], 'sid', 10);
    expect(other.open(value, Date.now())).toEqual(first);
    other.open(value, Date.now());
    expect(decryptions.calls).toBe(1);
  });

  it('gives from memory exactly what decryption gives, whatever the data holds', () => {
    // The JSON texts a session holds (JSON.stringify's), hostile keys and tag-like objects among them.
    const text = fc.oneof(
      fc.jsonValue({ stringUnit: 'binary' }).map((v) => JSON.stringify(v)),
      fc.constantFrom(
        '{"__proto__":{"x":1}}',
        '{"$date":"2026-01-01T00:00:00.000Z"}',
        '{"a":{"constructor":1}}',
      ),
    );
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('__proto__', 'x')),
          text,
        ),
        (data) => {
          const cached = new SessionSealer([SECRET], 'sid', 10);
          const plain = new SessionSealer([SECRET], 'sid', 0);
          const made = session(data);
          const value = cached.seal(made);
          cached.remember(value, made);
          const now = Date.now();
          expect(cached.open(value, now)).toEqual(plain.open(value, now));
          expect(cached.open(value, now)).toEqual(plain.open(value, now));
        },
      ),
    );
  });

  it('hands out frozen sessions, so no request can change what the next one opens', () => {
    const sealer = new SessionSealer([SECRET], 'sid', 10);
    const opened = sealer.open(sealer.seal(session()), Date.now())!;
    expect(() => {
      (opened.session.data as Record<string, string>).name = '"eve"';
    }).toThrow(TypeError);
    expect(() => {
      (opened.session as { userId: string }).userId = 'admin';
    }).toThrow(TypeError);
    expect(Object.isFrozen(opened)).toBe(true);
  });

  it('never remembers a value that failed to open: a forged one is decrypted, and refused, every time (EC-8)', () => {
    const sealer = new SessionSealer([SECRET], 'sid', 10);
    const value = sealer.seal(session());
    sealer.open(value, Date.now());
    const last = value.at(-2) === 'A' ? 'B' : 'A';
    const forged = `${value.slice(0, -2)}${last}${value.at(-1)}`;
    const decryptions = countDecryptions();
    for (let i = 0; i < 3; i++) expect(sealer.open(forged, Date.now())).toBeUndefined();
    expect(decryptions.calls).toBe(3);
    expect(sealer.open(value, Date.now())).toBeDefined();
  });

  it("checks the seal's date on every open, remembered or not (EC-6)", () => {
    const sealer = new SessionSealer([SECRET], 'sid', 10);
    const now = Date.now();
    const value = sealer.seal({ ...session(), sealedAt: now + SEAL_MAX_SKEW_MS + 1000 });
    expect(sealer.open(value, now + 2000)).toBeDefined();
    // The clock went back (another server, a corrected clock): the same value is refused again.
    expect(sealer.open(value, now)).toBeUndefined();
  });

  it('keeps at most sealCache values, the oldest forgotten first, and none with 0', () => {
    const sealer = new SessionSealer([SECRET], 'sid', 2);
    const [a, b, c] = ['a', 'b', 'c'].map((id) => {
      const made = { ...session(), id };
      const value = sealer.seal(made);
      sealer.remember(value, made);
      return value;
    });
    const decryptions = countDecryptions();
    for (const value of [b, c]) sealer.open(value, Date.now());
    expect(decryptions.calls).toBe(0);
    expect(sealer.open(a, Date.now())?.session.id).toBe('a');
    expect(decryptions.calls).toBe(1);
    // Remembering a again pushed b out; c stays.
    sealer.open(c, Date.now());
    expect(decryptions.calls).toBe(1);
    sealer.open(b, Date.now());
    expect(decryptions.calls).toBe(2);

    const none = new SessionSealer([SECRET], 'sid', 0);
    const made = session();
    const value = none.seal(made);
    none.remember(value, made);
    none.open(value, Date.now());
    none.open(value, Date.now());
    expect(decryptions.calls).toBe(4);
  });

  it('does not remember a seal that would not open: a time JSON cannot write', () => {
    const sealer = new SessionSealer([SECRET], 'sid', 10);
    const made = { ...session(), lastActiveAt: Number.NaN };
    const value = sealer.seal(made);
    sealer.remember(value, made);
    expect(sealer.open(value, Date.now())).toBeUndefined();
  });

  it('remembers which key opened a value, so an old-key cookie is still re-sealed (KEY-3)', () => {
    const OLD = 'Zr8Yq3Wn6Tp1Vm4Xk9Lb2Hc7Fd5Gs0Ja8Ue3Oi6Nm1';
    const value = new SessionSealer([OLD], 'sid', 0).seal(session());
    const rotated = new SessionSealer([SECRET, OLD], 'sid', 10);
    expect(rotated.open(value, Date.now())?.stale).toBe(true);
    expect(rotated.open(value, Date.now())?.stale).toBe(true);
    expect(rotated.open(rotated.seal(session()), Date.now())?.stale).toBe(false);
  });
});
