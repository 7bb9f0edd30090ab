import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sha256Text } from './sha256.js';

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));

describe('sha256Text', () => {
  it('is the SHA-256 of the UTF-8 text, base64url, for any text (lone surrogates included)', () => {
    fc.assert(
      // Any UTF-16 code units, so lone and reversed surrogate halves too ('binary' skips them).
      fc.property(fc.string({ unit: codeUnit, maxLength: 300 }), (text) => {
        expect(sha256Text(text)).toBe(
          createHash('sha256').update(text, 'utf8').digest('base64url'),
        );
      }),
      { numRuns: 500 },
    );
    for (const text of ['\uD800', 'a\uDFFFb', '\uDC00\uD800']) {
      expect(sha256Text(text)).toBe(createHash('sha256').update(text, 'utf8').digest('base64url'));
    }
    expect(sha256Text('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });
});
