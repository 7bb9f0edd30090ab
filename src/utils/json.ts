const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** True for keys that could reach an object's prototype when copied around (IN-2). */
export function isForbiddenKey(key: string): boolean {
  return FORBIDDEN_KEYS.has(key);
}

function dropForbidden(this: unknown, key: string, value: unknown): unknown {
  return FORBIDDEN_KEYS.has(key) ? undefined : value;
}

/**
 * Parses stored JSON, dropping `__proto__`, `constructor` and `prototype` keys at every depth so
 * that stored data can never pollute a prototype (IN-2).
 */
export function parseStoredJson(text: string): unknown {
  // The reviver costs time on every value; only pay it when a forbidden key could be present.
  if (text.includes('__proto__') || text.includes('constructor') || text.includes('prototype')) {
    return JSON.parse(text, dropForbidden);
  }
  return JSON.parse(text);
}
