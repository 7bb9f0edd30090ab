import { describe, expect, it } from '@jest/globals';
import { fillRandom, randomBase64url } from './random.js';

describe('pooled CSPRNG bytes', () => {
  it('hands out tokens of the asked size, never the same one, across many pool refills', () => {
    // 4000 × 32 bytes = 31 refills of the 4 KiB pool.
    const tokens = Array.from({ length: 4000 }, () => randomBase64url(32));
    expect(new Set(tokens).size).toBe(tokens.length);
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('fills IVs in place, each different, and only the asked range', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.alloc(20, 0xaa);
      fillRandom(buf, 4, 12);
      expect(buf.subarray(0, 4).equals(Buffer.alloc(4, 0xaa))).toBe(true);
      expect(buf.subarray(16).equals(Buffer.alloc(4, 0xaa))).toBe(true);
      seen.add(buf.subarray(4, 16).toString('hex'));
    }
    expect(seen.size).toBe(2000);
  });

  it('looks uniform: every byte value shows up, none far more often than the others', () => {
    const counts = new Array<number>(256).fill(0);
    const buf = Buffer.alloc(64);
    for (let i = 0; i < 4096; i++) {
      fillRandom(buf, 0, 64);
      for (const byte of buf) counts[byte]++;
    }
    // 262 144 bytes: 1024 expected per value; a biased or repeating source lands far outside.
    expect(Math.min(...counts)).toBeGreaterThan(850);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('refuses draws larger than the pool', () => {
    expect(() => randomBase64url(5000)).toThrow(RangeError);
  });
});
