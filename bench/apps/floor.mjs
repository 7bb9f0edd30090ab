// The cryptographic floor: bare Nest plus only what security makes every session request do — the
// cookie checked with Node's standard crypto calls, the response marked private — and nothing
// else (no expiry, no change tracking, no events). Written as an app author would write it by
// hand, with the guard on the route. Where a session row is bounded by what security requires,
// this row shows the bound in the same run.
//   BENCH_FLOOR=verify  a signed cookie, `sid=<token>.<HMAC-SHA256 of "sid=<token>">`, compared in
//                       constant time; the token's SHA-256 keys a Map (the store). Both with the
//                       cheapest calls Node has: one-shot digests, the HMAC's key pads prepared once.
//   BENCH_FLOOR=seal    a sealed cookie: the session's JSON under AES-256-GCM (createDecipheriv),
//                       opened on every request; a write seals it again (createCipheriv).
import {
  Body,
  Controller,
  Get,
  HttpCode,
  Module,
  Post,
  Res,
  UnauthorizedException,
  UseGuards,
  createParamDecorator,
} from '@nestjs/common';
import { Buffer } from 'node:buffer';
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hash,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { env, serve, sleep } from './common.mjs';
import { decorateClass, decorateMethod } from '../lib/nest.mjs';

const mode = process.env.BENCH_FLOOR;
if (mode !== 'verify' && mode !== 'seal') throw new Error('BENCH_FLOOR must be verify or seal');
const key = Buffer.from(hkdfSync('sha256', env.secret, '', `bench floor ${mode}`, 32));
const NAME = 'sid';
const SESSION = Symbol('session');
/** verify: the "store", sessions by the SHA-256 of their token. */
const sessions = new Map();
let users = 0;

// HMAC-SHA256 (RFC 2104) of `sid=<token>`: SHA-256 of (key ⊕ opad, SHA-256 of (key ⊕ ipad, message)).
const inner = Buffer.alloc(64 + NAME.length + 1 + 43, 0x36);
const outer = Buffer.alloc(64 + 32, 0x5c);
for (let i = 0; i < key.length; i++) {
  inner[i] ^= key[i];
  outer[i] ^= key[i];
}
inner.write(`${NAME}=`, 64, 'latin1');
function mac(token) {
  inner.write(token, 64 + NAME.length + 1, 'latin1');
  // The inner digest as latin1 text (a Buffer result costs the one-shot digest about 4x).
  outer.write(hash('sha256', inner, 'latin1'), 64, 'latin1');
  return hash('sha256', outer, 'base64url');
}
// Checked once against Node's own HMAC.
const PROBE = 'A'.repeat(43);
if (mac(PROBE) !== createHmac('sha256', key).update(`${NAME}=${PROBE}`).digest('base64url'))
  throw new Error('the floor computes a wrong HMAC');
const storageKey = (token) => hash('sha256', token, 'base64url');

function seal(data) {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(data), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

function open(value) {
  const raw = Buffer.from(value, 'base64url');
  if (raw.length < 12 + 16 + 2) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return JSON.parse(
      decipher.update(raw.subarray(12, raw.length - 16), undefined, 'utf8') +
        decipher.final('utf8'),
    );
  } catch {
    return undefined;
  }
}

/** The session the request's cookie names, or undefined: the whole per-request check. */
function sessionOf(req) {
  if (SESSION in req) return req[SESSION];
  const header = req.headers.cookie ?? '';
  const at = header.indexOf(`${NAME}=`);
  let session;
  if (at !== -1) {
    const end = header.indexOf(';', at);
    const value = header.slice(at + NAME.length + 1, end === -1 ? undefined : end);
    if (mode === 'seal') session = open(value);
    else if (value.length === 87 && value[43] === '.' && /^[\w-]{43}$/.test(value.slice(0, 43))) {
      const token = value.slice(0, 43);
      const presented = Buffer.from(value.slice(44), 'latin1');
      const expected = Buffer.from(mac(token), 'latin1');
      if (timingSafeEqual(presented, expected)) session = sessions.get(storageKey(token));
    }
  }
  req[SESSION] = session;
  return session;
}

function issue(res, data) {
  let value;
  if (mode === 'seal') value = seal(data);
  else {
    const token = randomBytes(32).toString('base64url');
    sessions.set(storageKey(token), data);
    value = `${token}.${mac(token)}`;
  }
  res.header('set-cookie', `${NAME}=${value}; Path=/; HttpOnly; SameSite=Lax`);
}

/** What every response that used the session carries (shared caches must not keep it). */
function markPrivate(res) {
  res.header('vary', 'Cookie');
  res.header('cache-control', 'private, no-store');
}

class FloorGuard {
  canActivate(ctx) {
    if (!sessionOf(ctx.switchToHttp().getRequest())) throw new UnauthorizedException();
    return true;
  }
}
const CurrentSession = createParamDecorator((_data, ctx) =>
  sessionOf(ctx.switchToHttp().getRequest()),
);

class BenchController {
  plain() {
    return { ok: true };
  }
  whoami(session, res) {
    markPrivate(res);
    return { userId: session.userId, name: session.name };
  }
  counter(session, res) {
    markPrivate(res);
    const data = session ?? {};
    data.counter = (data.counter ?? 0) + 1;
    // Sealed, every change is a new cookie; signed, the Map holds it (a new session gets a cookie).
    if (mode === 'seal' || !session) issue(res, data);
    return { counter: data.counter };
  }
  login(res) {
    markPrivate(res);
    issue(res, { userId: `u${++users}`, name: 'bench' });
    return { ok: true };
  }
  async addItem(body, session, res) {
    markPrivate(res);
    const data = session ?? {};
    const cart = data.cart ?? [];
    await sleep(env.cartDelay);
    data.cart = [...cart, String(body?.item)];
    if (mode === 'seal' || !session) issue(res, data);
    return { count: data.cart.length };
  }
  cart(session) {
    return { items: session?.cart ?? [] };
  }
}
const passthrough = Res({ passthrough: true });
decorateClass(BenchController, [Controller()]);
decorateMethod(BenchController, 'plain', [Get('plain')]);
decorateMethod(
  BenchController,
  'whoami',
  [Get('whoami'), UseGuards(FloorGuard)],
  [CurrentSession(), passthrough],
);
decorateMethod(
  BenchController,
  'counter',
  [Post('counter'), HttpCode(200)],
  [CurrentSession(), passthrough],
);
decorateMethod(BenchController, 'login', [Post('login'), HttpCode(200)], [passthrough]);
decorateMethod(
  BenchController,
  'addItem',
  [Post('cart/items'), HttpCode(200)],
  [Body(), CurrentSession(), passthrough],
);
decorateMethod(BenchController, 'cart', [Get('cart')], [CurrentSession()]);

class AppModule {}
decorateClass(AppModule, [Module({ controllers: [BenchController] })]);

await serve(async () => ({ module: AppModule }));
