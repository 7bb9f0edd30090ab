import { createHash, createHmac, hash, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * One 256-bit key per configured secret, derived with HKDF-SHA256 under `info`, so that each use
 * (cookie signatures, seals, CSRF tokens) has keys of its own. The first key is the current one.
 */
export function deriveKeys(secrets: readonly (string | Buffer)[], info: string): Buffer[] {
  return secrets.map((secret) => Buffer.from(hkdfSync('sha256', secret, '', info, 32)));
}

/** {@link deriveKeys}, each key ready to compute MACs with. */
export function deriveMacKeys(secrets: readonly (string | Buffer)[], info: string): MacKey[] {
  return deriveKeys(secrets, info).map((key) => new MacKey(key));
}

/** SHA-256's block and digest sizes, in bytes. */
const BLOCK = 64;
const DIGEST = 32;
/** Length of a MAC as base64url text, and its shape. */
const MAC_TEXT_LENGTH = 43;
const MAC_TEXT = new RegExp(`^[A-Za-z0-9_-]{${MAC_TEXT_LENGTH}}$`);
/** Longer messages (none of this package's) go to `createHmac` rather than grow the buffer. */
const MAX_FAST = 256;

/**
 * An HMAC-SHA256 key (RFC 2104), its padded blocks prepared once. `createHmac` sets up three
 * digest contexts on every call, the costliest step of verifying a cookie; with Node's one-shot
 * digest an HMAC is two SHA-256 of prepared buffers (bit for bit the same MAC: RFC 4231 vectors in
 * the spec).
 */
export class MacKey {
  /** `key ⊕ ipad`, then room for a message of up to {@link MAX_FAST} characters. */
  private readonly inner = Buffer.alloc(BLOCK + MAX_FAST * 3, 0x36);
  /** `inner` up to the end of the last message: messages of one length reuse it. */
  private view = this.inner.subarray(0, 0);
  /** `key ⊕ opad`, then the inner digest. */
  private readonly outer = Buffer.alloc(BLOCK + DIGEST, 0x5c);
  /** Scratch for constant-time comparison of MAC texts. */
  private readonly presented = Buffer.alloc(MAC_TEXT_LENGTH);
  private readonly expected = Buffer.alloc(MAC_TEXT_LENGTH);

  constructor(private readonly key: Buffer) {
    const block = key.length > BLOCK ? createHash('sha256').update(key).digest() : key;
    for (let i = 0; i < block.length; i++) {
      this.inner[i] ^= block[i];
      this.outer[i] ^= block[i];
    }
  }

  /**
   * HMAC-SHA256 of `message` (as UTF-8), as base64url text. MACs are compared as text, not as
   * decoded bytes: base64url decoding ignores the spare bits of the last character, so comparing
   * bytes would accept more than one spelling of a MAC.
   */
  text(message: string): string {
    if (message.length > MAX_FAST) {
      return createHmac('sha256', this.key).update(message).digest('base64url');
    }
    // Synchronous from the first write to the last digest: nothing else can use the buffers.
    const length = BLOCK + this.inner.write(message, BLOCK, 'utf8');
    if (this.view.length !== length) this.view = this.inner.subarray(0, length);
    // The inner digest as latin1 text ('binary': one character per byte), written into the outer
    // block: asked for as a Buffer, Node's one-shot digest takes about four times as long.
    this.outer.write(hash('sha256', this.view, 'binary'), BLOCK, 'latin1');
    return hash('sha256', this.outer, 'base64url');
  }

  /** Whether `presented` is the MAC text of `message`, compared in constant time. */
  verify(message: string, presented: string): boolean {
    // Base64url only: written as latin1, a character past U+00FF would keep only its low byte.
    if (!MAC_TEXT.test(presented)) return false;
    this.presented.write(presented, 0, 'latin1');
    this.expected.write(this.text(message), 0, 'latin1');
    return timingSafeEqual(this.presented, this.expected);
  }
}
