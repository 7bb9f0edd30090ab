import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionCarrier, SettleAtEnd } from '../core/session-carrier.js';
import { isSecureRequest } from './request-info.js';

/** A session's transport on Express (and any Node `http` request/response pair). */
export class ExpressCarrier implements SessionCarrier {
  routeCommits = false;
  routeWillCommit = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {}

  cookieHeader(): string | undefined {
    return this.req.headers.cookie;
  }

  isSecure(trustProxy: boolean | undefined): boolean {
    return isSecureRequest(this.req, trustProxy);
  }

  headersSent(): boolean {
    return this.res.headersSent;
  }

  getHeader(name: string): unknown {
    return this.res.getHeader(name);
  }

  setHeader(name: string, value: string | string[]): void {
    this.res.setHeader(name, value);
  }

  settleBeforeResponse(target: SettleAtEnd): void {
    const pending = settling.get(this.res);
    if (pending) {
      pending.target = target;
      return;
    }
    settling.set(this.res, { end: this.res.end, target });
    this.res.end = endAfterSession as ServerResponse['end'];
  }

  onClose(listener: () => void): void {
    this.res.once('close', listener);
  }
}

/** Responses whose `end` first settles a session: the `end` they had before, and the session. */
const settling = new WeakMap<ServerResponse, { end: ServerResponse['end']; target: SettleAtEnd }>();

/**
 * `res.end` while the response's session waits to be settled: settles it (commit, or roll back
 * after an error status), then ends the response as asked, at once when there was nothing to write.
 * One function for every response: no closure per request.
 */
function endAfterSession(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const { end: original, target } = settling.get(this)!;
  settling.delete(this);
  const end = original as (...args: unknown[]) => ServerResponse;
  this.end = original;
  let pending: Promise<void> | undefined;
  try {
    pending = target.settleAtEnd(this.statusCode);
  } catch (error) {
    target.reportUnsaved(error);
  }
  if (!pending) return end.apply(this, args);
  // Until the session is written, every end (an error handler's too) waits its turn.
  const done = pending.catch((error: unknown) => target.reportUnsaved(error));
  this.end = ((...later: unknown[]) => {
    void done.then(() => end.apply(this, later));
    return this;
  }) as ServerResponse['end'];
  void done.then(() => {
    this.end = original;
    end.apply(this, args);
  });
  return this;
}
