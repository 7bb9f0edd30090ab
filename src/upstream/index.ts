/**
 * `nestjs-sessions/upstream`: one logged-in session against an upstream service, shared by every
 * request and every process, re-logged-in exactly once when it expires.
 */
export * from './interfaces/shared-credential-store.interface.js';
export * from './interfaces/shared-session-options.interface.js';
export { SharedSessionModule } from './shared-session.module.js';
export { SharedSessionClient } from './shared-session.client.js';
export { InjectSharedSession } from './shared-session.decorators.js';
export { getSharedSessionToken } from './shared-session.constants.js';
export {
  SharedSessionUnavailableException,
  SharedSessionConfigError,
  type SharedSessionFailureReason,
} from './shared-session.errors.js';
export { isIdempotentMethod, isSessionExpiredByDefault } from './shared-session.expiry.js';
export { loginBackoffDelay, resolveUpstreamUrl } from './shared-session.options.js';
export { MemorySharedCredentialStore } from './stores/memory-credential.store.js';
export {
  RedisSharedCredentialStore,
  type RedisSharedCredentialStoreOptions,
  type SharedCredentialRedisClient,
  type SharedCredentialNodeRedisClient,
  type SharedCredentialIoRedisClient,
} from './stores/redis-credential.store.js';
export {
  PostgresSharedCredentialStore,
  postgresSharedCredentialSchema,
  type PostgresSharedCredentialStoreOptions,
  type SharedCredentialPgPool,
} from './stores/postgres-credential.store.js';
