import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { MacKey } from './secret-keys.js';

const b64url = (hex: string) => Buffer.from(hex, 'hex').toString('base64url');

describe('MacKey', () => {
  it('computes HMAC-SHA256 exactly (SC-1): the RFC 4231 test vectors', () => {
    const vectors: [Buffer, string, string][] = [
      [
        Buffer.alloc(20, 0x0b),
        'Hi There',
        'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
      ],
      [
        Buffer.from('Jefe'),
        'what do ya want for nothing?',
        '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
      ],
      [
        Buffer.alloc(131, 0xaa),
        'Test Using Larger Than Block-Size Key - Hash Key First',
        '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
      ],
      [
        Buffer.alloc(131, 0xaa),
        'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
        '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
      ],
    ];
    for (const [key, message, mac] of vectors) {
      expect(new MacKey(key).text(message)).toBe(b64url(mac));
    }
  });

  it('equals createHmac for any key and message, one key reused across messages of every length and script', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.array(fc.string({ unit: 'binary', maxLength: 300 }), { minLength: 1, maxLength: 6 }),
        (bytes, messages) => {
          const key = Buffer.from(bytes);
          const mac = new MacKey(key);
          for (const message of messages) {
            expect(mac.text(message)).toBe(
              createHmac('sha256', key).update(message).digest('base64url'),
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('verifies its own MAC text only: another spelling of the same bytes, another message, another length fail', () => {
    const mac = new MacKey(Buffer.alloc(32, 7));
    const text = mac.text('sid=token');
    expect(mac.verify('sid=token', text)).toBe(true);
    expect(mac.verify('sid=token2', text)).toBe(false);
    expect(mac.verify('sid=token', text.slice(0, -1))).toBe(false);
    // The last character carries 2 spare bits: a different character decodes to the same bytes.
    const last = 'AEIMQUYcgkosw048'.indexOf(text.at(-1)!);
    const sibling =
      text.slice(0, -1) +
      'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[last * 4 + 1];
    expect(Buffer.from(sibling, 'base64url').equals(Buffer.from(text, 'base64url'))).toBe(true);
    expect(mac.verify('sid=token', sibling)).toBe(false);
    // Written as latin1, U+0100 + c would keep only c's byte: refused before that.
    const twin = text.slice(0, -1) + String.fromCharCode(0x100 + text.charCodeAt(42));
    expect(mac.verify('sid=token', twin)).toBe(false);
  });

  it('gives long messages, and messages after them, the same MAC as createHmac', () => {
    const key = Buffer.alloc(32, 9);
    const mac = new MacKey(key);
    for (const message of ['x'.repeat(5000), 'short', 'é'.repeat(256), 'y'.repeat(257), '']) {
      expect(mac.text(message)).toBe(createHmac('sha256', key).update(message).digest('base64url'));
    }
  });

  it('gives messages of one byte length but other content their own MAC (the kept view of the inner block)', () => {
    const key = Buffer.alloc(32, 3);
    const mac = new MacKey(key);
    // 'ab' and 'é' are both two bytes in UTF-8; the last pair is one byte longer, then shorter again.
    for (const message of ['sid=aaaa', 'sid=bbbb', 'sid=ab', 'sid=é', 'sid=abc', 'sid=é']) {
      expect(mac.text(message)).toBe(createHmac('sha256', key).update(message).digest('base64url'));
    }
  });
});
