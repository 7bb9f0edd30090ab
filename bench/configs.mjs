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
 * @property {'express'|'fastify'} adapter  the Nest HTTP adapter (ratios are to bare on the same one)
 * @property {boolean} [baseline]   the upper limit every ratio on its adapter is taken against (bare Nest)
 * @property {boolean} [control]    bare Nest plus Nest machinery (no-op guard, custom param decorator)
 * @property {string} [floor]       verify | sealed: bare Nest plus only the cryptography a session must
 *                                  do per request (apps/floor.mjs), the bound of the rows of that kind
 * @property {boolean} [reference]  the second ratio column on its adapter (express-session MemoryStore, @fastify/session)
 * @property {string} [store]       redis | postgres: the backend it needs (round-trip counting)
 * @property {boolean} [stateless]  the session lives in the cookie (an old cookie stays valid)
 * @property {string} [family]      nss: a nestjs-sessions configuration (gets a baseline twin with --baseline)
 * @property {string} [kind]        memory | redis | ioredis | postgres | sealed (nestjs-sessions)
 * @property {string} [libRev]      the revision a baseline twin was built from
 */

const nss = (adapter, prefix, kind) => ({
  id: `${prefix}nss-${kind}`,
  label: `nestjs-sessions · ${{ memory: 'memory', redis: 'Redis', ioredis: 'Redis (ioredis)', postgres: 'PostgreSQL', sealed: 'sealed cookie' }[kind]}`,
  app: 'nestjs-sessions.mjs',
  adapter,
  family: 'nss',
  kind,
  env: {
    BENCH_ADAPTER: adapter,
    BENCH_STORE: kind === 'sealed' ? 'memory' : kind,
    ...(kind === 'sealed' ? { BENCH_OPTIONS: JSON.stringify(SEALED_OPTIONS) } : {}),
  },
  ...(kind === 'redis' || kind === 'ioredis' ? { store: 'redis' } : {}),
  ...(kind === 'postgres' ? { store: kind } : {}),
  ...(kind === 'sealed' ? { stateless: true } : {}),
});

const KINDS = ['memory', 'redis', 'ioredis', 'postgres', 'sealed'];

/**
 * Sealed mode decrypting every cookie (`sealCache: 0`): the cost of a cookie this process has not
 * seen, as the first request after a write that another instance served. No baseline twin (a build
 * without the option decrypts every cookie anyway; the sealed twin measures it).
 */
const sealedCold = (adapter, prefix) => ({
  ...nss(adapter, prefix, 'sealed'),
  id: `${prefix}nss-sealed-cold`,
  label: 'nestjs-sessions · sealed cookie, sealCache: 0 (every cookie decrypted)',
  family: undefined,
  env: {
    BENCH_ADAPTER: adapter,
    BENCH_STORE: 'memory',
    BENCH_OPTIONS: JSON.stringify(SEALED_OPTIONS.map((o) => ({ ...o, sealCache: 0 }))),
  },
});

/** The cryptographic floor of signed (store) and sealed cookies on an adapter (apps/floor.mjs). */
const floor = (adapter, prefix, kind) => ({
  id: `${prefix}floor-${kind}`,
  label: `floor: bare Nest + ${kind === 'verify' ? 'signed-cookie check (HMAC, SHA-256)' : 'sealed-cookie open (AES-GCM)'}`,
  app: 'floor.mjs',
  adapter,
  env: { BENCH_ADAPTER: adapter, BENCH_FLOOR: kind === 'verify' ? 'verify' : 'seal' },
  floor: kind,
  // No revocation: a cookie issued before a login stays valid, as with any stateless cookie.
  stateless: true,
});
const FLOORS = ['verify', 'sealed'];

/** @type {Configuration[]} */
export const configurations = [
  // Express 5
  {
    id: 'bare',
    label: 'bare Nest (no sessions)',
    app: 'bare.mjs',
    adapter: 'express',
    env: { BENCH_ADAPTER: 'express' },
    baseline: true,
  },
  {
    id: 'bare-guard',
    label: 'bare Nest + no-op guard + param decorator',
    app: 'bare.mjs',
    adapter: 'express',
    env: { BENCH_ADAPTER: 'express', BENCH_MACHINERY: '1' },
    control: true,
  },
  ...FLOORS.map((k) => floor('express', '', k)),
  ...KINDS.map((k) => nss('express', '', k)),
  sealedCold('express', ''),
  {
    id: 'es-memory',
    label: 'express-session · MemoryStore',
    app: 'express-session.mjs',
    adapter: 'express',
    env: { BENCH_ADAPTER: 'express', BENCH_STORE: 'memory' },
    reference: true,
  },
  {
    id: 'es-redis',
    label: 'express-session · connect-redis',
    app: 'express-session.mjs',
    adapter: 'express',
    env: { BENCH_ADAPTER: 'express', BENCH_STORE: 'redis' },
    store: 'redis',
  },
  {
    id: 'iron',
    label: 'iron-session',
    app: 'iron-session.mjs',
    adapter: 'express',
    env: { BENCH_ADAPTER: 'express' },
    stateless: true,
  },
  // Fastify 5
  {
    id: 'f-bare',
    label: 'bare Nest (no sessions)',
    app: 'bare.mjs',
    adapter: 'fastify',
    env: { BENCH_ADAPTER: 'fastify' },
    baseline: true,
  },
  {
    id: 'f-bare-guard',
    label: 'bare Nest + no-op guard + param decorator',
    app: 'bare.mjs',
    adapter: 'fastify',
    env: { BENCH_ADAPTER: 'fastify', BENCH_MACHINERY: '1' },
    control: true,
  },
  ...FLOORS.map((k) => floor('fastify', 'f-', k)),
  ...KINDS.map((k) => nss('fastify', 'f-', k)),
  sealedCold('fastify', 'f-'),
  {
    id: 'fs-memory',
    label: '@fastify/session · MemoryStore',
    app: 'fastify-session.mjs',
    adapter: 'fastify',
    env: { BENCH_ADAPTER: 'fastify', BENCH_STORE: 'memory' },
    reference: true,
  },
  {
    id: 'fs-redis',
    label: '@fastify/session · connect-redis',
    app: 'fastify-session.mjs',
    adapter: 'fastify',
    env: { BENCH_ADAPTER: 'fastify', BENCH_STORE: 'redis' },
    store: 'redis',
  },
  {
    id: 'f-secure',
    label: '@fastify/secure-session',
    app: 'secure-session.mjs',
    adapter: 'fastify',
    env: { BENCH_ADAPTER: 'fastify' },
    stateless: true,
  },
];

export const ADAPTERS = [
  { id: 'express', label: 'Express 5', bare: 'bare', reference: 'es-memory', prefix: '' },
  { id: 'fastify', label: 'Fastify 5', bare: 'f-bare', reference: 'fs-memory', prefix: 'f-' },
];

/**
 * The baseline twin of a nestjs-sessions configuration (`--baseline=<rev>`): the same app and
 * options, the library built from `rev` in `libDir`. Its id is the current one's plus `@base`.
 */
export function baselineTwin(config, rev, libDir) {
  return {
    ...config,
    id: `${config.id}@base`,
    label: `${config.label} (baseline ${rev})`,
    env: { ...config.env, BENCH_LIB_DIR: libDir },
    libRev: rev,
    twinOf: config.id,
  };
}

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
