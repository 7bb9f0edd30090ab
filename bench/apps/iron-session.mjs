// iron-session v8: the whole session sealed (encrypted + signed) in the cookie, no store.
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Module,
  Post,
  Req,
  Res,
  UnauthorizedException,
} from '@nestjs/common';
import { env, optionalImport, serve, sleep } from './common.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

const { getIronSession } = await optionalImport('iron-session', 'getIronSession');
const options = {
  password: env.secret,
  cookieName: 'sid',
  // Same lifetime as the others' idle timeout.
  ttl: 30 * 60,
  cookieOptions: { secure: false, httpOnly: true, sameSite: 'lax', path: '/' },
};
let users = 0;

class BenchController {
  plain() {
    return { ok: true };
  }
  async whoami(req, res) {
    const session = await getIronSession(req, res, options);
    if (!session.userId) throw new UnauthorizedException();
    return { userId: session.userId, name: session.name };
  }
  async counter(req, res) {
    const session = await getIronSession(req, res, options);
    const counter = (session.counter ?? 0) + 1;
    session.counter = counter;
    await session.save();
    return { counter };
  }
  async login(req, res) {
    // No server-side id to regenerate: start empty and seal a new cookie.
    const session = await getIronSession(req, res, options);
    for (const key of Object.keys(session)) delete session[key];
    session.userId = `u${++users}`;
    session.name = 'bench';
    await session.save();
    return { ok: true };
  }
  async addItem(body, req, res) {
    const session = await getIronSession(req, res, options);
    const cart = session.cart ?? [];
    await sleep(env.cartDelay);
    session.cart = [...cart, String(body?.item)];
    await session.save();
    return { count: session.cart.length };
  }
  async cart(req, res) {
    const session = await getIronSession(req, res, options);
    return { items: session.cart ?? [] };
  }
}
const passthrough = Res({ passthrough: true });
decorateClass(BenchController, [Controller()]);
decorateMethod(BenchController, 'plain', [Get('plain')]);
decorateMethod(BenchController, 'whoami', [Get('whoami')], [Req(), passthrough]);
decorateMethod(BenchController, 'counter', [Post('counter'), HttpCode(200)], [Req(), passthrough]);
decorateMethod(BenchController, 'login', [Post('login'), HttpCode(200)], [Req(), passthrough]);
decorateMethod(
  BenchController,
  'addItem',
  [Post('cart/items'), HttpCode(200)],
  [Body(), Req(), passthrough],
);
decorateMethod(BenchController, 'cart', [Get('cart')], [Req(), passthrough]);

class AppModule {}
decorateClass(AppModule, [Module({ controllers: [BenchController] })]);

await serve(async () => ({ module: AppModule }));
