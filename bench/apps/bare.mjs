// Bare Nest: the same routes and response bodies with no session at all — the upper limit.
import { Body, Controller, Get, HttpCode, Module, Post } from '@nestjs/common';
import { serve, sleep, env } from './common.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

let counter = 0;
const cart = [];

class BenchController {
  plain() {
    return { ok: true };
  }
  whoami() {
    return { userId: 'u1', name: 'bench' };
  }
  counter() {
    return { counter: ++counter };
  }
  login() {
    return { ok: true };
  }
  async addItem(body) {
    const items = [...cart];
    await sleep(env.cartDelay);
    cart.splice(0, cart.length, ...items, String(body?.item));
    return { count: cart.length };
  }
  cart() {
    return { items: cart };
  }
}
decorateClass(BenchController, [Controller()]);
decorateMethod(BenchController, 'plain', [Get('plain')]);
decorateMethod(BenchController, 'whoami', [Get('whoami')]);
decorateMethod(BenchController, 'counter', [Post('counter'), HttpCode(200)]);
decorateMethod(BenchController, 'login', [Post('login'), HttpCode(200)]);
decorateMethod(BenchController, 'addItem', [Post('cart/items'), HttpCode(200)], [Body()]);
decorateMethod(BenchController, 'cart', [Get('cart')]);

class AppModule {}
decorateClass(AppModule, [Module({ controllers: [BenchController] })]);

await serve(async () => ({ module: AppModule }));
