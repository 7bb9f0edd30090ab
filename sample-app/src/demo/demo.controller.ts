import { Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { RequireSession, Session, SessionGuard } from 'nestjs-sessions';
import type { AppSession } from '../session-data.js';

/** The routes of the FastAPI article, plus an admin-only route. */
@Controller()
export class DemoController {
  @Post('create_session/:name')
  @HttpCode(200)
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
  @RequireSession((s: AppSession) => s.role === 'admin')
  admin() {
    return 'ok';
  }
}
