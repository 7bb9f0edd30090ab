// Decorators for plain-JavaScript Nest classes: what TypeScript's emitted `__decorate` / `__param`
// helpers do, so the bench apps need no TypeScript loader and run against the built library.
import 'reflect-metadata';

/** Applies class decorators (first listed = outermost, as in TypeScript source order). */
export function decorateClass(cls, decorators) {
  const result = Reflect.decorate(decorators, cls);
  if (result !== cls) throw new Error(`class decorator replaced ${cls.name}`);
  return cls;
}

/**
 * Applies method decorators and parameter decorators to `cls.prototype[method]`.
 * `params[i]` is the decorator (or list of decorators) of parameter `i`.
 */
export function decorateMethod(cls, method, decorators = [], params = []) {
  const proto = cls.prototype;
  const all = [...decorators];
  params.forEach((param, index) => {
    for (const d of [param].flat().filter(Boolean)) all.push((t, k) => d(t, k, index));
  });
  const descriptor = Object.getOwnPropertyDescriptor(proto, method);
  const result = Reflect.decorate(all, proto, method, descriptor);
  if (result) Object.defineProperty(proto, method, result);
}
