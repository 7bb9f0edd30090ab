import { randomBase64url } from '../utils/random.js';
import { deriveMacKeys, type MacKey } from './secret-keys.js';

const CSRF_INFO = 'nestjs-sessions/v1 csrf token';
/** Length of `<nonce>.<mac>`: a 16-byte nonce and a 32-byte HMAC, both base64url. */
const TOKEN_LENGTH = 22 + 1 + 43;
const TOKEN = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;

/**
 * CSRF tokens bound to a session id (CSRF-2), after OWASP's HMAC-based synchronizer token: a token
 * is `<nonce>.<mac>`, with `mac` = HMAC-SHA256 over `<session id>.<nonce>` under a key derived
 * (HKDF) from each configured secret; the first key issues, all verify. Nothing is stored: a
 * token is valid exactly as long as the session keeps its id, so `regenerate()` (login) and
 * `destroy()` (logout) void every token issued before. A fresh nonce per token makes each one
 * different, so a token does not repeat in compressed responses (BREACH).
 */
export class SessionCsrfTokens {
  private readonly keys: readonly MacKey[];

  constructor(secrets: readonly (string | Buffer)[]) {
    this.keys = deriveMacKeys(secrets, CSRF_INFO);
  }

  /** A new token for the session with this id. */
  issue(sessionId: string): string {
    const nonce = randomBase64url(16);
    return `${nonce}.${this.keys[0].text(`${sessionId}.${nonce}`)}`;
  }

  /**
   * Whether `token` was issued for this session id under one of the secrets. Shape first (no
   * crypto for garbage), then the MAC, compared in constant time.
   */
  verify(sessionId: string, token: unknown): boolean {
    if (typeof token !== 'string' || token.length !== TOKEN_LENGTH || !TOKEN.test(token)) {
      return false;
    }
    const message = `${sessionId}.${token.slice(0, 22)}`;
    const presented = token.slice(23);
    // Every key is tried, so the time taken does not say which one matched.
    let valid = false;
    for (const key of this.keys) valid = key.verify(message, presented) || valid;
    return valid;
  }
}
