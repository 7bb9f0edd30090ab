/**
 * `nestjs-sessions/fastify`: types `request.session` on Fastify's `FastifyRequest` as a
 * {@link RequestSession} (module augmentation; nothing runs). Import it once anywhere in the app.
 * Leave it out while `@fastify/session` or `@fastify/secure-session` is installed: they declare
 * `request.session` too.
 * @example
 * import 'nestjs-sessions/fastify';
 */
import type {} from 'fastify';
import type { RequestSession } from '../session-request.js';

export type { RequestSession, DeclaredSessionData } from '../session-request.js';
export type { SessionData } from '../interfaces/session-data.interface.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's session (nestjs-sessions): loaded on first use, saved before the response. */
    session: RequestSession;
  }
}
