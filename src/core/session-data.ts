import { SessionError, SessionTooLargeError } from '../session.errors.js';
import { isHiddenKey } from '../utils/hidden-keys.js';
import {
  isForbiddenKey,
  isPortableText,
  parseStoredJson,
  stringifySessionValue,
} from '../utils/json.js';

/** This request's changes as the store sees them: changed keys as JSON texts, and removed keys. */
export interface SessionDelta {
  readonly set: Record<string, string>;
  readonly unset: string[];
}

/**
 * One request's view of a session's values: the JSON texts the store holds, the values parsed
 * lazily on first read, and which keys can have changed. Knows nothing of identity, I/O or HTTP.
 *
 * Reads parse a stored text once and keep the value; an object handed out may be changed in place,
 * so it is compared with its stored text when the delta is taken. A key never read nor written
 * costs nothing.
 */
export class SessionData {
  /** JSON text of each key as the store holds it. */
  private texts = new Map<string, string>();
  /** Parsed values of keys read or written in this request. */
  private values: Record<string, unknown> = Object.create(null);
  /** Keys handed out or assigned; only these can have changed. */
  private touched = NONE;
  private removed = NONE;
  /** The stored data is to be replaced whole (regenerate without keeping, another user). */
  replace = false;
  private view: Record<string, unknown> | undefined;

  /** Starts over from what the store holds (`undefined`: nothing, a new session). */
  reset(stored: Readonly<Record<string, string>> | undefined): void {
    // A loop rather than new Map(Object.entries()): no [key, text] pair per key (every load).
    const texts = new Map<string, string>();
    if (stored) for (const key of Object.keys(stored)) texts.set(key, stored[key]);
    this.texts = texts;
    this.discard();
  }

  /** Drops this request's changes; the stored texts stay. */
  discard(): void {
    this.values = Object.create(null);
    this.view = undefined;
    this.touched = NONE;
    this.removed = NONE;
    this.replace = false;
  }

  /** The stored text of a key, hidden keys included. */
  storedText(key: string): string | undefined {
    return this.texts.get(key);
  }

  /** The values behind a proxy that reads and writes through this object (`session.data`). */
  get proxy(): Record<string, unknown> {
    return (this.view ??= new Proxy(this.values, new DataTraps(this)));
  }

  read(key: string): unknown {
    if (this.removed.has(key) || isHiddenKey(key)) return undefined;
    let value: unknown;
    if (key in this.values) {
      value = this.values[key];
    } else {
      const text = this.texts.get(key);
      if (text === undefined) return undefined;
      value = parseStoredJson(text);
    }
    // An object handed out may be changed in place, so it is compared at commit; a primitive
    // cannot change without an assignment, which marks it itself.
    if (typeof value === 'object' && value !== null) this.touched = withKey(this.touched, key);
    this.values[key] = value;
    return value;
  }

  write(key: string, value: unknown): void {
    if (value === undefined) return this.remove(key);
    if (
      typeof key !== 'string' ||
      isForbiddenKey(key) ||
      isHiddenKey(key) ||
      !isPortableText(key)
    ) {
      throw new SessionError(
        'SESSION_INVALID_KEY',
        `${JSON.stringify(key)} cannot be a session key`,
      );
    }
    this.put(key, value);
  }

  /** Sets a hidden key (the session's own settings): kept with the data, never shown. */
  writeHidden(key: string, value: unknown): void {
    this.put(key, value);
  }

  private put(key: string, value: unknown): void {
    this.removed.delete(key);
    this.touched = withKey(this.touched, key);
    this.values[key] = value;
  }

  remove(key: string): void {
    if (isHiddenKey(key)) return;
    delete this.values[key];
    this.touched.delete(key);
    if (this.texts.has(key)) this.removed = withKey(this.removed, key);
  }

  has(key: string): boolean {
    return (
      !isHiddenKey(key) && !this.removed.has(key) && (key in this.values || this.texts.has(key))
    );
  }

  /** The application's keys (hidden ones left out). */
  keys(): string[] {
    const keys: string[] = [];
    for (const key of this.liveKeys()) if (!isHiddenKey(key)) keys.push(key);
    return keys;
  }

  /** Whether this request assigned or handed out `key` (it may have changed). */
  isTouched(key: string): boolean {
    return this.touched.has(key);
  }

  isRemoved(key: string): boolean {
    return this.removed.has(key);
  }

  /** The in-request value of a touched key, as assigned (no parse, no marking). */
  valueOf(key: string): unknown {
    return this.values[key];
  }

  /** Keeps only `keep`: every other key is removed, and the write will replace the stored data. */
  keepOnly(keep: (key: string) => boolean): void {
    for (const key of this.keys()) if (!keep(key)) this.remove(key);
    this.replace = true;
  }

  /** Changed and removed keys, as JSON texts, compared with what the store holds. */
  delta(): SessionDelta {
    // After a regenerate that starts empty, the store drops everything: write every live key.
    const base = this.replace ? undefined : this.texts;
    const set: Record<string, string> = Object.create(null);
    for (const key of this.touched) {
      const text = textOf(key, this.values[key]);
      if (base?.get(key) !== text) set[key] = text;
    }
    if (this.replace) {
      // The session's own settings belong to the browser's session, not to its data: a write that
      // replaces the data (regenerate({ keep: false }), another user) keeps them.
      for (const [key, text] of this.texts) {
        if (isHiddenKey(key) && !this.touched.has(key)) set[key] = text;
      }
    }
    const unset: string[] = [];
    for (const key of this.removed) if (this.texts.has(key)) unset.push(key);
    return { set, unset };
  }

