import { randomFillSync } from 'node:crypto';

/**
 * Bytes from the CSPRNG, drawn from a pool refilled 4 KiB at a time: one system call per hundred
 * or so draws instead of one per draw (a `randomBytes()` call costs about 5 µs here whatever its
 * size; Node's own `randomUUID()` pools the same way). Every byte is handed out once and wiped
 * from the pool as it is taken. Worker processes (`node:cluster`) are new processes, each with
 * its own pool.
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let next = POOL_BYTES;

function take(length: number): number {
  if (length > POOL_BYTES) throw new RangeError(`at most ${POOL_BYTES} random bytes at a time`);
  if (next + length > POOL_BYTES) {
    randomFillSync(pool);
    next = 0;
  }
  const start = next;
  next += length;
  return start;
}

/** `length` random bytes, base64url-encoded (tokens, ids). */
export function randomBase64url(length: number): string {
  const start = take(length);
  const text = pool.toString('base64url', start, start + length);
  pool.fill(0, start, start + length);
  return text;
}

/** Writes `length` random bytes into `target` at `offset` (IVs). */
export function fillRandom(target: Buffer, offset: number, length: number): void {
  const start = take(length);
  pool.copy(target, offset, start, start + length);
  pool.fill(0, start, start + length);
}
