import { SessionError, SessionStoreUnavailableError } from './session.errors.js';
import { joinCookieHeader } from './transport/session-cookie.js';

/**
 * What the library knows about WebSocket clients, without importing `@nestjs/websockets`,
 * `socket.io` or `ws` (none is a dependency of the package): where a client's handshake `Cookie`
 * header is, the room names of {@link sessionRoom} and {@link userRoom}, and the errors Nest's
 * WebSocket exception filter turns into an `exception` event.
 */

/** A request as far as sessions read it: its headers. */
export interface SocketHandshake {
  readonly headers: { readonly cookie?: string | readonly string[] };
}

/**
 * The upgrade request of clients of the `ws` adapter (`@nestjs/platform-ws`), which a `WebSocket`
 * does not keep: recorded from the second argument of the gateway's `handleConnection(client,
 * req)`, which `SessionModule` wraps on every gateway (see session.gateways.ts).
 */
const handshakes = new WeakMap<object, SocketHandshake>();

function isSocketHandshake(value: unknown): value is SocketHandshake {
  const headers = (value as { headers?: unknown } | null)?.headers;
  return typeof headers === 'object' && headers !== null;
}

/** Records the upgrade request of a client (the `ws` adapter's `connection` event passes it). */
export function rememberHandshake(client: unknown, req: unknown): void {
  if (typeof client === 'object' && client !== null && isSocketHandshake(req)) {
    handshakes.set(client, req);
  }
}

/**
 * The handshake request of a WebSocket client: socket.io's `client.request` (or its
 * `client.handshake`), or the upgrade request recorded for a `ws` client. `undefined` for a client
 * of another transport.
 */
export function handshakeOf(client: unknown): SocketHandshake | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  const recorded = handshakes.get(client);
  if (recorded) return recorded;
  const { request, handshake } = client as { request?: unknown; handshake?: unknown };
  if (isSocketHandshake(request)) return request;
  if (isSocketHandshake(handshake)) return handshake;
  return undefined;
}

/**
 * {@link handshakeOf}, required.
 * @throws {SessionError} `SESSION_UNSUPPORTED` when the client's handshake cannot be found
 */
export function requireHandshake(client: unknown): SocketHandshake {
  const req = handshakeOf(client);
  if (!req) {
    throw new SessionError(
      'SESSION_UNSUPPORTED',
      'No handshake request for this WebSocket client: sessions work with the socket.io adapter (@nestjs/platform-socket.io) and the ws adapter (@nestjs/platform-ws)',
    );
  }
  return req;
}

/** The `Cookie` header of a handshake (a header sent more than once is one of all its cookies). */
export function cookieHeaderOf(req: SocketHandshake): string | undefined {
  return joinCookieHeader(req.headers.cookie);
}

// --- rooms ----------------------------------------------------------------------------------------

/**
 * The socket.io room of one session's sockets: `SessionModule` joins every socket.io client of a
 * gateway that uses sessions to it on connection (when its handshake carries a live session), so
 * a logout can disconnect them, on every instance with the socket.io Redis adapter.
 * @param sessionId - `session.id` (the server-side id, not the cookie token)
 * @example this.server.in(sessionRoom(session.id)).disconnectSockets(true);
 */
export function sessionRoom(sessionId: string): string {
  return `nestjs-sessions:session:${sessionId}`;
}

/**
 * The socket.io room of one user's sockets (the session's `userKey` value), joined as
 * {@link sessionRoom} is, for "log out everywhere".
 * @example this.server.in(userRoom(user.id)).disconnectSockets(true);
 */
export function userRoom(userId: string | number): string {
  return `nestjs-sessions:user:${String(userId)}`;
}

// --- errors -----------------------------------------------------------------------------------

/**
 * What a refused or failed message answers with, as the `exception` event's payload (socket.io:
 * `client.on('exception', …)`; `ws`: a message `{ event: 'exception', data }`).
 */
export interface SessionSocketErrorPayload {
  readonly status: 'error';
  readonly message: string;
  /** `SESSION_MISSING`, `SESSION_FORBIDDEN`, or the `code` of the {@link SessionError}. */
  readonly code: string;
  /** Why `SessionGuard` refused the message: `missing`, `forbidden` or `unavailable`. */
  readonly reason?: 'missing' | 'forbidden' | 'unavailable';
}

type WsExceptionClass = new (error: object) => Error;

let wsException: WsExceptionClass | undefined;
let wsExceptionLoading: Promise<void> | undefined;

/**
 * Resolves `WsException` from `@nestjs/websockets`, which an app with gateways has installed (its
 * exception filter answers any other error with "Internal server error"). Called once when the app
 * has gateways, before they accept clients.
 */
export function loadWsException(): Promise<void> {
  wsExceptionLoading ??= import('@nestjs/websockets').then(
    (module) => {
      wsException = module.WsException as unknown as WsExceptionClass;
    },
    () => undefined,
  );
  return wsExceptionLoading;
}

/**
 * An error Nest's WebSocket exception filter sends to the client as `payload`: a `WsException`
 * once {@link loadWsException} found it; otherwise an `Error` carrying the payload's fields (for a
 * filter of the app's own).
 */
export function socketError(payload: SessionSocketErrorPayload): Error {
  if (wsException) return new wsException(payload);
  return Object.assign(new Error(payload.message), payload);
}

const REFUSALS = {
  missing: { code: 'SESSION_MISSING', message: 'A valid session is required' },
  forbidden: { code: 'SESSION_FORBIDDEN', message: 'This session may not send this message' },
  unavailable: {
    code: 'STORE_UNAVAILABLE',
    message: 'Sessions are temporarily unavailable; please retry shortly',
  },
} as const;

/** The error of a message `SessionGuard` refused. */
export function socketRefusal(reason: 'missing' | 'forbidden' | 'unavailable'): Error {
  return socketError({ status: 'error', reason, ...REFUSALS[reason] });
}

/**
 * A library error of a message (a store that is down, a change that needs a cookie, a lock that
 * stays busy) as the client sees it; other errors are returned unchanged.
 */
export function toSocketError(error: unknown): unknown {
  if (error instanceof SessionStoreUnavailableError) return socketRefusal('unavailable');
  if (!(error instanceof SessionError)) return error;
  return socketError({ status: 'error', message: error.message, code: error.code });
}

// --- parameters ------------------------------------------------------------------------------------

/**
 * What `@Session()` and `@SessionId()` resolve to in a gateway: a stand-in that the hooked message
 * handler replaces with the value from the message's session, loaded once for the message (the
 * decorators cannot tell which app a message belongs to; the handler's gateway can).
 */
export class SocketSessionParam<H = unknown> {
  constructor(readonly pick: (session: H) => unknown) {}
}
