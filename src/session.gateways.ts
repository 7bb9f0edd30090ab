import { createParamDecorator, type ExecutionContext, type Type } from '@nestjs/common';
import type { ModulesContainer } from '@nestjs/core';
import { catchError, concatMap, finalize, from, isObservable, type Observable } from 'rxjs';
import { SessionHandle } from './core/session-handle.js';
import type { SessionRuntime } from './core/session-runtime.js';
import { SessionError } from './session.errors.js';
import {
  ORIGINAL_HANDLER,
  hiddenParamIndex,
  isHookedRoute,
  locksSession,
  takesSession,
} from './session.metadata.js';
import { methodsOf, replaceMethod, type Handler } from './session.hooks.js';
import { usesSession } from './session.routes.js';
import {
  SocketSessionParam,
  cookieHeaderOf,
  rememberHandshake,
  requireHandshake,
  sessionRoom,
  toSocketError,
  userRoom,
} from './session.sockets.js';

/**
 * Sessions in WebSocket gateways (`@WebSocketGateway()`, `@SubscribeMessage()`), hooked the way
 * session.routes.ts hooks controller routes, without importing `@nestjs/websockets`: its metadata
 * keys (`@nestjs/websockets/constants`) are matched as strings.
 *
 * - Every message loads the session afresh from the client's handshake Cookie header, so a session
 *   destroyed, revoked or expired — on any instance — is refused on the next message.
 * - A handler that takes `@Session()` or `@SessionId()` is replaced by one that loads the session,
 *   fills those parameters in, runs the handler, then commits the changes (or rolls them back when
 *   it throws). There is no response to carry a cookie: a change that needs one fails the message
 *   with `SESSION_NO_TRANSPORT`.
 * - `handleConnection` of every gateway is wrapped to record the `ws` adapter's upgrade request (a
 *   `WebSocket` does not keep it) and, on gateways that use sessions, to join socket.io clients to
 *   {@link sessionRoom} and {@link userRoom}.
 */

/** `GATEWAY_METADATA` and `MESSAGE_MAPPING_METADATA` of `@nestjs/websockets/constants`. */
const GATEWAY_METADATA = 'websockets:is_gateway';
const MESSAGE_MAPPING_METADATA = 'websockets:message_mapping';

/** On a gateway prototype whose `handleConnection` this module wrapped. */
const CONNECTION_HOOKED = Symbol.for('nestjs-sessions:connection-hook');

/** A gateway provider as Nest's container holds it. */
export interface GatewayWrapper {
  readonly metatype: Type;
  readonly instance: object | undefined;
}

/** Which app's session runtime serves a gateway instance (a class may serve several apps: tests). */
const runtimes = new WeakMap<object, SessionRuntime>();
/** Per class, for request-scoped gateways, whose instances are made per connection. */
const classRuntimes = new WeakMap<object, SessionRuntime>();

function runtimeOf(gateway: object): SessionRuntime | undefined {
  return runtimes.get(gateway) ?? classRuntimes.get(gateway.constructor);
}

/**
 * Hooks every gateway of the app: from the `SessionModule` constructor, since Nest connects
 * gateways (and reads their handlers) before it configures modules. Returns the gateways found,
 * for {@link bindSessionGateways}.
 */
export function hookSessionGateways(modules: ModulesContainer): GatewayWrapper[] {
  const gateways: GatewayWrapper[] = [];
  for (const module of modules.values()) {
    for (const wrapper of module.providers.values()) {
      const gateway = wrapper.metatype as Type | null | undefined;
      if (typeof gateway !== 'function' || !gateway.prototype) continue;
      if (Reflect.getMetadata(GATEWAY_METADATA, gateway) === undefined) continue;
      gateways.push(wrapper as unknown as GatewayWrapper);
      let sessions = false;
      for (const [owner, name, handler] of methodsOf(gateway)) {
        if (Reflect.getMetadata(MESSAGE_MAPPING_METADATA, handler) === undefined) continue;
        if (!usesSession(gateway, handler)) continue;
        sessions = true;
        if (isHookedRoute(handler) || !takesSession(gateway, handler)) continue;
        hookMessageHandler(owner, name, handler, locksSession(gateway, handler));
      }
      hookConnection(gateway, sessions);
    }
  }
  return gateways;
}

/** Whether a message handler of the gateways (or its gateway class) asks for `@SessionLock()`. */
export function anyGatewayLocks(gateways: readonly GatewayWrapper[]): boolean {
  return gateways.some(({ metatype: gateway }) =>
    [...methodsOf(gateway)].some(
      ([, , handler]) =>
        Reflect.getMetadata(MESSAGE_MAPPING_METADATA, handler) !== undefined &&
        locksSession(gateway, handler),
    ),
  );
}

/** Once the gateways exist: their messages are this runtime's. */
export function bindSessionGateways(gateways: GatewayWrapper[], runtime: SessionRuntime): void {
  for (const { metatype, instance } of gateways) {
    if (instance) runtimes.set(instance, runtime);
    classRuntimes.set(metatype, runtime);
  }
}

/** The hidden last argument of a hooked message handler: the client. */
const MessageClient = createParamDecorator((_data: unknown, ctx: ExecutionContext) =>
  ctx.getArgByIndex(0),
);

