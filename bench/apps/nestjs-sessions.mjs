// nestjs-sessions, from the built library (dist/) through the package's own name, as a user imports it
// (or the baseline build in BENCH_LIB_DIR), on Express or Fastify (BENCH_ADAPTER).
// GET /whoami is what users write: @UseGuards(SessionGuard) on the route, @Session() for the handle.
//   BENCH_STORE    memory | redis | ioredis | postgres
//   BENCH_OPTIONS  JSON array of candidate extra module options, tried in order, e.g.
//                  [{"mode":"sealed"},{"transport":"sealed"}] or [{"concurrency":"serialize"}];
//                  a candidate the library refuses (SessionConfigError) is skipped, and when all are
//                  refused the configuration is "not available in this build".
import { Body, Controller, Get, HttpCode, Module, Post, UseGuards } from '@nestjs/common';
import { Unavailable, env, libImport, serve, sleep } from './common.mjs';
import { nestjsSessionsStore } from './stores.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

const lib = await libImport('', 'SessionModule', 'Session', 'SessionGuard');
const { SessionModule, Session, SessionGuard, SessionLock } = lib;
const candidates = JSON.parse(process.env.BENCH_OPTIONS ?? '[{}]');

let users = 0;

class BenchController {
  plain() {
    return { ok: true };
  }
  whoami(session) {
    return { userId: session.data.userId, name: session.data.name };
  }
  counter(session) {
    const counter = (session.data.counter ?? 0) + 1;
    session.data.counter = counter;
    return { counter };
  }
  async login(session) {
    await session.regenerate({ keep: false });
    session.data.userId = `u${++users}`;
    session.data.name = 'bench';
    return { ok: true };
  }
  async addItem(body, session) {
    const cart = session.data.cart ?? [];
    await sleep(env.cartDelay);
    session.data.cart = [...cart, String(body?.item)];
    return { count: session.data.cart.length };
  }
  // A function of its own: Nest keeps route metadata on the function object.
  addItemLocked(body, session) {
    return this.addItem(body, session);
  }
  cart(session) {
    return { items: session.data.cart ?? [] };
  }
}

decorateClass(BenchController, [Controller()]);
decorateMethod(BenchController, 'plain', [Get('plain')]);
decorateMethod(BenchController, 'whoami', [Get('whoami'), UseGuards(SessionGuard)], [Session()]);
decorateMethod(BenchController, 'counter', [Post('counter'), HttpCode(200)], [Session()]);
decorateMethod(BenchController, 'login', [Post('login'), HttpCode(200)], [Session()]);
decorateMethod(
  BenchController,
  'addItem',
  [Post('cart/items'), HttpCode(200)],
  [Body(), Session()],
);
decorateMethod(BenchController, 'cart', [Get('cart')], [Session()]);
if (typeof SessionLock === 'function') {
  // Per-route lock (issue 4), when this build has it.
  decorateMethod(
    BenchController,
    'addItemLocked',
    [Post('cart/items-locked'), HttpCode(200), SessionLock()],
    [Body(), Session()],
  );
}

await serve(async () => {
  const { store, close } = await nestjsSessionsStore(process.env.BENCH_STORE ?? 'memory');
  const { NestFactory } = await import('@nestjs/core');
  const refused = [];
  for (const extra of candidates) {
    const options = {
      secret: env.secret,
      ...(store ? { store } : {}),
      ...extra,
      cookie: { name: 'sid', secure: false, ...extra.cookie },
    };
    class AppModule {}
    decorateClass(AppModule, [
      Module({ imports: [SessionModule.forRoot(options)], controllers: [BenchController] }),
    ]);
    // Boot once to let the library validate the options; refused options mean "not in this build".
    // Without the store: closing the probe closes the stores its module was given.
    class ProbeModule {}
    decorateClass(ProbeModule, [
      Module({ imports: [SessionModule.forRoot({ ...options, store: undefined })] }),
    ]);
    try {
      const probe = await NestFactory.createApplicationContext(ProbeModule, {
        logger: false,
        abortOnError: false,
      });
      await probe.close();
    } catch (error) {
      if (error?.code === 'SESSION_CONFIG_INVALID') {
        // Keep it short: "unknown option 'mode'" rather than the whole list of known options.
        const why = error.message
          .replace(/^Invalid SessionModule options: /, '')
          .replace(/\. Known options:.*$/s, '');
        refused.push(`${JSON.stringify(extra)} (${why})`);
        continue;
      }
      throw error;
    }
    if (Object.keys(extra).length) process.env.BENCH_CHOSEN_OPTIONS = JSON.stringify(extra);
    return {
      module: AppModule,
      close,
      info: { options: extra, lock: typeof SessionLock === 'function' },
    };
  }
  throw new Unavailable(`the library refused ${refused.join(', ')}`);
});
