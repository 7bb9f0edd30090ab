import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SessionError, SessionTooLargeError } from '../session.errors.js';
import { COOKIE_MAX_AGE_KEY, IDLE_TIMEOUT_KEY } from '../utils/hidden-keys.js';
import { assertSize, SessionData } from './session-data.js';

function loaded(stored: Record<string, string>): SessionData {
  const data = new SessionData();
  data.reset(stored);
  return data;
}

describe('SessionData (change tracking)', () => {
  it('has no delta for keys only read as primitives, or objects read and left alone', () => {
    const data = loaded({ a: '1', b: '{"x":1}' });
    expect(data.read('a')).toBe(1);
    expect(data.read('b')).toEqual({ x: 1 });
    expect(data.delta()).toEqual({ set: {}, unset: [] });
  });

  it('finds changes made in place inside a nested object', () => {
    const data = loaded({ cart: '{"items":[]}' });
    (data.read('cart') as { items: number[] }).items.push(7);
    expect(data.delta().set).toEqual({ cart: '{"items":[7]}' });
  });

  it('writes only changed keys, and removes only stored ones', () => {
    const data = loaded({ a: '1', b: '2' });
    data.write('a', 1);
    data.write('c', 'new');
    data.remove('b');
    data.remove('never-stored');
    expect(data.delta()).toEqual({ set: { c: '"new"' }, unset: ['b'] });
    expect(data.finalTexts(data.delta().set)).toEqual({ a: '1', c: '"new"' });
  });

  it('forgets changes on discard and keeps the stored texts', () => {
    const data = loaded({ a: '1' });
    data.write('a', 2);
    data.discard();
    expect(data.read('a')).toBe(1);
    expect(data.delta()).toEqual({ set: {}, unset: [] });
  });

  it("hides the library's own keys from the app and refuses them as app keys", () => {
    const data = loaded({ a: '1', [IDLE_TIMEOUT_KEY]: '60000', [COOKIE_MAX_AGE_KEY]: 'null' });
    expect(data.keys()).toEqual(['a']);
    expect(data.read(IDLE_TIMEOUT_KEY)).toBeUndefined();
    expect(data.has(COOKIE_MAX_AGE_KEY)).toBe(false);
    expect(() => data.write(IDLE_TIMEOUT_KEY, 1)).toThrow(SessionError);
    expect(() => data.write('nestjs-sessions:other', 1)).toThrow(SessionError);
  });

  it("keeps the session's own settings when the data is replaced", () => {
    const data = loaded({ a: '1', [IDLE_TIMEOUT_KEY]: '60000' });
    data.keepOnly(() => false);
    data.write('b', 2);
    expect(data.delta().set).toEqual({ b: '2', [IDLE_TIMEOUT_KEY]: '60000' });
  });

  it('refuses keys that would pollute prototypes and values JSON cannot hold, naming the key', () => {
    const data = loaded({});
    expect(() => data.write('__proto__', 1)).toThrow(SessionError);
    data.write('big', 10n);
    expect(() => data.delta()).toThrow(/"big"/);
  });

  it('expects the stored texts of the keys a write changes (optimistic concurrency)', () => {
    const data = loaded({ a: '1' });
    expect(data.expected(['a', 'b'])).toEqual({ a: '1', b: null });
  });

  it('measures size in bytes of keys and values (maxSize)', () => {
    const data = loaded({ k: JSON.stringify('é'.repeat(9)) });
    // "k" and the quoted text: 1 + 2 + 18 bytes.
    expect(data.finalSize({})).toBe(21);
    expect(() => assertSize(data.finalSize({}), 21)).not.toThrow();
    expect(() => assertSize(data.finalSize({}), 20)).toThrow(SessionTooLargeError);
  });

  it('sizes a write as the bytes of its final texts, without building them: changes, removals, a replace', () => {
    const bytes = (texts: Record<string, string>) =>
      Object.entries(texts).reduce(
        (n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v),
        0,
      );
    const stored = { a: '1', b: '"béta"', [IDLE_TIMEOUT_KEY]: '60000', c: '[1,2]' };
    const cases: ((data: SessionData) => void)[] = [
      () => {},
      (data) => data.write('a', 'ünïcode'),
      (data) => {
        data.remove('b');
        data.write('d', { x: 1 });
      },
      (data) => (data.read('c') as number[]).push(3),
      (data) => {
        data.keepOnly((key) => key === 'c');
        data.write('e', 5);
      },
      (data) => data.keepOnly(() => false),
    ];
    for (const change of cases) {
      const data = loaded(stored);
      change(data);
      const { set } = data.delta();
      expect(data.finalSize(set)).toBe(bytes(data.finalTexts(set)));
    }
  });

  it('refuses a write above maxSize exactly when its final texts take more bytes, whatever the characters (the 3-bytes-per-unit shortcut)', () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), text, { maxKeys: 4 }),
        text,
        fc.integer({ min: 0, max: 400 }),
        (stored, value, maxSize) => {
          const data = loaded(stored);
          data.write('v', value);
          const { set } = data.delta();
          const bytes = data.finalSize(set);
          if (bytes > maxSize) {
            expect(() => data.assertFits(set, maxSize)).toThrow(SessionTooLargeError);
          } else {
            expect(() => data.assertFits(set, maxSize)).not.toThrow();
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
