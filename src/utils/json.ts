import { SessionError } from '../session.errors.js';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Text some backends cannot keep: the NUL character (PostgreSQL `text` and `jsonb`) and UTF-16
 * surrogates without their pair (not Unicode; `jsonb` refuses them, UTF-8 cannot encode them).
 */
const UNPORTABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether every store can keep this text as it is (see {@link UNPORTABLE}). */
export function isPortableText(text: string): boolean {
  return !UNPORTABLE.test(text);
}

function assertPortableKey(key: string): void {
  if (!isPortableText(key)) {
    throw new SessionError(
      'SESSION_INVALID_KEY',
      'Session data keys cannot contain the NUL character or unpaired surrogates',
    );
  }
}

/** True for keys that could reach an object's prototype when copied around (IN-2). */
export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.has(key);
}

/**
 * The JSON text of a session value. JSON has no dates or bytes, so they are written as tagged
 * objects that {@link parseStoredJson} turns back (ST-11): a `Date` as `{"$date": "<ISO 8601>"}`
 * (`null` for an invalid date), a `Buffer` or `Uint8Array` as `{"$binary": "<base64>"}` (read back
 * as a `Buffer`), a string with a NUL or an unpaired surrogate as `{"$utf16": "<base64>"}` (so
 * every store keeps it exactly, PostgreSQL's `jsonb` included). An object of the application's that
 * looks like a tag (one key starting with `$`) is escaped with one more `$` and read back as it
 * was. Nothing else is revived: no classes, no code. `undefined` for what JSON cannot hold.
 * @throws {SessionError} `SESSION_INVALID_KEY` for an object key with a NUL or an unpaired surrogate.
 */
export function stringifySessionValue(value: unknown): string | undefined {
  // The replacer makes JSON.stringify several times slower: only when something needs it.
  return needsTags(value, 0) ? JSON.stringify(value, encodeTagged) : JSON.stringify(value);
}

/**
 * Whether a value holds a date, bytes, an unportable string or a tag-like object (a walk is cheaper
 * than the replacer).
 */
function needsTags(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return !isPortableText(value);
  if (typeof value !== 'object' || value === null) return false;
  // Too deep to walk cheaply: let the replacer decide (JSON.stringify also fails on cycles).
  if (depth > 64) return true;
  if (value instanceof Date || value instanceof Uint8Array) return true;
  if (Array.isArray(value)) return value.some((item) => needsTags(item, depth + 1));
  let keys = 0;
  let tagLike = false;
  for (const key in value) {
    keys++;
    tagLike = key.startsWith('$');
    assertPortableKey(key);
    if (needsTags((value as Record<string, unknown>)[key], depth + 1)) return true;
  }
  return keys === 1 && tagLike;
}

function encodeTagged(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // `value` went through toJSON() already; the holder still has the original.
  const original = this[key];
  if (typeof value === 'string' && !isPortableText(value)) {
    return { $utf16: Buffer.from(value, 'utf16le').toString('base64') };
  }
  if (original instanceof Date) {
    return { $date: Number.isNaN(original.getTime()) ? null : original.toISOString() };
  }
  if (original instanceof Uint8Array) {
    const bytes = Buffer.from(original.buffer, original.byteOffset, original.byteLength);
    return { $binary: bytes.toString('base64') };
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    // Past the walk's depth, keys are checked here.
    for (const name in value) assertPortableKey(name);
    const sole = soleKey(value);
    if (sole?.startsWith('$')) return { [`$${sole}`]: (value as Record<string, unknown>)[sole] };
  }
  return value;
}

/** The one key of an object with exactly one key, else undefined. */
function soleKey(value: object): string | undefined {
  let sole: string | undefined;
  for (const key in value) {
    if (sole !== undefined) return undefined;
    sole = key;
  }
  return sole;
}

function revive(this: unknown, key: string, value: unknown): unknown {
  if (FORBIDDEN_KEYS.has(key)) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const tag = soleKey(value);
  if (tag === undefined || !tag.startsWith('$')) return value;
  const content = (value as Record<string, unknown>)[tag];
  if (tag === '$date' && (typeof content === 'string' || content === null)) {
    return new Date(content === null ? Number.NaN : content);
  }
  if (tag === '$binary' && typeof content === 'string') return Buffer.from(content, 'base64');
  if (tag === '$utf16' && typeof content === 'string') {
    return Buffer.from(content, 'base64').toString('utf16le');
  }
  // An escaped object of the application's: one `$` less, and nothing revived.
  if (tag.startsWith('$$')) return { [tag.slice(1)]: content };
  return value;
}

function dropForbidden(key: string, value: unknown): unknown {
  return FORBIDDEN_KEYS.has(key) ? undefined : value;
}

/**
 * Parses JSON that holds session texts (a sealed cookie's envelope): drops `__proto__`,
 * `constructor` and `prototype` keys at every depth (IN-2) and revives nothing, so that each value
 * can be written back with `JSON.stringify` as the text it was, its tags revived only when read.
 */
export function parseJsonEnvelope(text: string): unknown {
  return mayHoldForbiddenKeys(text) ? JSON.parse(text, dropForbidden) : JSON.parse(text);
}

/** Whether a JSON text may hold a `__proto__`, `constructor` or `prototype` key (IN-2). */
export function mayHoldForbiddenKeys(text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || text.includes('prototype');
}

/** A JSON string with no escape and no raw control character (which JSON would refuse). */
// eslint-disable-next-line no-control-regex
const PLAIN_STRING = /^"[^"\\\u0000-\u001f]*"$/;
/** A JSON integer that a double holds exactly. */
const WHOLE_NUMBER = /^-?(?:0|[1-9]\d{0,14})$/;

/**
 * Parses stored JSON: drops `__proto__`, `constructor` and `prototype` keys at every depth, so that
 * stored data can never pollute a prototype (IN-2), and turns the tagged dates and bytes of
 * {@link stringifySessionValue} back into `Date`s and `Buffer`s (ST-11).
 */
export function parseStoredJson(text: string): unknown {
  // A string without escapes (most session values: ids, names, roles) is its text between the
  // quotes; JSON.parse and the reviver would give the same (and refuse it just the same when it
  // holds a raw control character, which JSON.stringify never writes).
  if (PLAIN_STRING.test(text)) return text.slice(1, -1);
  // The same for a whole number (counters, timestamps): JSON's own grammar, at most 15 digits.
  if (WHOLE_NUMBER.test(text)) return Number(text);
  // The reviver costs time on every value; only pay it when it could change something.
  if (text.includes('"$') || mayHoldForbiddenKeys(text)) {
    return JSON.parse(text, revive);
  }
  return JSON.parse(text);
}
