import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { SESSION_STORE, type SessionStore } from 'nestjs-sessions';

/** Reports whether the session store answers: 200, or 503 when it does not. */
@Controller('health')
export class HealthController {
  constructor(@Inject(SESSION_STORE) private readonly store: SessionStore) {}

  @Get()
  async check() {
    const health = await this.store
      .checkHealth?.()
      .catch(() => ({ ok: false, store: 'unknown', details: { error: 'health check failed' } }));
    const report = { status: health?.ok === false ? 'down' : 'ok', store: health ?? { ok: true } };
    if (report.status !== 'ok') throw new ServiceUnavailableException(report);
    return report;
  }
}
