import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { parseStoredJson, stringifySessionValue } from './json.js';

const roundTrip = (value: unknown) => parseStoredJson(stringifySessionValue(value)!);

describe('session JSON', () => {
  it('writes dates and bytes as tagged objects and reads them back as Date and Buffer (ST-11)', () => {
    const at = new Date('2026-11-27T10:11:12.345Z');
    expect(stringifySessionValue({ at, bytes: Buffer.from([0, 1, 254]) })).toBe(
      '{"at":{"$date":"2026-11-27T10:11:12.345Z"},"bytes":{"$binary":"AAH+"}}',
    );
    const back = roundTrip({ at, list: [at, new Uint8Array([7])], deep: { a: { b: at } } }) as {
      at: Date;
      list: [Date, Buffer];
      deep: { a: { b: Date } };
    };
    expect(back.at).toEqual(at);
    expect(back.list[0]).toBeInstanceOf(Date);
    expect(Buffer.isBuffer(back.list[1]) && [...back.list[1]]).toEqual([7]);
    expect(back.deep.a.b.getTime()).toBe(at.getTime());
    expect(Number.isNaN((roundTrip({ d: new Date('nope') }) as { d: Date }).d.getTime())).toBe(
      true,
    );
  });

  it('reads every stored string back as it was written, escapes, quotes and odd characters included', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (value) => {
        const text = JSON.stringify(value);
        expect(parseStoredJson(text)).toBe(value);
        expect(parseStoredJson(text)).toBe(JSON.parse(text));
      }),
      { numRuns: 2000 },
    );
    for (const text of [
      '""',
      '"\\\\"',
      '"a\\"b"',
      '"\\u0000"',
      '"\\ud800"',
      '"$date"',
      '"__proto__"',
    ]) {
      expect(parseStoredJson(text)).toBe(JSON.parse(text));
    }
    // Raw control characters: JSON.stringify escapes them, JSON.parse refuses them unescaped.
    for (const text of ['"a"b"', '"a\nb"', '"\u0000"', '"tab\there"']) {
      expect(() => parseStoredJson(text)).toThrow(SyntaxError);
    }
  });

  it('reads every stored whole number back as JSON.parse does', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.double()), (value) => {
        const text = JSON.stringify(value);
        expect(parseStoredJson(text)).toBe(JSON.parse(text));
      }),
      { numRuns: 2000 },
    );
    for (const text of ['0', '-0', '007', '1e3', '-', '1.5', '9007199254740993', ' 1']) {
      let expected: unknown;
      try {
        expected = JSON.parse(text);
      } catch {
        expect(() => parseStoredJson(text)).toThrow(SyntaxError);
        continue;
      }
      expect(parseStoredJson(text)).toBe(expected);
    }
  });

  it('revives only objects with exactly one tag key and a string: no classes, no code (ST-11)', () => {
    for (const text of [
      '{"$date":"2026-01-01T00:00:00Z","x":1}',
      '{"$binary":42}',
      '{"$date":{"$date":1}}',
      '{"$class":"Function","code":"process.exit()"}',
      '["$date","2026-01-01"]',
    ]) {
      expect(parseStoredJson(text)).toEqual(JSON.parse(text));
    }
  });

  it("keeps the application's own tag-like objects as they were: escaped, never revived", () => {
    const own = {
      a: { $binary: 'AAAA' },
      b: { $date: '2026-01-01' },
      c: { $x: 1 },
      d: { $$y: [2] },
    };
    expect(stringifySessionValue(own)).toBe(
      '{"a":{"$$binary":"AAAA"},"b":{"$$date":"2026-01-01"},"c":{"$$x":1},"d":{"$$$y":[2]}}',
    );
    expect(roundTrip(own)).toEqual(own);
    expect(roundTrip([{ $binary: 'AAAA' }])).toEqual([{ $binary: 'AAAA' }]);
  });

  it('writes values without dates, bytes or tag-like objects exactly as JSON.stringify does', () => {
    for (const value of [
      1,
      'x',
      null,
      [1, { a: 'b' }],
      { $a: 1, b: 2 },
      { nested: { deep: [true] } },
    ]) {
      expect(stringifySessionValue(value)).toBe(JSON.stringify(value));
    }
  });

  it('still drops prototype keys at every depth (IN-2)', () => {
    const parsed = parseStoredJson('{"a":{"__proto__":{"x":1},"$date":"2026-01-01"},"b":1}') as {
      a: unknown;
    };
    expect(parsed.a).toBeInstanceOf(Date);
    expect(({} as { x?: unknown }).x).toBeUndefined();
  });

  it('leaves every other JSON value as it was, minus prototype keys (IN-2, IN-3)', () => {
    const withoutPrototypeKeys = (key: string, value: unknown) =>
      ['__proto__', 'constructor', 'prototype'].includes(key) ? undefined : value;
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(JSON.stringify(roundTrip(value))).toBe(JSON.stringify(value, withoutPrototypeKeys));
      }),
      { numRuns: 2_000 },
    );
  });
});
