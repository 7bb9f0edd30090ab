import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SESSION_MANAGER } from './session.constants.js';
import type { SessionManager } from './session.manager.js';

/**
 * Attaches a lazy session to every request as `req.session`: no cookie parsing, no store access
 * until something uses it. `SessionModule` registers it only for HTTP adapters where it cannot
 * define `req.session` once on the request prototype (see `SessionManager.installRequestProperty`).
 */
@Injectable()
export class SessionMiddleware implements NestMiddleware {
  constructor(@Inject(SESSION_MANAGER) private readonly sessions: SessionManager) {}

  use(req: IncomingMessage & { session?: unknown }, res: ServerResponse, next: () => void): void {
    req.session = this.sessions.handleFor(req, res).proxy;
    next();
  }
}
