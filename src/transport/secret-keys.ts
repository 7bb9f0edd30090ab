import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * One 256-bit key per configured secret, derived with HKDF-SHA256 under `info`, so that each use
 * (cookie signatures, seals, CSRF tokens) has keys of its own. The first key is the current one.
 */
export function deriveKeys(secrets: readonly (string | Buffer)[], info: string): Buffer[] {
  return secrets.map((secret) => Buffer.from(hkdfSync('sha256', secret, '', info, 32)));
}

/**
 * HMAC-SHA256 of `message`, as base64url text. MACs are compared as text, not as decoded bytes:
 * base64url decoding ignores the spare bits of the last character, so comparing bytes would
 * accept more than one spelling of a MAC.
 */
export function macText(key: Buffer, message: string): string {
  return createHmac('sha256', key).update(message).digest('base64url');
}

/** Whether two MAC texts of the same length are equal, in constant time. */
export function sameMac(presented: string, expected: string): boolean {
  return timingSafeEqual(Buffer.from(presented, 'latin1'), Buffer.from(expected, 'latin1'));
}
