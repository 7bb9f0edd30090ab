import { IncomingMessage, type ServerResponse } from 'node:http';
import type { SessionCarrier, SettleAtEnd } from '../core/session-carrier.js';
import { ExpressCarrier } from './express.carrier.js';
import {
  FastifyCarrier,
  type FastifyReplyLike,
  type FastifyRequestLike,
} from './fastify.carrier.js';

/**
 * The one place that keeps session state on framework objects (symbol-keyed properties on
 * requests, responses and request prototypes), and that installs `req.session` on Express and
 * Fastify. `Symbol.for` keys: the ESM and CommonJS builds of the package see the same ones.
 */
const BINDING = Symbol.for('nestjs-sessions:binding');
const HANDLE = Symbol.for('nestjs-sessions:handle');
const REPLY = Symbol.for('nestjs-sessions:reply');
const ROUTE_COMMITS = Symbol.for('nestjs-sessions:route-commits');
/** On a raw request under Fastify: its Fastify request (for middleware, which gets the raw one). */
const FASTIFY_REQUEST = Symbol.for('nestjs-sessions:fastify-request');

/** A request's session as this layer sees it. */
export interface CarriedSession extends SettleAtEnd {
  /** `req.session`: the handle behind a proxy that also shows data keys as properties. */
  readonly proxy: object;
  /** The server-side id once loaded (express-session's `req.sessionID`). */
  readonly sessionId: string | undefined;
  /** Loads the session; a promise only while the store is read. */
  loadNow(): Promise<void> | undefined;
  /** `req.session` was read: code other than the route handler may change the session. */
  usedOutsideRoute(): void;
}

/** What the session runtime offers this layer. */
export interface SessionHost {
  /** A new session handle for one exchange. */
  createHandle(carrier: SessionCarrier): CarriedSession;
  /** Whether a Cookie header carries the session cookie (eager loading skips requests without one). */
  presentsCookie(header: string | undefined): boolean;
}

/** Which runtime serves the requests of one app, and how to make a carrier for them. */
interface Binding {
  readonly host: SessionHost;
  carrierFor(req: object, res: object | undefined): SessionCarrier;
}

type Marked = Record<symbol, unknown>;

function bindingOf(req: object): Binding | undefined {
  return (req as Marked)[BINDING] as Binding | undefined;
}

/** Whether `SessionModule` serves this request (its app installed sessions). */
export function isSessionRequest(req: object | undefined): boolean {
  return req !== undefined && req !== null && bindingOf(req) !== undefined;
}

/**
 * From now on the route handler, not the response's end, commits the request's session (the route
 * hook calls this before anything loads the session on a hooked route).
 */
export function markRouteCommits(req: object): void {
  const marked = req as Marked;
  const existing = marked[HANDLE] as { carrier: SessionCarrier } | undefined;
  // A guard created the session already (the usual case): no new property on the request.
  if (existing) existing.carrier.routeCommits = true;
  else marked[ROUTE_COMMITS] = true;
}

/** The session of a request, if anything created it yet. */
export function existingSession<H extends CarriedSession>(req: object): H | undefined {
  return ((req as Marked)[HANDLE] as { handle: H } | undefined)?.handle;
}

/**
 * The session of a request (and its response), created on first use. `undefined` when no
 * `SessionModule` serves the request's app. `onHookedRoute`: the request is on a route whose
 * handler commits the session, so a guard that loads it first need not arrange a commit at the
 * response's end (unless something changes it through `req.session` before the handler runs).
 */
export function sessionOf<H extends CarriedSession>(
  req: object,
  res: object | undefined,
  onHookedRoute = false,
): { handle: H; carrier: SessionCarrier } | undefined {
  const marked = req as Marked;
  const existing = marked[HANDLE] as { handle: H; carrier: SessionCarrier } | undefined;
  if (existing) return existing;
  const binding = bindingOf(req);
  if (!binding) return undefined;
  const carrier = binding.carrierFor(req, res);
  if (marked[ROUTE_COMMITS] === true) carrier.routeCommits = true;
  carrier.routeWillCommit = onHookedRoute;
  const entry = { handle: binding.host.createHandle(carrier) as H, carrier };
  marked[HANDLE] = entry;
  return entry;
}

// --- Express ------------------------------------------------------------------------------------

