/**
 * The data key under which a session keeps its own idle timeout (`setIdleTimeout`), in every store
 * and inside the seal. Hidden from the application's view of the data; refused as an app key.
 */
export const IDLE_TIMEOUT_KEY = 'nestjs-sessions:idleTimeout';

/**
 * A session's idle timeout from the stored text under {@link IDLE_TIMEOUT_KEY}: its own one (never
 * longer than `moduleIdle`), or the module's.
 */
export function idleTimeoutOf(text: string | undefined, moduleIdle: number): number {
  if (text === undefined) return moduleIdle;
  const own = Number(text);
  return Number.isFinite(own) && own > 0 ? Math.min(own, moduleIdle) : moduleIdle;
}
