// Starting and stopping the bench apps as child processes, and making sure none outlives the run.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { clearTimeout, setTimeout } from 'node:timers';
import { URL, fileURLToPath } from 'node:url';

const children = new Set();
let hooked = false;

// SIGTERM: each app then closes itself (dropping its Redis keys and tables) and exits within 5 s.
function killAll(signal = 'SIGTERM') {
  for (const child of children) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Kills every child this process started when it exits, is interrupted or crashes. */
export function installCleanup() {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => killAll());
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping ${children.size} child process(es)`);
      killAll();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (error) => {
    console.error(error);
    killAll();
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    console.error(error);
    killAll();
    process.exit(1);
  });
}

/** Forks a module with IPC and registers it for cleanup. */
export function forkTracked(file, args = [], options = {}) {
  installCleanup();
  const child = fork(file, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}

const appFile = (name) => fileURLToPath(new URL(`../apps/${name}`, import.meta.url));

/**
 * Starts a configuration's app. Resolves `{ available: true, url, port, child, info }` or
 * `{ available: false, reason }` (module missing from this build, store not reachable, option
 * refused); rejects when the app crashes for another reason.
 */
export async function startApp(
  config,
  { secret, extraEnv = {}, execArgv = [], timeoutMs = 60_000 } = {},
) {
  const child = forkTracked(appFile(config.app), [], {
    env: {
      ...process.env,
      ...config.env,
      ...extraEnv,
      NODE_ENV: 'production',
      BENCH_SECRET: secret,
    },
    execArgv,
  });
  const message = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${config.id}: no answer within ${timeoutMs} ms\n${child.output}`));
    }, timeoutMs);
    child.on('message', (msg) => {
      clearTimeout(timer);
      resolve(msg);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`${config.id}: exited (${signal ?? code}) before it was ready\n${child.output}`),
      );
    });
  });
  if (message.type === 'ready') {
    return {
      available: true,
      port: message.port,
      url: `http://127.0.0.1:${message.port}`,
      info: message.info ?? {},
      child,
      stop: () => stopChild(child),
    };
  }
  await onceExit(child, 5000);
  if (message.type === 'unavailable') return { available: false, reason: message.reason };
  throw new Error(`${config.id}: failed to start\n${message.reason}\n${child.output}`);
}

/** The settling step's defaults (README.md, "Settling"): full collections, and the time between them. */
export const SETTLE_COUNT = 10;
export const SETTLE_INTERVAL_MS = 100;

let collectRequests = 0;

/**
 * Has a running app make `count` full garbage collections, `intervalMs` apart (apps/common.mjs;
 * the app must run with --expose-gc). Resolves when it is done; rejects when the app cannot
 * (no gc, no answer in time, it exited).
 */
export function collectGarbage(app, { count, intervalMs }) {
  const { child } = app;
  const id = ++collectRequests;
  const timeoutMs = count * intervalMs + 10_000;
  return new Promise((resolve, reject) => {
    if (!child.connected) return reject(new Error('the app is not running'));
    const done = (error) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(
      () => done(new Error(`no answer to the collect request within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (msg) => {
      if (msg?.type !== 'collected' || msg.id !== id) return;
      done(msg.error ? new Error(msg.error) : undefined);
    };
    const onExit = (code, signal) => done(new Error(`the app exited (${signal ?? code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send({ type: 'collect', id, count, intervalMs }, (error) => error && done(error));
  });
}

function onceExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Asks a child to shut down cleanly (close clients, drop its data), then kills it after 5 s. */
export async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.send({ type: 'stop' });
  else child.kill('SIGTERM');
  await onceExit(child, 5000);
}

/** USER_HZ: the unit /proc/<pid>/stat counts CPU time in (100 on every Linux build in use). */
const TICKS_PER_SECOND = 100;

/**
 * A running app's user + system CPU time so far, in µs (Linux: /proc/<pid>/stat, 10 ms steps), or
 * undefined where there is no /proc. What the app itself spent (other processes' time slices are
 * not in it).
 */
function cpuTime(app) {
  try {
    // The fields after the command name, which is in parentheses and may hold spaces.
    const stat = readFileSync(`/proc/${app.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/**
 * Runs a load (`run` resolves the load generator's result) and measures the app's own CPU per
 * answered request meanwhile: `{ result, cpuUs }`, `cpuUs` undefined where it cannot be told
 * (no /proc, no request answered).
 */
export async function withCpuPerRequest(app, run) {
  const before = cpuTime(app);
  const result = await run();
  const after = cpuTime(app);
  const cpuUs =
    before === undefined || after === undefined || !result.total
      ? undefined
      : (after - before) / result.total;
  return { result, cpuUs };
}
