/**
 * `nestjs-sessions/express`: types `req.session` on Express's `Request` as a
 * {@link RequestSession} (module augmentation; nothing runs). Import it once anywhere in the app.
 * Leave it out while `@types/express-session` is still installed: both declare `req.session`.
 * @example
 * import 'nestjs-sessions/express';
 * // req: express.Request → req.session.data, await req.session.load(), req.session.save(cb)
 */
import type {} from 'express-serve-static-core';
import type { RequestSession } from '../session-request.js';

export type { RequestSession, DeclaredSessionData } from '../session-request.js';
export type { SessionData } from '../interfaces/session-data.interface.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The request's session (nestjs-sessions): loaded on first use, saved before the response. */
    session: RequestSession;
  }
}