function hookMessageHandler(owner: object, name: string, original: Handler, lock: boolean): void {
  const at = hiddenParamIndex(owner, name, original);
  replaceMethod(
    owner,
    name,
    original,
    at,
    ORIGINAL_HANDLER,
    MessageClient(),
    (self, params, client) => runMessage(self as object, client, original, params, lock),
  );
}

/** One message: load, fill in the session parameters, run, then commit or roll back. */
async function runMessage(
  gateway: object,
  client: unknown,
  handler: Handler,
  params: unknown[],
  lock: boolean,
): Promise<unknown> {
  const runtime = runtimeOf(gateway);
  if (!runtime) {
    throw new SessionError(
      'SESSION_CONFIG_INVALID',
      'No session on this message: import SessionModule.forRoot() in the application module',
    );
  }
  let session: SessionHandle | undefined;
  try {
    const cookieHeader = cookieHeaderOf(requireHandshake(client));
    session = new SessionHandle(runtime, undefined, { cookieHeader });
    if (lock) session.requireLock();
    await session.loadNow();
    for (let i = 0; i < params.length; i++) {
      const param = params[i];
      if (param instanceof SocketSessionParam) params[i] = param.pick(session);
    }
  } catch (error) {
    await session?.release();
    throw toSocketError(error);
  }
  const loaded = session;
  let result: unknown;
  try {
    result = await handler.apply(gateway, params);
  } catch (error) {
    return failed(loaded, error);
  }
  if (isObservable(result)) {
    return (result as Observable<unknown>).pipe(
      // Under @SessionLock() each value is committed under the message's one lock, which finalize
      // gives back (concurrency: 'serialize' alone gives it back after the first value).
      concatMap((value) => from(committed(loaded, value, lock))),
      catchError((error: unknown) => from(failed(loaded, error))),
      finalize(() => void loaded.release()),
    );
  }
  return committed(loaded, result);
}

/**
 * Commits after a handler succeeded and releases the lock (kept with `keepLock`, for an observable's
 * next value); `value` once it is written.
 */
async function committed(
  session: SessionHandle,
  value: unknown,
  keepLock = false,
): Promise<unknown> {
  try {
    await session.settle(true, keepLock);
  } catch (error) {
    // The commit failed (a change that needs a cookie, the store): nothing of it stands.
    session.rollback();
    throw toSocketError(error);
  }
  return value;
}

/** Rolls back after a handler threw (commits with `commitOnError`), then rethrows its error. */
async function failed(session: SessionHandle, error: unknown): Promise<never> {
  try {
    await session.settle(false);
  } catch {
    // The handler's error is the one the client needs to see.
  }
  throw toSocketError(error);
}

// --- connections --------------------------------------------------------------------------------

/**
 * Wraps the gateway's `handleConnection` (or gives it one): records the upgrade request, which the
 * `ws` adapter passes as the second argument, and joins socket.io clients to their session's rooms
 * when the gateway uses sessions. Nest binds `handleConnection` when it connects the gateway, after
 * this runs.
 */
function hookConnection(gateway: Type, joinRooms: boolean): void {
  const prototype = gateway.prototype as Record<string | symbol, unknown>;
  if (Object.prototype.hasOwnProperty.call(prototype, CONNECTION_HOOKED)) return;
  const original = prototype.handleConnection as Handler | undefined;
  const handleConnection = function (this: object, client: unknown, ...rest: unknown[]): unknown {
    rememberHandshake(client, rest[0]);
    if (joinRooms) void joinSessionRooms(this, client);
    return original?.apply(this, [client, ...rest]);
  };
  Object.defineProperty(prototype, 'handleConnection', {
    value: handleConnection,
    writable: true,
    configurable: true,
  });
  Object.defineProperty(prototype, CONNECTION_HOOKED, { value: true });
}

/** A socket.io socket, as far as rooms go. */
interface RoomClient {
  readonly connected?: boolean;
  join(rooms: string[]): unknown;
}

/**
 * Joins a socket.io client to {@link sessionRoom} and {@link userRoom} of the session its handshake
 * carries. Best effort: a client whose session cannot be read now (the store is down) joins no
 * room, and its messages are checked one by one anyway.
 */
async function joinSessionRooms(gateway: object, client: unknown): Promise<void> {
  const runtime = runtimeOf(gateway);
  if (!runtime || typeof (client as RoomClient | null)?.join !== 'function') return;
  const socket = client as RoomClient;
  try {
    const cookieHeader = cookieHeaderOf(requireHandshake(client));
    const session = new SessionHandle(runtime, undefined, { cookieHeader });
    try {
      await session.load();
    } finally {
      await session.release();
    }
    if (session.isNew || socket.connected === false) return;
    const rooms = [sessionRoom(session.id)];
    const user = userOf(session, runtime);
    if (user !== null) rooms.push(userRoom(user));
    await socket.join(rooms);
  } catch {
    // See above: rooms only speed up a logout; every message loads the session itself.
  }
}

/** The session's user (the `userKey` value), as the store indexes it. */
function userOf(session: SessionHandle, runtime: SessionRuntime): string | null {
  const { userKey, userField } = runtime.options;
  let value: unknown = session.get(userKey as never);
  if (userField !== undefined) {
    value =
      typeof value === 'object' && value !== null
        ? (value as Record<string, unknown>)[userField]
        : undefined;
  }
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}
