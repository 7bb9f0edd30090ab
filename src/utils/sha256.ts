import * as crypto from 'node:crypto';

/** Node's one-shot digest (20.12+): no Hash object, and no algorithm lookup per call. */
export const oneShotHash = (
  crypto as {
    hash?: (
      algorithm: string,
      data: string | Uint8Array,
      encoding: 'latin1' | 'base64url',
    ) => unknown;
  }
).hash;

/** SHA-256 of a text (as UTF-8), base64url: one-shot where Node has it, else a Hash object. */
export function sha256Text(text: string): string {
  return oneShotHash
    ? (oneShotHash('sha256', text, 'base64url') as string)
    : crypto.createHash('sha256').update(text).digest('base64url');
}
