import { Controller, Get, Header, HttpCode, Param, Post, Req, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { RequireSession, Session, SessionGuard } from 'nestjs-sessions';
import 'nestjs-sessions/express';

export interface UserSession {
  username?: string;
  role?: 'user' | 'admin';
}

/** The README's quick start. */
@Controller()
export class AppController {
  @Post('create_session/:name')
  @HttpCode(200)
  @Header('Content-Type', 'text/plain; charset=utf-8')
  async create(@Param('name') name: string, @Session() session: Session<UserSession>) {
    await session.regenerate();
    session.data.username = name;
    return `Created session for ${name}`;
  }

  @Get('whoami')
  @UseGuards(SessionGuard)
  whoami(@Session() session: Session<UserSession>) {
    return session.data;
  }

  @Get('admin')
  @RequireSession((s: UserSession) => s.role === 'admin')
  admin() {
    return { ok: true };
  }

  /** `req.session`, typed by `nestjs-sessions/express`. */
  @Post('delete_session')
  @HttpCode(200)
  async delete(@Req() req: Request) {
    await req.session.load();
    await req.session.destroy();
    return { deleted: true };
  }
}
