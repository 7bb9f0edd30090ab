// Every token, key and symbol here is registered globally (`Symbol.for`, plain strings), so the
// ESM and the CommonJS build of this package agree on them when an app happens to load both (a
// CommonJS test helper next to an ESM app): one app never ends up with two sets of state.

/** Injection token of the resolved session runtime (`SessionRuntime`). */
export const SESSION_MANAGER = Symbol.for('nestjs-sessions:manager');
/** Injection token of the active {@link SessionStore}. */
export const SESSION_STORE = Symbol.for('nestjs-sessions:store');
/** Metadata: the route opts out of a global `SessionGuard`. */
export const ALLOW_ANONYMOUS_KEY = 'session:allow-anonymous';
/** Metadata: the route opts out of `SessionOriginGuard` (a webhook, say). */
export const ALLOW_CROSS_SITE_KEY = 'session:allow-cross-site';
/** Metadata: the route requires a session, optionally with a predicate. */
export const REQUIRE_SESSION_KEY = 'session:require';
/** Metadata: a handler parameter reads the session, so it is loaded before the handler runs. */
export const USES_SESSION_KEY = 'session:uses-session';
/** Metadata: the route's session section runs under the per-session lock. */
export const SESSION_LOCK_KEY = 'session:lock';