  /** Every key's JSON text once `set` is applied: what the store (or the seal) will hold. */
  finalTexts(set: Readonly<Record<string, string>>): Record<string, string> {
    const texts: Record<string, string> = Object.create(null);
    if (!this.replace) {
      for (const [key, text] of this.texts) if (!this.removed.has(key)) texts[key] = text;
    }
    for (const key of Object.keys(set)) texts[key] = set[key];
    return texts;
  }

  /**
   * The size in bytes (keys and texts) of {@link finalTexts}, without building them (the same two
   * sources: `set`, and what the store holds unless replaced): a store-mode write needs only the
   * size, for the `maxSize` check.
   */
  finalSize(set: Readonly<Record<string, string>>): number {
    return this.measureFinal(set, Buffer.byteLength);
  }

  /**
   * Throws {@link SessionTooLargeError} when {@link finalTexts} would take more than `maxSize`
   * bytes. UTF-8 takes at most three bytes per UTF-16 unit (a lone surrogate becomes U+FFFD), so
   * a session whose characters fit three times over needs no byte count.
   */
  assertFits(set: Readonly<Record<string, string>>, maxSize: number): void {
    if (this.measureFinal(set, utf16Units) * 3 <= maxSize) return;
    assertSize(this.finalSize(set), maxSize);
  }

  private measureFinal(
    set: Readonly<Record<string, string>>,
    measure: (text: string) => number,
  ): number {
    let size = 0;
    for (const key of Object.keys(set)) size += measure(key) + measure(set[key]);
    if (this.replace) return size;
    for (const [key, text] of this.texts) {
      if (!Object.hasOwn(set, key) && !this.removed.has(key)) size += measure(key) + measure(text);
    }
    return size;
  }

  /** The stored texts a write expects to replace (optimistic concurrency): `null` for an absent key. */
  expected(keys: Iterable<string>): Record<string, string | null> {
    const expect: Record<string, string | null> = {};
    for (const key of keys) expect[key] = this.texts.get(key) ?? null;
    return expect;
  }

  /** A write was stored: its texts are now what the store holds. */
  stored(set: Readonly<Record<string, string>>, unset: readonly string[], replace: boolean): void {
    if (replace) this.texts = new Map();
    for (const key of unset) this.texts.delete(key);
    for (const key of Object.keys(set)) this.texts.set(key, set[key]);
    this.removed = NONE;
    this.replace = false;
  }

  /** Every key the session will hold after this request, hidden ones included. */
  private liveKeys(): Set<string> {
    const keys = new Set(Object.keys(this.values));
    for (const key of this.texts.keys()) if (!this.removed.has(key)) keys.add(key);
    return keys;
  }
}

/** A text's length in UTF-16 units: its UTF-8 bytes are at most three times that (assertFits). */
const utf16Units = (text: string): number => text.length;

/**
 * The empty set every request starts with: most requests touch nothing, so the sets of touched and
 * removed keys are made on their first key. Never added to (only read, cleared or deleted from).
 */
const NONE: Set<string> = new Set<string>();

/** `set` with `key` added: a set of its own in place of {@link NONE}. */
function withKey(set: Set<string>, key: string): Set<string> {
  return (set === NONE ? new Set<string>() : set).add(key);
}

/** The JSON text of a value, or a typed error naming the key that holds what JSON cannot. */
function textOf(key: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = stringifySessionValue(value);
  } catch (cause) {
    if (cause instanceof SessionError) throw cause;
    throw notSerializable(key, cause);
  }
  if (text === undefined) throw notSerializable(key);
  return text;
}

function notSerializable(key: string, cause?: unknown): SessionError {
  return new SessionError(
    'SESSION_NOT_SERIALIZABLE',
    `Session key "${key}" holds a value that cannot be saved as JSON`,
    cause === undefined ? undefined : { cause },
  );
}

/** Throws `SessionTooLargeError` when a session's size (keys and texts, in bytes) exceeds `maxSize`. */
export function assertSize(size: number, maxSize: number): void {
  if (size > maxSize) throw new SessionTooLargeError(size, maxSize);
}

/**
 * Traps for `session.data`: reads parse stored JSON lazily and mark the key as touched, writes and
 * deletes go through {@link SessionData}. One instance per request's data, created on first use.
 */
class DataTraps implements ProxyHandler<Record<string, unknown>> {
  constructor(private readonly data: SessionData) {}

  get(_target: Record<string, unknown>, prop: string | symbol): unknown {
    if (typeof prop === 'symbol') return undefined;
    return this.data.read(prop);
  }

  set(_target: Record<string, unknown>, prop: string | symbol, value: unknown): boolean {
    if (typeof prop === 'symbol') return false;
    this.data.write(prop, value);
    return true;
  }

  deleteProperty(_target: Record<string, unknown>, prop: string | symbol): boolean {
    if (typeof prop === 'string') this.data.remove(prop);
    return true;
  }

  has(_target: Record<string, unknown>, prop: string | symbol): boolean {
    return typeof prop === 'string' && this.data.has(prop);
  }

  ownKeys(): string[] {
    return this.data.keys();
  }

  getOwnPropertyDescriptor(
    _target: Record<string, unknown>,
    prop: string | symbol,
  ): PropertyDescriptor | undefined {
    if (typeof prop !== 'string' || !this.data.has(prop)) return undefined;
    return { value: this.data.read(prop), writable: true, enumerable: true, configurable: true };
  }

  defineProperty(
    _target: Record<string, unknown>,
    prop: string | symbol,
    descriptor: PropertyDescriptor,
  ): boolean {
    if (typeof prop !== 'string' || !('value' in descriptor)) return false;
    this.data.write(prop, descriptor.value);
    return true;
  }
}
