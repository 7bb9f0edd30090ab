import type { Type } from '@nestjs/common';
import { SessionGuard } from './session.guard.js';
import { guardsOf } from './session.metadata.js';

/**
 * What the commit hooks of routes (session.routes.ts), resolvers (session.resolvers.ts) and
 * gateway handlers (session.gateways.ts) share: finding the methods of a class, and replacing one
 * by a hooked version that takes one hidden argument more, which Nest fills in.
 */

export type Handler = (...args: unknown[]) => unknown;

/** Whether `SessionGuard` (or a subclass) guards a method or a class through `@UseGuards()`. */
export function guardedBySession(target: object): boolean {
  return guardsOf(target).some(
    (guard) =>
      guard instanceof SessionGuard ||
      (typeof guard === 'function' &&
        (guard === SessionGuard || guard.prototype instanceof SessionGuard)),
  );
}

/** Every method of a class with the prototype it is defined on, inherited ones included (as Nest's own scan). */
export function* methodsOf(type: Type): Generator<[object, string, Handler]> {
  const seen = new Set<string>();
  for (
    let prototype = type.prototype as object | null;
    prototype && prototype !== Object.prototype;
    prototype = Object.getPrototypeOf(prototype) as object | null
  ) {
    for (const name of Object.getOwnPropertyNames(prototype)) {
      if (name === 'constructor' || seen.has(name)) continue;
      seen.add(name);
      const value = Object.getOwnPropertyDescriptor(prototype, name)?.value as unknown;
      if (typeof value === 'function') yield [prototype, name, value as Handler];
    }
  }
}

/**
 * Replaces `owner[name]` (`original`) by `hooked(self, params, value)`, called with the method's
 * own parameters and the value Nest resolved for `hidden`, a parameter decorator put on the hidden
 * parameter at index `at`. The hooked method keeps the original's metadata and name, and `marker`
 * names the original on it.
 */
export function replaceMethod(
  owner: object,
  name: string,
  original: Handler,
  at: number,
  marker: symbol,
  hidden: ParameterDecorator,
  hooked: (self: unknown, params: unknown[], value: unknown) => unknown,
): void {
  const replacement = function (this: unknown, ...params: unknown[]): unknown {
    // Called by Nest, the hidden argument is there; called directly (a unit test), it is not.
    if (params.length <= at) return original.apply(this, params);
    const value = params[at];
    params.length = at;
    return hooked(this, params, value);
  };
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), replacement);
  }
  Object.defineProperty(replacement, 'name', { value: original.name });
  Object.defineProperty(replacement, marker, { value: original });
  Object.defineProperty(owner, name, {
    ...Object.getOwnPropertyDescriptor(owner, name),
    value: replacement,
  });
  hidden(owner, name, at);
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
