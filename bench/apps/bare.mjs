// Bare Nest: the same routes and response bodies with no session at all — the upper limit.
//   BENCH_MACHINERY=1  the "Nest machinery" control: the session routes get a no-op guard
//                      (@UseGuards) and a custom parameter decorator (createParamDecorator), the
//                      two pieces of Nest a guarded @Session() route goes through, with no session.
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Module,
  Post,
  UseGuards,
  createParamDecorator,
} from '@nestjs/common';
import { serve, sleep, env } from './common.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

const machinery = process.env.BENCH_MACHINERY === '1';
let counter = 0;
const cart = [];

class NoopGuard {
  canActivate() {
    return true;
  }
}
/** Reads the request from the context, as @Session() does, and hands the handler a constant. */
const Caller = createParamDecorator((_data, ctx) => {
  ctx.switchToHttp().getRequest();
  return { userId: 'u1', name: 'bench' };
});

class BenchController {
  plain() {
    return { ok: true };
  }
  whoami(caller) {
    return caller ? { userId: caller.userId, name: caller.name } : { userId: 'u1', name: 'bench' };
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
const guard = machinery ? [UseGuards(NoopGuard)] : [];
const param = machinery ? [Caller()] : [];
decorateClass(BenchController, [Controller()]);
decorateMethod(BenchController, 'plain', [Get('plain')]);
decorateMethod(BenchController, 'whoami', [Get('whoami'), ...guard], param);
decorateMethod(BenchController, 'counter', [Post('counter'), HttpCode(200), ...guard], param);
decorateMethod(BenchController, 'login', [Post('login'), HttpCode(200), ...guard], param);
decorateMethod(BenchController, 'addItem', [Post('cart/items'), HttpCode(200)], [Body()]);
decorateMethod(BenchController, 'cart', [Get('cart')]);

class AppModule {}
decorateClass(AppModule, [Module({ controllers: [BenchController] })]);

await serve(async () => ({ module: AppModule }));
