// express-session with the recommended settings (resave: false, saveUninitialized: false), on its
// MemoryStore or on connect-redis (current major, with the current node-redis client).
//   BENCH_STORE  memory | redis
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Module,
  Post,
  Req,
  UnauthorizedException,
} from '@nestjs/common';
import { env, optionalImport, serve, sleep } from './common.mjs';
import { deletePrefix, redisClient } from './stores.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

const session = (await optionalImport('express-session')).default;
let users = 0;

const regenerate = (req) =>
  new Promise((resolve, reject) =>
    req.session.regenerate((err) => (err ? reject(err) : resolve())),
  );

class BenchController {
  plain() {
    return { ok: true };
  }
  whoami(req) {
    if (!req.session.userId) throw new UnauthorizedException();
    return { userId: req.session.userId, name: req.session.name };
  }
  counter(req) {
    const counter = (req.session.counter ?? 0) + 1;
    req.session.counter = counter;
    return { counter };
  }
  async login(req) {
    await regenerate(req);
    req.session.userId = `u${++users}`;
    req.session.name = 'bench';
    return { ok: true };
  }
  async addItem(body, req) {
    const cart = req.session.cart ?? [];
    await sleep(env.cartDelay);
    req.session.cart = [...cart, String(body?.item)];
    return { count: req.session.cart.length };
  }
  cart(req) {
    return { items: req.session.cart ?? [] };
  }
}
decorateClass(BenchController, [Controller()]);
decorateMethod(BenchController, 'plain', [Get('plain')]);
decorateMethod(BenchController, 'whoami', [Get('whoami')], [Req()]);
decorateMethod(BenchController, 'counter', [Post('counter'), HttpCode(200)], [Req()]);
decorateMethod(BenchController, 'login', [Post('login'), HttpCode(200)], [Req()]);
decorateMethod(BenchController, 'addItem', [Post('cart/items'), HttpCode(200)], [Body(), Req()]);
decorateMethod(BenchController, 'cart', [Get('cart')], [Req()]);

class AppModule {}
decorateClass(AppModule, [Module({ controllers: [BenchController] })]);

await serve(async () => {
  let store;
  let close = async () => {};
  if ((process.env.BENCH_STORE ?? 'memory') === 'redis') {
    const { RedisStore } = await optionalImport('connect-redis-10', 'RedisStore');
    const client = await redisClient();
    store = new RedisStore({ client, prefix: env.prefix });
    close = async () => {
      await deletePrefix(client, env.prefix).catch(() => {});
      await client.quit().catch(() => {});
    };
  }
  // MemoryStore warns on stderr in production; that is expected here.
  const middleware = session({
    secret: env.secret,
    name: 'sid',
    resave: false,
    saveUninitialized: false,
    store,
    // 30 minutes, sliding on activity: the idle timeout nestjs-sessions enforces by default.
    cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 30 * 60_000 },
  });
  return { module: AppModule, close, setup: (app) => app.use(middleware) };
});
