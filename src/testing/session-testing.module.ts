import { Module, type DynamicModule } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { SessionModuleOptions } from '../interfaces/session-options.interface.js';
import { SessionModule } from '../session.module.js';
import { SessionConfigError } from '../session.errors.js';
import { MemorySessionStore } from '../stores/memory-session.store.js';
import { parseDuration } from '../utils/duration.js';

/**
 * A clock a test moves by hand: every expiry decision of a {@link SessionTestingModule} app (idle
 * and absolute timeouts, in the module and in its memory store) reads it, so a test crosses a
 * 30-minute timeout without waiting and without faking the process's timers.
 * @example app.get(SessionTestClock).advance('31m');
 */
export class SessionTestClock {
  private current: number;

  constructor(start: number | Date = Date.now()) {
    this.current = +start;
  }

  /** The clock's time, in milliseconds since the epoch. */
  now(): number {
    return this.current;
  }

  /** Moves the clock forward by a duration: milliseconds, or `'500ms'`, `'31m'`, `'13h'`, `'15d'`. */
  advance(by: number | string): void {
    const ms = parseDuration(by);
    if (ms === undefined) {
      throw new SessionConfigError(
        `advance() takes a positive number of milliseconds or a duration such as '31m'; got ${JSON.stringify(by)}.`,
      );
    }
    this.current += ms;
  }

  /** Sets the clock to a point in time. */
  set(to: number | Date): void {
    this.current = +to;
  }
}

/**
 * `SessionModule` for tests: a random secret, the memory store, and a {@link SessionTestClock}
 * (injectable, `app.get(SessionTestClock)`) as the time source, so timeouts can be crossed at once.
 * Any option can still be given (a Redis store, `mode: 'sealed'`, shorter timeouts).
 * @example
 * const moduleRef = await Test.createTestingModule({
 *   imports: [SessionTestingModule.forRoot()],
 *   controllers: [ProfileController],
 * }).compile();
 */
@Module({})
export class SessionTestingModule {
  static forRoot(options: Partial<SessionModuleOptions> = {}): DynamicModule {
    const clock = new SessionTestClock();
    const now = () => clock.now();
    const store = options.mode === 'sealed' ? undefined : new MemorySessionStore({ clock: now });
    return {
      module: SessionTestingModule,
      global: true,
      imports: [
        SessionModule.forRoot({
          secret: randomBytes(32).toString('base64url'),
          store,
          clock: now,
          ...options,
        }),
      ],
      providers: [{ provide: SessionTestClock, useValue: clock }],
      exports: [SessionModule, SessionTestClock],
    };
  }
}
