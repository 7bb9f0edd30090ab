// The configurations and routes the benchmark compares. To add a configuration, add an entry here
// (and an app under apps/ if it is a new library): see README.md.

/**
 * Candidate module options for the sealed (stateless cookie) mode, tried in order until the library
 * accepts one. The first build that has the mode decides the name; keep the real one first.
 */
export const SEALED_OPTIONS = [
  { mode: 'sealed' },
  { transport: 'sealed' },
  { cookie: { sealed: true } },
];

/**
 * @typedef {object} Configuration
 * @property {string} id        short, stable id (used by --only and in RESULTS.md)
 * @property {string} label     what the table shows
 * @property {string} app       file under bench/apps/
 * @property {Record<string,string>} env  environment of the app process
 * @property {boolean} [baseline]   the upper limit every ratio is taken against (bare Nest)
 * @property {boolean} [reference]  the second ratio column (express-session, MemoryStore)
 * @property {string} [store]       redis | postgres: the backend it needs (round-trip counting)
 * @property {boolean} [stateless]  the session lives in the cookie (an old cookie stays valid)
 */

/** @type {Configuration[]} */
export const configurations = [
  { id: 'bare', label: 'bare Nest (no sessions)', app: 'bare.mjs', env: {}, baseline: true },
  {
    id: 'nss-memory',
    label: 'nestjs-sessions · memory',
    app: 'nestjs-sessions.mjs',
    env: { BENCH_STORE: 'memory' },
  },
  {
    id: 'nss-redis',
    label: 'nestjs-sessions · Redis',
    app: 'nestjs-sessions.mjs',
    env: { BENCH_STORE: 'redis' },
    store: 'redis',
  },
  {
    id: 'nss-postgres',
    label: 'nestjs-sessions · PostgreSQL',
    app: 'nestjs-sessions.mjs',
    env: { BENCH_STORE: 'postgres' },
    store: 'postgres',
  },
  {
    id: 'nss-sealed',
    label: 'nestjs-sessions · sealed cookie',
    app: 'nestjs-sessions.mjs',
    env: { BENCH_STORE: 'memory', BENCH_OPTIONS: JSON.stringify(SEALED_OPTIONS) },
    stateless: true,
  },
  {
    id: 'es-memory',
    label: 'express-session · MemoryStore',
    app: 'express-session.mjs',
    env: { BENCH_STORE: 'memory' },
    reference: true,
  },
  {
    id: 'es-redis',
    label: 'express-session · connect-redis',
    app: 'express-session.mjs',
    env: { BENCH_STORE: 'redis' },
    store: 'redis',
  },
  { id: 'iron', label: 'iron-session', app: 'iron-session.mjs', env: {}, stateless: true },
];

/**
 * The routes measured, identical in every app. `cookie`: 'login' sends the cookie of one login
 * made before the cell; 'chain' sends, on every request, a live cookie returned by an earlier
 * response of the same run (browser-like repeated logins).
 */
export const routes = [
  {
    id: 'plain',
    label: 'GET /plain (no session use)',
    method: 'GET',
    path: '/plain',
    cookie: 'login',
  },
  {
    id: 'whoami',
    label: 'GET /whoami (session read)',
    method: 'GET',
    path: '/whoami',
    cookie: 'login',
  },
  {
    id: 'counter',
    label: 'POST /counter (session write)',
    method: 'POST',
    path: '/counter',
    cookie: 'login',
  },
  {
    id: 'login',
    label: 'POST /login (regenerate + write)',
    method: 'POST',
    path: '/login',
    cookie: 'chain',
  },
];

/** Concurrency modes of nestjs-sessions tried by the lost-updates case (issue 4). */
export const CONCURRENCY_MODES = ['merge', 'serialize', 'optimistic'];
