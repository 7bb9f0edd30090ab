// @fastify/session (with @fastify/cookie) on the Fastify adapter, the express-session counterpart
// users pick there: its default MemoryStore, or connect-redis (it takes express-session stores).
//   BENCH_STORE  memory | redis
// saveUninitialized: false as for express-session; the other options are its defaults (rolling).
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

if (env.adapter !== 'fastify') throw new Error('fastify-session.mjs runs on BENCH_ADAPTER=fastify');
const fastifyCookie = (await optionalImport('@fastify/cookie')).default;
const fastifySession = (await optionalImport('@fastify/session')).default;
let users = 0;

class BenchController {
  plain() {
    return { ok: true };
  }
  whoami(req) {
    if (!req.session.get('userId')) throw new UnauthorizedException();
    return { userId: req.session.get('userId'), name: req.session.get('name') };
  }
  counter(req) {
    const counter = (req.session.get('counter') ?? 0) + 1;
    req.session.set('counter', counter);
    return { counter };
  }
  async login(req) {
    await req.session.regenerate();
    req.session.set('userId', `u${++users}`);
    req.session.set('name', 'bench');
    return { ok: true };
  }
  async addItem(body, req) {
    const cart = req.session.get('cart') ?? [];
    await sleep(env.cartDelay);
    req.session.set('cart', [...cart, String(body?.item)]);
    return { count: req.session.get('cart').length };
  }
  cart(req) {
    return { items: req.session.get('cart') ?? [] };
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
  return {
    module: AppModule,
    close,
    setup: async (app) => {
      await app.register(fastifyCookie);
      await app.register(fastifySession, {
        secret: env.secret,
        cookieName: 'sid',
        saveUninitialized: false,
        ...(store ? { store } : {}),
        cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 30 * 60_000 },
      });
    },
  };
});
