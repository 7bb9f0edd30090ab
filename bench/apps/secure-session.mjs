// @fastify/secure-session on the Fastify adapter: the whole session encrypted and authenticated in
// the cookie (libsodium secretbox), the stateless anchor users pick there.
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
import { createHash } from 'node:crypto';
import { env, optionalImport, serve, sleep } from './common.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

if (env.adapter !== 'fastify') throw new Error('secure-session.mjs runs on BENCH_ADAPTER=fastify');
const secureSession = (await optionalImport('@fastify/secure-session')).default;
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
  login(req) {
    // No server-side id: empty the session and seal a new cookie.
    req.session.regenerate();
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

await serve(async () => ({
  module: AppModule,
  setup: async (app) => {
    await app.register(secureSession, {
      // A 32-byte key from the run's secret (the plugin's `secret` + `salt` form runs a slow KDF).
      key: createHash('sha256').update(env.secret).digest(),
      cookieName: 'sid',
      // Same lifetime as the others' idle timeout.
      expiry: 30 * 60,
      cookie: { secure: false, httpOnly: true, sameSite: 'lax', path: '/', maxAge: 30 * 60 },
    });
  },
}));
