import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sha256Text } from './sha256.js';

describe('sha256Text', () => {
  it('is the SHA-256 of the UTF-8 text, base64url, for any text (lone surrogates included)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (text) => {
        expect(sha256Text(text)).toBe(
          createHash('sha256').update(text, 'utf8').digest('base64url'),
        );
      }),
      { numRuns: 500 },
    );
    expect(sha256Text('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });
});
