import { hash } from 'node:crypto';

/** SHA-256 of a text (as UTF-8), base64url: Node's one-shot digest, with no Hash object. */
export function sha256Text(text: string): string {
  return hash('sha256', text, 'base64url');
}
