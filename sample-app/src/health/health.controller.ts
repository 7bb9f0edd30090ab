import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { SESSION_STORE, type SessionStore } from 'nestjs-sessions';

/** What `GET /health` answers: whether the store answers, and which store it is. */
export interface HealthReport {
  status: 'ok' | 'down';
  store: { ok: boolean; store: string };
}

/**
 * Reports whether the session store answers: 200, or 503 when it does not. The route is public, so
 * it says nothing a visitor should not learn: no session counts, no latencies, no error texts
 * (those are in the store's log lines).
 */
@Controller('health')
export class HealthController {
  constructor(@Inject(SESSION_STORE) private readonly store: SessionStore) {}

  @Get()
  async check(): Promise<HealthReport> {
    const health = await (this.store.checkHealth?.() ?? Promise.resolve(undefined)).catch(() => ({
      ok: false,
      store: 'unknown',
    }));
    const ok = health?.ok !== false;
    const report: HealthReport = {
      status: ok ? 'ok' : 'down',
      store: { ok, store: health?.store ?? 'unknown' },
    };
    if (!ok) throw new ServiceUnavailableException(report);
    return report;
  }
}
