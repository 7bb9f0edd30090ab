import { Controller, Get, Header, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { RequireSession, Session, SessionGuard } from 'nestjs-sessions';
import type { AppSession } from '../session-data.js';

/** Text answers are plain text: a name in the URL is echoed back, and must never become markup. */
const PLAIN_TEXT = 'text/plain; charset=utf-8';

/** The routes of the FastAPI article, plus an admin-only route. */
@Controller()
export class DemoController {
  @Post('create_session/:name')
  @HttpCode(200)
  @Header('Content-Type', PLAIN_TEXT)
  async create(@Param('name') name: string, @Session() session: Session<AppSession>) {
    // A new session holding only the name: nothing of an earlier session (a role) carries over.
    await session.regenerate({ keep: false });
    session.data.username = name;
    return `Created session for ${name}`;
  }

  @Get('whoami')
  @UseGuards(SessionGuard)
  whoami(@Session() session: Session<AppSession>) {
    return session.data;
  }

  @Post('delete_session')
  @HttpCode(200)
  @Header('Content-Type', PLAIN_TEXT)
  async delete(@Session() session: Session<AppSession>) {
    await session.destroy();
    return 'Deleted session';
  }

  @Get('session_test')
  sessionTest(@Session() session: Session<AppSession>) {
    session.data.test_counter = (session.data.test_counter ?? 0) + 1;
    return { test_counter: session.data.test_counter };
  }

  @Get('admin')
  @Header('Content-Type', PLAIN_TEXT)
  @RequireSession((s: AppSession) => s.role === 'admin')
  admin() {
    return 'ok';
  }
}
