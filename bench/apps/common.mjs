// Shared bootstrap of the bench apps: one process, Express or Fastify adapter (BENCH_ADAPTER), production mode, logger off,
// listening on 127.0.0.1 on a port the OS picks (always free); the port goes to the parent over IPC.
//
// Protocol with the parent (bench/lib/apps.mjs): the child sends
//   { type: 'ready', port }            when listening
//   { type: 'unavailable', reason }    when a module this configuration needs is not in this build
//                                      (or the library refuses the configuration), then exits 0
// and it exits by itself when the parent goes away (IPC disconnect), so no orphan survives a crash.
import 'reflect-metadata';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';

process.env.NODE_ENV = 'production';
/** Sends a message to the parent; resolves once it is handed to the OS (so exiting after it is safe). */
const send = (msg) =>
  new Promise((resolve) => {
    if (process.send && process.connected) process.send(msg, () => resolve());
    else {
      console.log(JSON.stringify(msg));
      resolve();
    }
  });
// Without a parent (it crashed or was killed) there is nobody to serve: shut down cleanly (drop this
// app's keys and tables) if the app is up, else just exit.
let shutdown = () => process.exit(0);
process.on('disconnect', () => shutdown());

/** The configuration's environment, as set by the parent. */
export const env = {
  secret: required('BENCH_SECRET'),
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  prefix: process.env.BENCH_PREFIX ?? `bench:${process.pid}:`,
  /** Milliseconds the cart handler waits between reading and writing the cart (the lost-updates case). */
  cartDelay: Number(process.env.BENCH_CART_DELAY ?? 3),
  /** express | fastify: the Nest HTTP adapter. */
  adapter: process.env.BENCH_ADAPTER ?? 'express',
  /** Where the measured nestjs-sessions build is: '' = this checkout's dist/ (the package name). */
  libDir: process.env.BENCH_LIB_DIR ?? '',
};

/**
 * Imports an entry point of nestjs-sessions ('' = the main one, 'redis', 'postgres'): this
 * checkout's build through the package's own name, as a user imports it, or the baseline build in
 * BENCH_LIB_DIR (`--baseline=<rev>`).
 */
export function libImport(entry, ...names) {
  const specifier = env.libDir
    ? `${env.libDir}/dist/${entry ? `${entry}/` : ''}index.js`
    : `nestjs-sessions${entry ? `/${entry}` : ''}`;
  return optionalImport(specifier, ...names);
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the bench apps are started by bench/run.mjs)`);
  return value;
}

export class Unavailable extends Error {}

/** Imports a module; a failure means "not available in this build". */
export async function optionalImport(specifier, ...names) {
  let mod;
  try {
    mod = await import(specifier);
  } catch (error) {
    throw new Unavailable(`${specifier} cannot be imported (${error.code ?? error.message})`);
  }
  for (const name of names) {
    if (mod[name] === undefined) throw new Unavailable(`${specifier} has no export '${name}'`);
  }
  return mod;
}

export { sleep };

/**
 * The settling step of the throughput part (bench/throughput.mjs): `count` full garbage collections,
 * `intervalMs` apart, while the parent keeps the app under load; then `{ type: 'collected', id }`.
 * Needs `--expose-gc` (the parent starts apps with it). A new request stops an unfinished one.
 */
let collecting;
function collect({ id, count, intervalMs }) {
  clearInterval(collecting);
  const gc = globalThis.gc;
  if (typeof gc !== 'function') {
    void send({ type: 'collected', id, error: 'gc() is not exposed (run with --expose-gc)' });
    return;
  }
  let done = 0;
  collecting = setInterval(() => {
    gc();
    if (++done < count) return;
    clearInterval(collecting);
    void send({ type: 'collected', id, count: done });
  }, intervalMs);
}

/**
 * Boots the app: `build()` returns `{ module, setup?(app), close?() }`. A `build()` that throws
 * `Unavailable` (or an error whose `unavailable` property is true) reports the configuration as
 * unavailable instead of failing.
 */
export async function serve(build) {
  let built;
  try {
    built = await build();
    const { NestFactory } = await import('@nestjs/core');
    let adapter;
    if (env.adapter === 'fastify') {
      const { FastifyAdapter } = await optionalImport('@nestjs/platform-fastify', 'FastifyAdapter');
      adapter = new FastifyAdapter();
    }
    const options = { logger: false, abortOnError: false };
    const app = adapter
      ? await NestFactory.create(built.module, adapter, options)
      : await NestFactory.create(built.module, options);
    await built.setup?.(app);
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address();
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      // Whatever happens below, this process is gone within 5 s.
      setTimeout(() => process.exit(1), 5000).unref();
      await app.close().catch(() => {});
      await built.close?.().catch(() => {});
      process.exit(0);
    };
    shutdown = stop;
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('message', (msg) => {
      if (msg?.type === 'stop') stop();
      else if (msg?.type === 'collect') collect(msg);
    });
    await send({ type: 'ready', port, info: built.info });
  } catch (error) {
    await built?.close?.().catch(() => {});
    // The library refusing the setup (e.g. a build without Fastify support) is "not available".
    if (
      error instanceof Unavailable ||
      error?.unavailable ||
      error?.code === 'SESSION_CONFIG_INVALID'
    ) {
      await send({ type: 'unavailable', reason: error.message });
      process.exit(0);
    }
    await send({ type: 'error', reason: String(error?.stack ?? error) });
    process.exit(1);
  }
}
