import { randomBase64url } from '../utils/random.js';
import { sha256Text } from '../utils/sha256.js';
import { deriveMacKeys, type MacKey } from './secret-keys.js';

/** Length of a base64url-encoded 32-byte value. */
const B64_32 = 43;
/** `<token>.<signature>`: both are 32 bytes, base64url. */
const SIGNED_VALUE = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/;
const SIGNING_INFO = 'nestjs-sessions/v1 cookie signature';

/** The result of checking a cookie value. */
export interface VerifiedToken {
  readonly token: string;
  /** True when a secret other than the first verified it: the cookie should be re-issued. */
  readonly stale: boolean;
}

/**
 * Mints, signs and verifies session tokens. A token is 256 random bits (base64url). The cookie
 * carries `token.signature`, where the signature is HMAC-SHA256 over `<cookie name>=<token>` with a
 * key derived (HKDF) from each configured secret; the first key signs, all verify.
 */
export class SessionTokenSigner {
  private readonly keys: readonly MacKey[];
  private readonly prefix: string;

  constructor(secrets: readonly (string | Buffer)[], cookieName: string) {
    this.keys = deriveMacKeys(secrets, SIGNING_INFO);
    this.prefix = `${cookieName}=`;
  }

  /** A fresh 256-bit token from the CSPRNG. */
  static mint(): string {
    return randomBase64url(32);
  }

  /** The storage key of a token: its SHA-256, base64url. Stores never see the token itself. */
  static storageKey(token: string): string {
    return sha256Text(token);
  }

  /** The cookie value for a token, signed with the first secret. */
  sign(token: string): string {
    return `${token}.${this.keys[0].text(this.prefix + token)}`;
  }

  /**
   * Checks a cookie value: shape and length first (no crypto for garbage), then the signature
   * against each secret in order, compared in constant time. Returns `undefined` for anything that
   * is not a genuine cookie of ours.
   */
  verify(value: string): VerifiedToken | undefined {
    if (value.length !== B64_32 * 2 + 1 || !SIGNED_VALUE.test(value)) return undefined;
    const token = value.slice(0, B64_32);
    const presented = value.slice(B64_32 + 1);
    const message = this.prefix + token;
    for (let i = 0; i < this.keys.length; i++) {
      if (this.keys[i].verify(message, presented)) {
        return { token, stale: i > 0 };
      }
    }
    return undefined;
  }
}
