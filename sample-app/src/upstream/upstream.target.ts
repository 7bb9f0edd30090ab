import type { OnApplicationShutdown } from '@nestjs/common';
import type { FakeUpstream } from './fake-upstream.js';

/** The name the sample registers its upstream under (`@InjectSharedSession(UPSTREAM_NAME)`). */
export const UPSTREAM_NAME = 'demo-upstream';

/** Where the upstream is; owns the fake upstream when the app started it (closed on shutdown). */
export class UpstreamTarget implements OnApplicationShutdown {
  constructor(
    readonly url: string,
    readonly fake: FakeUpstream | null,
  ) {}

  /** The number of logins the upstream has seen, from its `GET /stats`. */
  async loginCount(): Promise<number> {
    const response = await fetch(new URL('/stats', this.url), {
      signal: AbortSignal.timeout(2_000),
    });
    if (!response.ok) throw new Error(`upstream stats answered ${response.status}`);
    const stats = (await response.json()) as { logins?: unknown };
    return Number(stats.logins);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.fake?.close();
  }
}
