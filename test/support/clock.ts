import { jest } from '@jest/globals';

/**
 * Fakes only `Date`: timers, sockets and promises run for real, so HTTP requests still work while
 * the session clock jumps. Undo with `jest.useRealTimers()`.
 */
export function fakeClock(now: number | Date = Date.now()): void {
  jest.useFakeTimers({
    now,
    doNotFake: [
      'nextTick',
      'setImmediate',
      'clearImmediate',
      'setTimeout',
      'clearTimeout',
      'setInterval',
      'clearInterval',
      'queueMicrotask',
      'hrtime',
      'performance',
    ],
  });
}

/** Moves the faked clock forward. */
export const advanceClock = (ms: number): void => jest.setSystemTime(Date.now() + ms);
