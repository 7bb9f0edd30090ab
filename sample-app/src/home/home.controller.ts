import {
  Body,
  Controller,
  Get,
  Header,
  Headers,
  Post,
  Query,
  Redirect,
  UseGuards,
} from '@nestjs/common';
import { Session, SessionCsrfGuard, SessionService } from 'nestjs-sessions';
import type { AppSession } from '../session-data.js';
import { UsersRepository } from '../users/users.repository.js';
import { renderPage, type PageDevice } from './home.page.js';

/** Form bodies as the browser posts them (`application/x-www-form-urlencoded`). */
type FormBody = Record<string, unknown> | undefined;

const text = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : undefined;

/**
 * The sample's page, server-rendered with plain forms (no script): log in, who you are, a cart,
 * your devices with "log out this device" and "log out everywhere else". Every form of a logged-in
 * page carries this session's CSRF token and goes to a route behind `SessionCsrfGuard`; the login
 * form is covered by the app-wide `SessionOriginGuard`. The page is never cached: after logout the
 * back button shows nothing private.
 */
@Controller()
export class HomeController {
  constructor(
    private readonly users: UsersRepository,
    private readonly sessions: SessionService,
  ) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  @Header(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  )
  async page(@Session() session: Session<AppSession>, @Query('error') error?: string) {
    const { userId, username, role } = session.data;
    if (!userId || !username) return renderPage({ error: error === 'login' });
    return renderPage({
      user: { username, role: role ?? 'user' },
      cart: session.data.cart ?? [],
      devices: await this.devices(userId, session.id),
      csrfToken: session.createCsrfToken(),
    });
  }

  @Post('page/login')
  @Redirect('/', 303)
  async login(
    @Body() body: FormBody,
    @Headers('user-agent') userAgent: string | undefined,
    @Session() session: Session<AppSession>,
  ) {
    const username = text(body?.username);
    const password = text(body?.password);
    const user = username && password ? await this.users.verify(username, password) : undefined;
    if (!user) return { url: '/?error=login' };
    await session.regenerate({ keep: ['cart'] });
    Object.assign(session.data, {
      userId: user.id,
      username: user.username,
      role: user.role,
      userAgent: userAgent?.slice(0, 200) ?? 'unknown',
    });
    return { url: '/' };
  }

  @Post('page/logout')
  @UseGuards(SessionCsrfGuard)
  @Redirect('/', 303)
  async logout(@Session() session: Session<AppSession>) {
    await session.destroy();
  }

  @Post('page/logout-others')
  @UseGuards(SessionCsrfGuard)
  @Redirect('/', 303)
  async logoutOthers(@Session() session: Session<AppSession>) {
    const { userId } = session.data;
    if (userId) await this.sessions.invalidateAllForUser(userId, { except: session.id });
  }

  @Post('page/cart')
  @UseGuards(SessionCsrfGuard)
  @Redirect('/', 303)
  addToCart(@Body() body: FormBody, @Session() session: Session<AppSession>) {
    const item = text(body?.item)?.trim();
    if (item && item.length <= 200) session.data.cart = [...(session.data.cart ?? []), item];
  }

  /** The user's sessions, or `null` where they cannot be listed (sealed cookies keep no server state). */
  private async devices(userId: string, currentId: string): Promise<PageDevice[] | null> {
    try {
      const list = await this.sessions.listForUser<AppSession>(userId);
      return list.map((s) => ({
        userAgent: s.data.userAgent ?? 'unknown',
        lastActiveAt: s.lastActiveAt,
        current: s.id === currentId,
      }));
    } catch {
      return null;
    }
  }
}
