export * from './interfaces/session-options.interface.js';
export * from './interfaces/session-store.interface.js';
export type { SessionData } from './interfaces/session-data.interface.js';
export type { RequestSession, DeclaredSessionData } from './session-request.js';
export { SessionModule } from './session.module.js';
export { SESSION_MODULE_OPTIONS } from './session.module-definition.js';
export { SESSION_STORE } from './session.constants.js';
export type { SessionRegenerateOptions } from './core/session-handle.js';
export type { SessionCookie } from './core/session-cookie-view.js';
export {
  Session,
  SessionId,
  RequireSession,
  AllowAnonymous,
  AllowCrossSite,
  SessionLock,
  InjectSessionStore,
} from './session.decorators.js';
export type { SessionPredicate } from './session.decorators.js';
export { SessionGuard, type SessionDenialReason } from './session.guard.js';
export { SessionOriginGuard } from './session-origin.guard.js';
export { SessionCsrfGuard } from './session-csrf.guard.js';
export { SessionService, type SessionInfo, type InvalidateAllOptions } from './session.service.js';
export * from './session.errors.js';
export { sessionRoom, userRoom, type SessionSocketErrorPayload } from './session.sockets.js';
export type { SessionEvent, SessionEventType } from './interfaces/session-event.interface.js';
export {
  MemorySessionStore,
  type MemorySessionStoreOptions,
} from './stores/memory-session.store.js';
export * from './stores/express-session-store.adapter.js';
export { parseDuration } from './utils/duration.js';
export {
  applySessionSecurity,
  SESSION_SECURITY_SCHEME,
  type OpenApiDocumentLike,
} from './session.openapi.js';
