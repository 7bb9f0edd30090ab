import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionCarrier, SettleAtEnd } from '../core/session-carrier.js';
import { isSecureRequest, type RequestLike } from './request-info.js';

/** The parts of a Fastify request the session uses (no import of fastify itself). */
export interface FastifyRequestLike extends RequestLike {
  readonly raw: IncomingMessage;
}

/** The parts of a Fastify reply the session uses. */
export interface FastifyReplyLike {
  readonly raw: ServerResponse;
  readonly sent: boolean;
  readonly statusCode: number;
  getHeader(name: string): unknown;
  header(name: string, value: unknown): unknown;
  removeHeader(name: string): unknown;
}

/**
 * A session's transport on Fastify. Headers go through the reply (Fastify writes them all at
 * once), and a session to settle at the end is settled by the `onSend` hook that
 * {@link installFastifySessions} adds, which runs before Fastify writes the headers.
 */
export class FastifyCarrier implements SessionCarrier {
  routeCommits = false;
  routeWillCommit = false;
  /** Set by {@link settleBeforeResponse}; taken by the `onSend` hook. */
  pending: SettleAtEnd | undefined;

  constructor(
    readonly request: FastifyRequestLike,
    readonly reply: FastifyReplyLike,
  ) {}

  cookieHeader(): string | undefined {
    return this.request.headers.cookie;
  }

  isSecure(trustProxy: boolean | undefined): boolean {
    return isSecureRequest(this.request, trustProxy);
  }

  headersSent(): boolean {
    return this.reply.sent || this.reply.raw.headersSent;
  }

  getHeader(name: string): unknown {
    return this.reply.getHeader(name);
  }

  setHeader(name: string, value: string | string[]): void {
    // Fastify appends to set-cookie: replace means remove first.
    if (name.toLowerCase() === 'set-cookie') this.reply.removeHeader(name);
    this.reply.header(name, value);
  }

  settleBeforeResponse(target: SettleAtEnd): void {
    this.pending = target;
  }

  onClose(listener: () => void): void {
    this.reply.raw.once('close', listener);
  }
}
