const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Converts a duration option to milliseconds: a number is taken as milliseconds, a string as a
 * number followed by `ms`, `s`, `m`, `h` or `d` (`'30m'`, `'12h'`, `'1.5h'`). Returns `undefined`
 * for anything else, so the caller can say which option is wrong.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!match) return undefined;
  const ms = Number(match[1]) * UNITS[match[2]];
  return ms > 0 ? Math.round(ms) : undefined;
}
