import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { catchError, concatMap, defer, of, switchMap, type Observable } from 'rxjs';
import { SESSION_MANAGER, USES_SESSION_KEY } from './session.constants.js';
import { toHttpException } from './session.errors.js';
import type { SessionHandle } from './session.js';
import type { SessionManager } from './session.manager.js';

const NEST_SESSION_PARAM = `${RouteParamtypes.SESSION}:`;

/**
 * The commit half of the session lifecycle, registered for every route by `SessionModule`. Loads
 * the session before handlers that take it as a parameter, saves the changes after the handler
 * succeeds and before the response is written, and drops them when it throws (unless
 * `commitOnError`). Session errors become HTTP errors (503 store down, 409 session gone, 413 too
 * large).
 */
@Injectable()
export class SessionInterceptor implements NestInterceptor {
  private readonly routes = new WeakMap<object, boolean>();

  constructor(@Inject(SESSION_MANAGER) private readonly sessions: SessionManager) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const session = this.sessions.handleFor(
      http.getRequest<IncomingMessage>(),
      http.getResponse<ServerResponse>(),
    );
    const start: Observable<unknown> = this.usesSession(context)
      ? defer(() => session.load())
      : of(null);
    let committing = false;
    return start.pipe(
      switchMap(() => next.handle()),
      concatMap(async (value) => {
        committing = true;
        await session.commit();
        committing = false;
        return value;
      }),
      catchError((error: unknown) => this.fail(session, error, committing)),
    );
  }

  private async fail(session: SessionHandle, error: unknown, committing: boolean): Promise<never> {
    if (!committing && this.sessions.options.commitOnError) {
      await session.commit();
    } else {
      session.rollback();
    }
    throw toHttpException(error);
  }

  /** Whether the handler takes the session as a parameter (ours or Nest's `@Session()`). Cached. */
  private usesSession(context: ExecutionContext): boolean {
    const handler = context.getHandler();
    let uses = this.routes.get(handler);
    if (uses === undefined) {
      const args: Record<string, unknown> =
        Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), handler.name) ?? {};
      uses =
        Reflect.getMetadata(USES_SESSION_KEY, handler) === true ||
        Object.keys(args).some((key) => key.startsWith(NEST_SESSION_PARAM));
      this.routes.set(handler, uses);
    }
    return uses;
  }
}
