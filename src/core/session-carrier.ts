/**
 * What the session engine needs from the transport a session travels on: the cookies that came
 * in, the headers that go out, and a chance to settle the session before the response is sent.
 * One implementation per web framework lives in `src/http/`; the engine knows no HTTP library.
 */
export interface SessionCarrier {
  /** The request's `Cookie` header, if any. */
  cookieHeader(): string | undefined;
  /** Whether the request came over HTTPS: `true` trusts `X-Forwarded-Proto`, `false` only TLS, unset the framework's setting. */
  isSecure(trustProxy: boolean | undefined): boolean;
  /** Whether the response headers are already on their way (no cookie can be set any more). */
  headersSent(): boolean;
  getHeader(name: string): unknown;
  /** Sets a response header, replacing it (`Set-Cookie` included). */
  setHeader(name: string, value: string | string[]): void;
  /**
   * Makes the response settle `target` (commit, or roll back after an error status) just before it
   * is sent, once: for a session used on a route whose handler does not commit it.
   */
  settleBeforeResponse(target: SettleAtEnd): void;
  /** Calls `listener` once when the exchange ends, however it ends. */
  onClose(listener: () => void): void;
  /** Set by the route hook: the route handler, not the response's end, commits the session. */
  routeCommits: boolean;
  /**
   * The request is on a hooked route, whose handler will commit the session if it runs: what a
   * guard loads needs no commit at the response's end, unless `req.session` is used before.
   */
  routeWillCommit: boolean;
}

/** What a carrier settles as the response goes out. */
export interface SettleAtEnd {
  /** Returns a promise only while the store is written. */
  settleAtEnd(status: number): Promise<void> | undefined;
  /** A settle that failed: the response goes out as it was, the failure is logged. */
  reportUnsaved(error: unknown): void;
}
