// Type tests for `req.session` (checked by `npm run typecheck`, never run). A program of its own:
// the main one also holds @types/express-session, which declares `req.session` differently.
import type { Request } from 'express';
import type { FastifyRequest } from 'fastify';
import type { RequestSession, Session } from 'nestjs-sessions';
import 'nestjs-sessions/express';
import 'nestjs-sessions/fastify';

declare module 'nestjs-sessions' {
  interface SessionData {
    userId: string;
    cart: string[];
  }
}

type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assert = <T extends true>(): T => true as T;

export async function express(req: Request): Promise<void> {
  await req.session.load();
  assert<Equals<typeof req.session.data.cart, string[] | undefined>>();
  assert<Equals<typeof req.session.userId, string | undefined>>();
  req.session.data.cart = ['apple'];
  req.session.set('userId', '1');
  // @ts-expect-error: not a declared key's type
  req.session.data.userId = 1;
  req.session.save((err) => void err);
  await req.session.regenerate({ keep: ['cart'] });
  const handle: Session<{ userId: string; cart: string[] }> = req.session;
  void handle;
}

export async function fastify(request: FastifyRequest): Promise<void> {
  assert<Equals<typeof request.session, RequestSession>>();
  await request.session.destroy();
  request.session.regenerate((err) => void err);
}
