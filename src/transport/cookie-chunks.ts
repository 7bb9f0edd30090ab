import { MAX_COOKIE_BYTES, readCookieValues } from './session-cookie.js';

/**
 * A sealed value over several cookies (`cookieChunks`): `name` holds `<count>~<first part>`,
 * `name.1`, `name.2`, … the rest. `~` is not base64url, so a one-part value needs no mark.
 */
const CHUNK_MARK = '~';
/** Room kept in each chunk cookie for its `.N` name suffix and the count mark. */
const CHUNK_OVERHEAD = 8;

/** The name of chunk `i` of cookie `name`. */
export function chunkName(name: string, i: number): string {
  return i === 0 ? name : `${name}.${i}`;
}

/** The value chunk `i` of `parts` is sent with (the first one carries the count). */
export function chunkValue(parts: readonly string[], i: number): string {
  return i === 0 && parts.length > 1 ? `${parts.length}${CHUNK_MARK}${parts[0]}` : parts[i];
}

/**
 * Splits a value into cookie-sized parts, or `undefined` when it needs more than `maxChunks`
 * cookies of 4096 bytes (CK-8).
 */
export function splitIntoChunks(
  value: string,
  name: string,
  maxChunks: number,
): string[] | undefined {
  const room = MAX_COOKIE_BYTES - Buffer.byteLength(name) - CHUNK_OVERHEAD;
  if (value.length <= room + CHUNK_OVERHEAD - 1) return [value];
  const count = Math.ceil(value.length / room);
  if (count > maxChunks) return undefined;
  return Array.from({ length: count }, (_, i) => value.slice(i * room, (i + 1) * room));
}

/**
 * The values a Cookie header carries under `name`, joined back together when they were split: a
 * missing or malformed part makes that value unusable, never an error.
 */
export function joinChunks(header: string | undefined, name: string, maxChunks: number): string[] {
  const values = readCookieValues(header, name);
  if (maxChunks === 1) return values;
  const joined: string[] = [];
  for (const value of values) {
    const mark = value.indexOf(CHUNK_MARK);
    const count = mark > 0 ? Number(value.slice(0, mark)) : 1;
    if (!Number.isInteger(count) || count < 1 || count > maxChunks) continue;
    let whole = count === 1 ? value : value.slice(mark + 1);
    for (let i = 1; i < count && whole; i++) {
      const part = readCookieValues(header, chunkName(name, i))[0];
      whole = part ? whole + part : '';
    }
    if (whole) joined.push(whole);
  }
  return joined;
}
