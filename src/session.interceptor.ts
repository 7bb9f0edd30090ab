import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, concatMap, defer, of, switchMap, type Observable } from 'rxjs';
import { SESSION_MANAGER } from './session.constants.js';
import { toHttpException } from './session.errors.js';
import type { SessionHandle } from './session.js';
import type { SessionManager } from './session.manager.js';

/**
 * The commit half of the session lifecycle, registered for every route by `SessionModule`. Loads
 * the session before handlers that take it as a parameter, saves the changes after the handler
 * succeeds and before the response is written, and drops them when it throws (unless
 * `commitOnError`). Session errors become HTTP errors (503 store down, 409 session gone, 413 too
 * large).
 */
@Injectable()
export class SessionInterceptor implements NestInterceptor {
  constructor(@Inject(SESSION_MANAGER) private readonly sessions: SessionManager) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const session = this.sessions.forContext(context);
    const start: Observable<unknown> = this.sessions.routeInfo(context).usesSession
      ? defer(() => session.load())
      : of(null);
    let committing = false;
    return start.pipe(
      switchMap(() => next.handle()),
      concatMap(async (value) => {
        committing = true;
        await session.commit();
        committing = false;
        await session.release();
        return value;
      }),
      catchError((error: unknown) => this.fail(session, error, committing)),
    );
  }

  private async fail(session: SessionHandle, error: unknown, committing: boolean): Promise<never> {
    try {
      if (!committing && this.sessions.options.commitOnError) {
        await session.commit();
      } else {
        session.rollback();
      }
    } finally {
      await session.release();
    }
    throw toHttpException(error);
  }
}
