/**
 * Data keys the library keeps with a session for its own settings, in every store and inside the
 * seal: hidden from the application's view of the data, and refused as application keys.
 */
const HIDDEN_PREFIX = 'nestjs-sessions:';

/** The session's own idle timeout (`setIdleTimeout`), in milliseconds. */
export const IDLE_TIMEOUT_KEY = 'nestjs-sessions:idleTimeout';

/** The session's own cookie lifetime (`session.cookie.maxAge = …`), in milliseconds, or `null`. */
export const COOKIE_MAX_AGE_KEY = 'nestjs-sessions:cookieMaxAge';

/** Whether a data key is one of the library's own. */
export function isHiddenKey(key: string): boolean {
  return key.startsWith(HIDDEN_PREFIX);
}

/**
 * A session's idle timeout from the stored text under {@link IDLE_TIMEOUT_KEY}: its own one (never
 * longer than `moduleIdle`), or the module's.
 */
export function idleTimeoutOf(text: string | undefined, moduleIdle: number): number {
  if (text === undefined) return moduleIdle;
  const own = Number(text);
  return Number.isFinite(own) && own > 0 ? Math.min(own, moduleIdle) : moduleIdle;
}

/**
 * A session's cookie lifetime from the stored text under {@link COOKIE_MAX_AGE_KEY}: its own one
 * (`undefined` for a browser-session cookie), or the module's `cookie.maxAge`.
 */
export function cookieMaxAgeOf(
  text: string | undefined,
  moduleMaxAge: number | undefined,
): number | undefined {
  if (text === undefined) return moduleMaxAge;
  const own = text === 'null' ? null : Number(text);
  if (own === null) return undefined;
  return Number.isFinite(own) && own >= 0 ? own : moduleMaxAge;
}
