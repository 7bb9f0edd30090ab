import type { LoggerService } from '@nestjs/common';

/** A Nest logger that keeps every line it is given, to check what was (and was not) logged. */
export function capturingLogger(): LoggerService & { lines: string[] } {
  const lines: string[] = [];
  const keep = (...args: unknown[]) => {
    lines.push(args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' '));
  };
  return { lines, log: keep, warn: keep, error: keep, debug: keep, verbose: keep, fatal: keep };
}
