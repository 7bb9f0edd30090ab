/**
 * The shape of your session data, for `req.session` (like express-session's `SessionData`).
 * Declare your keys once, by merging into this interface:
 *
 * @example
 * // src/types/session.d.ts (or any file of your app)
 * import 'nestjs-sessions/express'; // or 'nestjs-sessions/fastify': types `req.session`
 *
 * declare module 'nestjs-sessions' {
 *   interface SessionData {
 *     userId: string;
 *     cart: string[];
 *   }
 * }
 *
 * // then, in a guard or a middleware:
 * req.session.data.cart?.push('apple'); // string[] | undefined
 *
 * Left empty, `req.session.data` is a `Record<string, unknown>`. `@Session()` handles are typed by
 * their own parameter (`Session<MyData>`) and do not depend on it.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SessionData {}