/** The Express application as this layer uses it. */
interface ExpressAppLike {
  readonly request?: object;
  use(
    handler: (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void,
  ): unknown;
  readonly router?: { stack?: unknown[] };
  readonly _router?: { stack?: unknown[] };
}

function isExpressApp(app: unknown): app is ExpressAppLike {
  return (
    typeof app === 'function' &&
    typeof (app as unknown as ExpressAppLike).use === 'function' &&
    typeof (app as unknown as ExpressAppLike).request === 'object'
  );
}

/**
 * Makes `req.session` and `req.sessionID` lazy getters on the Express app's request prototype:
 * nothing runs per request until something reads them. With `eager`, the session of every request
 * that carries the cookie is loaded by a middleware placed before every other one. Returns false
 * when `app` is not an Express app.
 */
export function installExpressSessions(app: unknown, host: SessionHost, eager: boolean): boolean {
  if (!isExpressApp(app)) return false;
  const binding: Binding = {
    host,
    carrierFor: (req, res) =>
      new ExpressCarrier(
        req as IncomingMessage,
        (res ?? (req as { res: ServerResponse }).res) as ServerResponse,
      ),
  };
  defineSessionProperties(app.request!, binding, (req) => sessionOf(req, undefined));
  if (eager) {
    app.use((req, res, next) => eagerLoad(host, req, res, req.headers.cookie, next));
    // Before the middleware the app registered itself (Passport's session(), say).
    const stack = (app.router ?? app._router)?.stack;
    if (stack && stack.length > 1) stack.unshift(stack.pop());
  }
  return true;
}

// --- Fastify ------------------------------------------------------------------------------------

/** The Fastify instance as this layer uses it. */
interface FastifyInstanceLike {
  decorateRequest(name: string | symbol, value: unknown): unknown;
  hasRequestDecorator(name: string | symbol): boolean;
  addHook(name: string, hook: (...args: never[]) => unknown): unknown;
  after(callback: (error: Error | null, done: (error: Error | null) => void) => void): unknown;
}

function isFastifyInstance(instance: unknown): instance is FastifyInstanceLike {
  const candidate = instance as FastifyInstanceLike | null;
  return (
    typeof candidate?.decorateRequest === 'function' &&
    typeof candidate.addHook === 'function' &&
    typeof candidate.after === 'function' &&
    typeof candidate.hasRequestDecorator === 'function'
  );
}

/**
 * Makes `request.session` and `request.sessionID` lazy getters on the Fastify instance's requests,
 * settles sessions in an `onSend` hook (before Fastify writes the headers), and with `eager` loads
 * the session of every request that carries the cookie in the first `onRequest` hook. Cookies are
 * read from the raw header, so `@fastify/cookie` is neither needed nor in the way. Returns false
 * when `instance` is not Fastify.
 */
export function installFastifySessions(
  instance: unknown,
  host: SessionHost,
  eager: boolean,
): boolean {
  if (!isFastifyInstance(instance)) return false;
  const binding: Binding = {
    host,
    carrierFor: (request, reply) => {
      const fastifyRequest = request as FastifyRequestLike;
      return new FastifyCarrier(
        fastifyRequest,
        (reply ?? (request as Marked)[REPLY]) as FastifyReplyLike,
      );
    },
  };
  instance.decorateRequest(REPLY, null);
  instance.decorateRequest(BINDING, { getter: () => binding });
  instance.decorateRequest(HANDLE, null);
  for (const name of ['session', 'sessionID']) {
    if (instance.hasRequestDecorator(name)) {
      throw new Error(
        `request.${name} is already decorated (is @fastify/session registered?): remove it, SessionModule provides sessions`,
      );
    }
  }
  instance.decorateRequest('session', {
    getter(this: object) {
      return requestView(sessionOf(this, undefined));
    },
  });
  instance.decorateRequest(ROUTE_COMMITS, false);
  instance.decorateRequest('sessionID', {
    getter(this: object) {
      return existingSession(this)?.sessionId;
    },
  });
  const onRequest = (
    request: Marked & FastifyRequestLike,
    reply: FastifyReplyLike,
    done: (err?: Error) => void,
  ) => {
    request[REPLY] = reply;
    // Middleware (`app.use()`) gets the raw request: `raw.session` finds the session through it.
    (request.raw as unknown as Marked)[FASTIFY_REQUEST] = request;
    if (!eager) return done();
    eagerLoad(host, request, reply, request.headers.cookie, done);
  };
  instance.addHook('onRequest', onRequest);
  // Before the hook that runs the app's middleware, which Nest registers first. Fastify adds root
  // hooks when its plugin queue gets there (`after`), and copies them into routes later still.
  instance.after((error, done) => {
    runFirst(instance, 'onRequest', onRequest);
    done(error);
  });
  installRawSessionProperty();
  instance.addHook(
    'onSend',
    (
      request: Marked,
      reply: FastifyReplyLike,
      payload: unknown,
      done: (err: Error | null, payload: unknown) => void,
    ) => {
      const carrier = (request[HANDLE] as { carrier: SessionCarrier } | null)?.carrier as
        FastifyCarrier | undefined;
      const target = carrier?.pending;
      if (!target) return done(null, payload);
      carrier.pending = undefined;
      let settling: Promise<void> | undefined;
      try {
        settling = target.settleAtEnd(reply.statusCode);
      } catch (error) {
        target.reportUnsaved(error);
      }
      if (!settling) return done(null, payload);
      settling.then(
        () => done(null, payload),
        (error: unknown) => {
          target.reportUnsaved(error);
          done(null, payload);
        },
      );
    },
  );
  return true;
}

/**
 * Moves a root hook just added to the front of the instance's list. Fastify has no API for it;
 * routes copy the root hooks when they are registered, which Nest does after this.
 */
function runFirst(instance: object, name: string, hook: unknown): void {
  const key = Object.getOwnPropertySymbols(instance).find((k) => k.description === 'fastify.hooks');
  const list = key && ((instance as Marked)[key] as Record<string, unknown[]> | undefined)?.[name];
  if (Array.isArray(list) && list[list.length - 1] === hook) list.unshift(list.pop());
}

/**
 * `session` on Node's raw requests, for middleware under Fastify (middie hands it the raw
 * request): the session of the Fastify request behind it. Defined once; Express apps shadow it on
 * their own request prototype, and an assignment (another session library) makes an own property.
 */
function installRawSessionProperty(): void {
  const prototype = IncomingMessage.prototype;
  if (Object.prototype.hasOwnProperty.call(prototype, FASTIFY_REQUEST)) return;
  Object.defineProperty(prototype, FASTIFY_REQUEST, { value: undefined, writable: true });
  Object.defineProperty(prototype, 'session', {
    configurable: true,
    get(this: Marked) {
      const request = this[FASTIFY_REQUEST] as object | undefined;
      return request ? requestView(sessionOf(request, undefined)) : undefined;
    },
    set(this: object, value: unknown) {
      Object.defineProperty(this, 'session', { value, writable: true, configurable: true });
    },
  });
}

// --- both ---------------------------------------------------------------------------------------

/** `req.session`: the handle's proxy, for middleware, guards and interceptors as for the handler. */
function requestView(entry: { handle: CarriedSession } | undefined): object | undefined {
  if (!entry) return undefined;
  entry.handle.usedOutsideRoute();
  return entry.handle.proxy;
}

function defineSessionProperties(
  prototype: object,
  binding: Binding,
  session: (req: object) => { handle: CarriedSession } | undefined,
): void {
  Object.defineProperty(prototype, BINDING, { configurable: true, value: binding });
  // Present (undefined) before a request sets its own: a read finds them on the prototype instead
  // of walking the request's whole prototype chain to miss them (as Fastify's decorators do).
  for (const key of [HANDLE, ROUTE_COMMITS]) {
    Object.defineProperty(prototype, key, { configurable: true, writable: true, value: undefined });
  }
  Object.defineProperty(prototype, 'session', {
    configurable: true,
    get(this: object) {
      return requestView(session(this));
    },
    set(this: object, value: unknown) {
      Object.defineProperty(this, 'session', { value, writable: true, configurable: true });
    },
  });
  Object.defineProperty(prototype, 'sessionID', {
    configurable: true,
    get(this: object) {
      return existingSession(this)?.sessionId;
    },
  });
}

/**
 * `eager: true`: loads the session of a request that carries the cookie before the app's own
 * middleware runs. A store that is down answers 503 here, as a route would.
 */
function eagerLoad(
  host: SessionHost,
  req: object,
  res: object,
  cookieHeader: string | undefined,
  next: (err?: Error) => void,
): void {
  if (!host.presentsCookie(cookieHeader)) return next();
  const { handle } = sessionOf(req, res)!;
  let loading: Promise<void> | undefined;
  try {
    loading = handle.loadNow();
  } catch {
    return unavailable(res, next);
  }
  if (!loading) return next();
  loading.then(
    () => next(),
    () => unavailable(res, next),
  );
}

/** The body of Nest's `SessionUnavailableException`, for a 503 answered before Nest's router. */
const UNAVAILABLE = {
  statusCode: 503,
  message: 'Sessions are temporarily unavailable; please retry shortly',
  error: 'Service Unavailable',
};

function unavailable(res: object, next: (err?: Error) => void): void {
  const reply = res as { code?: (status: number) => { send(body: unknown): unknown } };
  if (typeof reply.code === 'function') {
    // Fastify: answering in an onRequest hook means not calling next.
    reply.code(503).send(UNAVAILABLE);
    return;
  }
  const raw = res as ServerResponse;
  if (raw.headersSent) return next();
  raw.statusCode = 503;
  raw.setHeader('Content-Type', 'application/json; charset=utf-8');
  raw.end(JSON.stringify(UNAVAILABLE));
}
