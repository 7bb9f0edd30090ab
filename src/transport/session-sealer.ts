import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { deriveKeys } from './secret-keys.js';
import { fillRandom } from '../utils/random.js';
import { parseJsonEnvelope } from '../utils/json.js';

const VERSION = 1;
const SEALING_INFO = 'nestjs-sessions/v1 sealed cookie';
const KID_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KID_BYTES + IV_BYTES;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Seals dated this far in the future are refused (clock skew between servers is tolerated up to it). */
export const SEAL_MAX_SKEW_MS = 60_000;

/** What a sealed cookie carries: the whole session. */
export interface SealedSession {
  /** Session id (random; for revocation and `session.id`). */
  readonly id: string;
  readonly userId: string | null;
  readonly createdAt: number;
  readonly lastActiveAt: number;
  readonly absoluteExpiresAt: number;
  /** When this seal was made. */
  readonly sealedAt: number;
  /** Top-level keys mapped to JSON text. */
  readonly data: Record<string, string>;
}

interface SealingKey {
  readonly kid: Buffer;
  readonly key: Buffer;
  /**
   * Associated data: version and key id (the header minus the IV) and the cookie name, so a value
   * moved to another cookie, or re-labelled with another key id, does not open (EC-4).
   */
  readonly aad: Buffer;
}

/**
 * Seals and opens stateless session cookies with AES-256-GCM (Node's crypto). Each seal uses a
 * fresh random 96-bit IV and carries the full 16-byte tag; the format version, the key id and the
 * cookie name are authenticated as associated data. Keys are derived once (HKDF-SHA256, a purpose
 * label of their own) from each secret: the first seals, all open; the key id inside the cookie
 * picks the one key to try.
 *
 * Layout (base64url): `version(1) | kid(4) | iv(12) | ciphertext | tag(16)`.
 */
export class SessionSealer {
  private readonly keys: readonly SealingKey[];
  /** Key id (as a 32-bit number) to the index of the first key with it. */
  private readonly byKid = new Map<number, number>();

  constructor(secrets: readonly (string | Buffer)[], cookieName: string) {
    const name = Buffer.from(cookieName);
    this.keys = deriveKeys(secrets, SEALING_INFO).map((key) => {
      const kid = createHmac('sha256', key).update('key id').digest().subarray(0, KID_BYTES);
      return { key, kid, aad: Buffer.concat([Buffer.from([VERSION]), kid, name]) };
    });
    this.keys.forEach(({ kid }, index) => {
      if (!this.byKid.has(kid.readUInt32BE())) this.byKid.set(kid.readUInt32BE(), index);
    });
  }

  /** Encrypts a session into a cookie value. */
  seal(session: SealedSession): string {
    const { key, kid, aad } = this.keys[0];
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header[0] = VERSION;
    kid.copy(header, 1);
    fillRandom(header, 1 + KID_BYTES, IV_BYTES);
    const iv = header.subarray(1 + KID_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(serialize(session), 'utf8'), cipher.final()]);
    return Buffer.concat([header, body, cipher.getAuthTag()]).toString('base64url');
  }

  /**
   * Decrypts a cookie value. Every failure (shape, version, unknown key id, bad tag, bad JSON,
   * wrong cookie name) gives the same `undefined` (EC-8). `stale` is true when a key other than
   * the first opened it: the cookie should be re-sealed (KEY-3).
   */
  open(value: string, now: number): { session: SealedSession; stale: boolean } | undefined {
    if (!BASE64URL.test(value)) return undefined;
    const raw = Buffer.from(value, 'base64url');
    if (raw.length < HEADER_BYTES + TAG_BYTES + 2 || raw[0] !== VERSION) return undefined;
    const index = this.byKid.get(raw.readUInt32BE(1));
    if (index === undefined) return undefined;
    const iv = raw.subarray(1 + KID_BYTES, HEADER_BYTES);
    const tag = raw.subarray(raw.length - TAG_BYTES);
    let plaintext: string;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.keys[index].key, iv, {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(this.keys[index].aad);
      decipher.setAuthTag(tag);
      // GCM gives every byte from update(); final() only checks the tag. Bytes, decoded once:
      // a string output would go through a StringDecoder and leave a two-part string to parse.
      const body = decipher.update(raw.subarray(HEADER_BYTES, raw.length - TAG_BYTES));
      decipher.final();
      plaintext = body.toString('utf8');
    } catch {
      return undefined;
    }
    const session = deserialize(plaintext);
    if (!session || session.sealedAt > now + SEAL_MAX_SKEW_MS) return undefined;
    return { session, stale: index > 0 };
  }
}

/** JSON without re-serializing the values: they already are JSON texts. */
function serialize(s: SealedSession): string {
  let data = '';
  for (const key of Object.keys(s.data)) {
    data += `${data ? ',' : ''}${JSON.stringify(key)}:${s.data[key]}`;
  }
  return `{"i":${JSON.stringify(s.id)},"u":${JSON.stringify(s.userId)},"c":${s.createdAt},"l":${s.lastActiveAt},"a":${s.absoluteExpiresAt},"t":${s.sealedAt},"d":{${data}}}`;
}

function deserialize(text: string): SealedSession | undefined {
  let parsed: unknown;
  try {
    parsed = parseJsonEnvelope(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const p = parsed as Record<string, unknown>;
  const numbers = [p.c, p.l, p.a, p.t];
  if (
    typeof p.i !== 'string' ||
    (p.u !== null && typeof p.u !== 'string') ||
    !numbers.every((n) => typeof n === 'number' && Number.isFinite(n)) ||
    typeof p.d !== 'object' ||
    p.d === null ||
    Array.isArray(p.d)
  ) {
    return undefined;
  }
  const source = p.d as Record<string, unknown>;
  const data: Record<string, string> = {};
  // Values stay JSON texts, tags and all: parseStoredJson() revives them when they are read.
  for (const key of Object.keys(source)) data[key] = JSON.stringify(source[key]);
  return {
    id: p.i,
    userId: p.u as string | null,
    createdAt: p.c as number,
    lastActiveAt: p.l as number,
    absoluteExpiresAt: p.a as number,
    sealedAt: p.t as number,
    data,
  };
}
