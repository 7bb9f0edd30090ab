import type { SessionData } from './interfaces/session-data.interface.js';
import type { Session } from './core/session-handle.js';

/** {@link SessionData} as declared by the app, or `Record<string, unknown>` while it is empty. */
export type DeclaredSessionData = keyof SessionData extends never
  ? Record<string, unknown>
  : SessionData;

/**
 * `req.session`: the request's {@link Session} handle, which also shows its data keys as
 * properties and takes the callback forms (`regenerate(cb)`, `save(cb)`, …), so code written for
 * express-session (Passport included) works. Typed on Express's and Fastify's request types by
 * `import 'nestjs-sessions/express'` / `import 'nestjs-sessions/fastify'`.
 */
export type RequestSession<T extends object = DeclaredSessionData> = Session<T> & Partial<T>;
