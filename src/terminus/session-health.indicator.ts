import { Inject, Injectable, Optional } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { SessionStore, type SessionStoreHealth } from '../interfaces/session-store.interface.js';
import { SessionConfigError } from '../session.errors.js';
import { parseDuration } from '../utils/duration.js';

/** Options of {@link SessionHealthIndicator.isHealthy}. */
export interface SessionHealthCheckOptions {
  /** The store is reported down when it has not answered within this. @default '1s' */
  timeout?: number | string;
}

/** A key no session can have (storage keys are 43-character hashes): a probe read finds nothing. */
const PROBE_KEY = 'nestjs-sessions:health-probe';

/**
 * A `@nestjs/terminus` health indicator for the module's session store (the revocation store in
 * sealed mode): up with the store's own description and the probe's latency, down when the store
 * fails or does not answer within `timeout`. Provide it in a module that imports `TerminusModule`.
 * @example
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.sessions.isHealthy('sessions')]); }
 */
@Injectable()
export class SessionHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    @Optional() @Inject(SessionStore) private readonly store?: SessionStore,
  ) {}

  async isHealthy<K extends string = 'sessions'>(
    key: K = 'sessions' as K,
    options: SessionHealthCheckOptions = {},
  ): Promise<HealthIndicatorResult<K>> {
    const indicator = this.indicators.check(key);
    const { store } = this;
    // Sealed mode without a revocation store: the cookies are the sessions, nothing to reach.
    if (!store) return indicator.up({ store: 'none (sealed cookies)' });
    const timeout = parseDuration(options.timeout ?? '1s');
    if (timeout === undefined) {
      throw new SessionConfigError(
        `'timeout' must be a positive number of milliseconds or a string such as '500ms' or '2s'.`,
      );
    }
    const started = performance.now();
    const report = await withTimeout(probe(store), timeout);
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    const details = {
      store: report?.store ?? store.constructor.name,
      latencyMs,
      ...report?.details,
    };
    if (!report) return indicator.down({ ...details, error: `no answer within ${timeout} ms` });
    return report.ok ? indicator.up(details) : indicator.down(details);
  }
}

/** The store's own `checkHealth()`, or else one read of a key that does not exist. */
async function probe(store: SessionStore): Promise<SessionStoreHealth> {
  if (store.checkHealth) return store.checkHealth();
  try {
    await store.load(PROBE_KEY);
    return { ok: true, store: store.constructor.name };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, store: store.constructor.name, details: { error: message } };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
