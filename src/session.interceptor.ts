import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { catchError, concatMap, from, switchMap, type Observable } from 'rxjs';
import { SESSION_MANAGER } from './session.constants.js';
import { toHttpException } from './session.errors.js';
import type { SessionManager } from './session.manager.js';

/**
 * The load/commit half of the session lifecycle, bound by `SessionModule` to every route that
 * uses the session. Loads the session before handlers that take it as a parameter, saves the
 * changes after the handler succeeds and before the response is written, and drops them when it
 * throws (unless `commitOnError`). Session errors become HTTP errors (503 store down, 409 session
 * gone or busy, 413 too large).
 */
@Injectable()
export class SessionInterceptor implements NestInterceptor {
  constructor(@Inject(SESSION_MANAGER) private readonly sessions: SessionManager) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<IncomingMessage>();
    const route = this.sessions.routeInfo(context);
    if (route.usesSession || route.lock) {
      const session = this.sessions.forContext(context);
      if (route.usesSession && !session.isLoaded) {
        // Load failures (store down, lock busy) take the same error path as the handler's.
        const loaded = from(session.load()).pipe(switchMap(() => next.handle()));
        return this.commitAfter(loaded, req);
      }
    }
    return this.commitAfter(next.handle(), req);
  }

  /** Saves after the handler (if anything loaded the session), rolls back when it fails. */
  private commitAfter(handler: Observable<unknown>, req: IncomingMessage): Observable<unknown> {
    let committing = false;
    return handler.pipe(
      concatMap((value) => {
        const session = this.sessions.existingHandle(req);
        // Routes that never touched the session pass straight through.
        if (!session?.isLoaded) return [value];
        committing = true;
        return session.commit().then(async () => {
          committing = false;
          await session.release();
          return value;
        });
      }),
      catchError((error: unknown) => this.fail(req, error, committing)),
    );
  }

  private async fail(req: IncomingMessage, error: unknown, committing: boolean): Promise<never> {
    const session = this.sessions.existingHandle(req);
    if (session) {
      try {
        if (!committing && this.sessions.options.commitOnError) {
          await session.commit();
        } else {
          session.rollback();
        }
      } finally {
        await session.release();
      }
    }
    throw toHttpException(error);
  }
}
