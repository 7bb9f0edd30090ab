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

  /**
   * The number of logins the upstream has seen (all workers' together), from its `GET /stats` (or
   * the fake itself when it runs in this process); `null` when the upstream has no such route (an upstream that is not the sample's fake).
   */
  async loginCount(): Promise<number | null> {
    // The fake runs in this process: ask it, not its HTTP route.
    if (this.fake) return this.fake.stats().logins;
    try {
      const response = await fetch(new URL('/stats', this.url), {
        signal: AbortSignal.timeout(2_000),
      });
      if (!response.ok) return null;
      const stats = (await response.json()) as { logins?: unknown };
      return typeof stats.logins === 'number' ? stats.logins : null;
    } catch {
      return null;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.fake?.close();
  }
}
