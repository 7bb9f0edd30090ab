import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SESSION_MANAGER } from './session.constants.js';
import type { SessionManager } from './session.manager.js';

/**
 * Attaches a lazy session to every request as `req.session`: no cookie parsing, no store access
 * until something uses it. Registered for every route by `SessionModule`.
 */
@Injectable()
export class SessionMiddleware implements NestMiddleware {
  constructor(@Inject(SESSION_MANAGER) private readonly sessions: SessionManager) {}

  use(req: IncomingMessage, res: ServerResponse, next: () => void): void {
    this.sessions.handleFor(req, res);
    next();
  }
}
