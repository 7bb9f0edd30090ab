import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Post,
  UnauthorizedException,
  UseGuards,
} from '@nestjs/common';
import { Session, SessionGuard, SessionService } from 'nestjs-sessions';
import { WhoamiGateway } from '../realtime/whoami.gateway.js';
import type { AppSession } from '../session-data.js';
import { UsersRepository } from '../users/users.repository.js';

/** Log in and out, list your sessions, log out everywhere else. */
@Controller('auth')
export class AuthController {
  constructor(
    private readonly users: UsersRepository,
    private readonly sessions: SessionService,
    private readonly sockets: WhoamiGateway,
  ) {}

  @Post('login')
  @HttpCode(200)
  async login(
    @Body() body: { username?: unknown; password?: unknown } | undefined,
    @Headers('user-agent') userAgent: string | undefined,
    @Session() session: Session<AppSession>,
  ) {
    const { username, password } = body ?? {};
    if (typeof username !== 'string' || typeof password !== 'string') {
      // Missing or malformed credentials are bad credentials.
      throw new UnauthorizedException('Send JSON {"username": "...", "password": "..."}');
    }
    const user = await this.users.verify(username, password);
    if (!user) throw new UnauthorizedException('Wrong username or password');
    // A new id at every login: an id planted before login is dead after it.
    await session.regenerate();
    Object.assign(session.data, {
      userId: user.id,
      username: user.username,
      role: user.role,
      userAgent: userAgent?.slice(0, 200) ?? 'unknown',
    });
    return { username: user.username, role: user.role };
  }

  @Post('logout')
  @HttpCode(200)
  async logout(@Session() session: Session<AppSession>) {
    const { id } = session;
    await session.destroy();
    this.sockets.disconnectSession(id);
    return { loggedOut: true };
  }

  @Get('sessions')
  @UseGuards(SessionGuard)
  async list(@Session() session: Session<AppSession>) {
    const userId = session.data.userId;
    if (!userId) return [];
    const sessions = await this.sessions.listForUser<AppSession>(userId);
    // Never the id, the token or its hash: only what a "your devices" page shows.
    return sessions.map((s) => ({
      createdAt: s.createdAt.toISOString(),
      lastActiveAt: s.lastActiveAt.toISOString(),
      userAgent: s.data.userAgent ?? 'unknown',
      current: s.id === session.id,
    }));
  }

  @Delete('sessions')
  @UseGuards(SessionGuard)
  async logoutOthers(@Session() session: Session<AppSession>) {
    const userId = session.data.userId;
    const loggedOut = userId
      ? await this.sessions.invalidateAllForUser(userId, { except: session.id })
      : 0;
    return { loggedOut };
  }
}
