import { SessionStoreUnavailableError } from '../session.errors.js';

/** Where {@link StoreAvailability} writes its two lines per outage. */
export interface StoreAvailabilityLogger {
  log(message: string): void;
  warn(message: string): void;
}

/** How a store checks its backend and what it does while the backend is away. */
export interface StoreAvailabilityOptions {
  /** A secret-free name for log lines, such as `redis 127.0.0.1:6379`. */
  readonly name: string;
  readonly logger: StoreAvailabilityLogger;
  /** One cheap round trip (PING, `SELECT 1`), bounded by the store's own timeout; rejects when it fails. */
  probe(): Promise<unknown>;
  /** Pause between two probes while the backend is down, in milliseconds. */
  readonly probeInterval: number;
  /** Turns a failure into a short, secret-free reason for the log. */
  describe(error: unknown): string;
  /**
   * Called when a probe failed: a store that owns its connection can drop it here (a connection
   * that hangs never heals by itself; a new one does).
   */
  onProbeFailed?(error: unknown): void;
}

/**
 * What a store knows about its backend: `up`, `checking` (a call failed; a probe is on its way, and
 * calls still go through) or `down` (the last probe failed: calls are refused at once, without
 * waiting for a timeout, until a probe succeeds). Logs once when the backend goes away, with the
 * cause, and once when it is back; never a line per request.
 */
export class StoreAvailability {
  private state: 'up' | 'checking' | 'down' = 'up';
  private downSince = 0;
  private cause = '';
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;

  constructor(private readonly options: StoreAvailabilityOptions) {}

  /** True while the backend is known to be down (calls fail fast). */
  get isDown(): boolean {
    return this.state === 'down';
  }

  /** The error to reject a call with while the backend is known to be down, else `undefined`. */
  refusal(): SessionStoreUnavailableError | undefined {
    if (this.state !== 'down') return undefined;
    const seconds = Math.max(0, Math.round((Date.now() - this.downSince) / 1000));
    return new SessionStoreUnavailableError(
      new Error(`${this.options.name} has been unreachable for ${seconds} s (${this.cause})`),
    );
  }

  /** A call failed in a way that may mean the backend is away: check it with a probe. */
  suspect(): void {
    if (this.state !== 'up' || this.closed) return;
    this.state = 'checking';
    this.probe();
  }

  /**
   * The backend is known to be away (a connection error, a failed start): refuse calls from now
   * on, log the cause once, and probe until it answers.
   */
  down(error: unknown): void {
    if (this.closed) return;
    this.enterDown(error);
    this.schedule();
  }

  /** Something suggests the backend is back (a client reconnected): probe now instead of later. */
  probeSoon(): void {
    if (this.state === 'up' || this.closed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.probe();
  }

  /** Stops probing (the store is closing). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private probe(): void {
    if (this.probing || this.closed) return;
    this.probing = true;
    this.options.probe().then(
      () => {
        this.probing = false;
        if (this.state === 'down') {
          const seconds = ((Date.now() - this.downSince) / 1000).toFixed(1);
          this.options.logger.log(
            `${this.options.name} answers again after ${seconds} s; sessions are served again`,
          );
        }
        this.state = 'up';
        clearTimeout(this.timer);
        this.timer = undefined;
      },
      (error: unknown) => {
        this.probing = false;
        if (this.closed) return;
        this.enterDown(error);
        this.options.onProbeFailed?.(error);
        this.schedule();
      },
    );
  }

  private enterDown(error: unknown): void {
    if (this.state === 'down') return;
    this.state = 'down';
    this.downSince = Date.now();
    this.cause = this.options.describe(error);
    this.options.logger.warn(
      `${this.options.name} is unreachable: ${this.cause}. Session routes answer 503 at once until it answers again.`,
    );
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.probe();
      // A probe that is still running reschedules when it fails.
      if (!this.probing && this.state === 'down') this.schedule();
    }, this.options.probeInterval);
    this.timer.unref();
  }
}
