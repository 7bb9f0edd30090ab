/** Log levels, as Nest names them. */
export type SessionLogLevel = 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';

/**
 * Where the engine writes its log lines: Nest's `Logger` in an app (the module adapts it), anything
 * with these methods elsewhere. The engine never imports a logging library.
 */
export interface SessionLogger {
  log(message: string): void;
  error(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
  verbose(message: string): void;
  /** Whether lines of `level` go anywhere (a line nobody reads is not even built). */
  isLevelEnabled(level: SessionLogLevel): boolean;
}
