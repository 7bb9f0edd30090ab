import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { deriveKeys } from './secret-keys.js';
import { fillRandom } from '../utils/random.js';
import { mayHoldForbiddenKeys, parseJsonEnvelope } from '../utils/json.js';
import { sha256Text } from '../utils/sha256.js';

const VERSION = 1;
const SEALING_INFO = 'nestjs-sessions/v1 sealed cookie';
const KID_BYTES = 4;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KID_BYTES + IV_BYTES;
/** The shortest value {@link SessionSealer.open} can open: a header, a tag and two bytes, in base64url. */
const MIN_VALUE_LENGTH = Math.ceil(((HEADER_BYTES + TAG_BYTES + 2) * 4) / 3);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Seals dated this far in the future are refused (clock skew between servers is tolerated up to it). */
export const SEAL_MAX_SKEW_MS = 60_000;

/** How many opened seals {@link SessionSealer} remembers unless told otherwise. */
export const DEFAULT_SEAL_CACHE = 1000;

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

/** An opened seal: the session, and whether a key other than the first opened it. */
export interface OpenedSeal {
  readonly session: SealedSession;
  readonly stale: boolean;
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
  /**
   * Seals opened, or sealed and sent, lately, by the SHA-256 of their cookie value: the same value
   * again is the same session, so it is not decrypted again (see {@link open}).
   */
  private readonly recent = new Map<string, OpenedSeal>();
  /**
   * The digests in {@link recent}, in a ring: the next slot holds the oldest. A Map has no cheap
   * "first key" once entries are deleted from its front (iteration walks the holes they leave).
   */
  private readonly order: (string | undefined)[];
  private next = 0;

  /**
   * @param cacheSize how many opened seals are remembered (`sealCache`); 0 remembers none.
   */
  constructor(
    secrets: readonly (string | Buffer)[],
    cookieName: string,
    private readonly cacheSize = DEFAULT_SEAL_CACHE,
  ) {
    this.order = new Array<string | undefined>(cacheSize);
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
   * Remembers a value {@link seal} made of `session`, as opening it would give it, so that the
   * browser's next request does not decrypt it. The caller calls it once the value is on its way to
   * the browser: a seal refused as too large, or not sent, is not remembered.
   */
  remember(value: string, session: SealedSession): void {
    if (this.cacheSize === 0) return;
    const opened = asOpened(session);
    if (opened) this.keep(sha256Text(value), opened, false);
  }

  /**
   * Decrypts a cookie value. Every failure (shape, version, unknown key id, bad tag, bad JSON,
   * wrong cookie name) gives the same `undefined` (EC-8). `stale` is true when a key other than
   * the first opened it: the cookie should be re-sealed (KEY-3).
   *
   * A value this sealer opened, or sealed and sent, lately is known by its SHA-256 and not decrypted:
   * opening is a function of the value and the keys alone, and the keys do not change while the
   * process runs, so the result is the one decryption would give (frozen, so no caller can change
   * it). Only what opened is remembered, never a failure, and never the value itself. What depends
   * on the time, the seal's date here and expiry and revocation in the caller, is checked on every
   * call.
   */
  open(value: string, now: number): OpenedSeal | undefined {
    // Too short to be a seal: refused before anything is hashed.
    if (value.length < MIN_VALUE_LENGTH) return undefined;
    const digest = this.cacheSize > 0 ? sha256Text(value) : undefined;
    const opened = (digest && this.recent.get(digest)) || this.decrypt(value, digest);
    if (!opened || opened.session.sealedAt > now + SEAL_MAX_SKEW_MS) return undefined;
    return opened;
  }

  /** Opens a value with the key its key id names; remembers it under `digest` when given. */
  private decrypt(value: string, digest: string | undefined): OpenedSeal | undefined {
    if (!BASE64URL.test(value)) return undefined;
    const raw = Buffer.from(value, 'base64url');
    // open() refused what is too short: a base64url value that long holds a header, a tag and more.
    if (raw[0] !== VERSION) return undefined;
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
    if (!session) return undefined;
    return digest ? this.keep(digest, session, index > 0) : { session, stale: index > 0 };
  }

  /** Keeps an opened seal, the oldest dropped past `cacheSize`. */
  private keep(digest: string, session: SealedSession, stale: boolean): OpenedSeal {
    const opened = Object.freeze({ session: Object.freeze(session), stale });
    Object.freeze(session.data);
    const oldest = this.order[this.next];
    if (oldest !== undefined) this.recent.delete(oldest);
    this.order[this.next] = digest;
    this.next = (this.next + 1) % this.cacheSize;
    this.recent.set(digest, opened);
    return opened;
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

/**
 * What opening the seal of `session` will give, without writing and parsing it again when it can be
 * told: the texts are JSON.stringify's, which parsing and writing back leaves as they are, unless a
 * key that parsing drops (IN-2) is somewhere in them. `undefined` when the seal would not open (a
 * time that JSON cannot write).
 */
function asOpened(session: SealedSession): SealedSession | undefined {
  const { id, userId, createdAt, lastActiveAt, absoluteExpiresAt, sealedAt } = session;
  if (![createdAt, lastActiveAt, absoluteExpiresAt, sealedAt].every(Number.isFinite))
    return undefined;
  for (const key of Object.keys(session.data)) {
    if (mayHoldForbiddenKeys(key) || mayHoldForbiddenKeys(session.data[key])) {
      return deserialize(serialize(session));
    }
  }
  const data = { ...session.data };
  return { id, userId, createdAt, lastActiveAt, absoluteExpiresAt, sealedAt, data };
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
    !numbers.every(Number.isFinite) ||
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
