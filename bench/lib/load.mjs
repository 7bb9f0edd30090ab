// The load generator: wrk when it is installed (the default, see README.md), else autocannon in
// its own process (this file is the parent side of lib/load-worker.mjs).
import { URL, fileURLToPath } from 'node:url';
import { forkTracked, stopChild } from './apps.mjs';
import { startWrk, wrkVersion } from './wrk.mjs';

/** `kind`: 'wrk' | 'autocannon' | undefined (wrk when on PATH, else autocannon). */
export async function startLoadGenerator(kind) {
  if (kind === 'wrk' || (kind === undefined && wrkVersion())) {
    if (!wrkVersion()) throw new Error('--load=wrk: wrk is not on PATH (apt-get install wrk)');
    return { ...startWrk(), name: `wrk (${wrkVersion()}, 1 thread)` };
  }
  return startAutocannon();
}

async function startAutocannon() {
  const child = forkTracked(fileURLToPath(new URL('./load-worker.mjs', import.meta.url)), [], {
    execArgv: [],
  });
  await new Promise((resolve, reject) => {
    child.once('message', (msg) =>
      msg?.type === 'ready' ? resolve() : reject(new Error(String(msg))),
    );
    child.once('exit', (code) =>
      reject(new Error(`load generator exited (${code})\n${child.output}`)),
    );
  });
  let next = 0;
  const pending = new Map();
  child.on('message', (msg) => {
    const waiter = pending.get(msg?.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.type === 'result') waiter.resolve(msg.result);
    else waiter.reject(new Error(msg.error));
  });
  child.on('exit', (code) => {
    for (const waiter of pending.values())
      waiter.reject(new Error(`load generator exited (${code})`));
    pending.clear();
  });
  return {
    name: 'autocannon (Node, its own process)',
    /** Runs one autocannon measurement; see load-worker.mjs for the job fields. */
    run(job) {
      const id = ++next;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ ...job, type: 'run', id });
      });
    },
    stop: () => stopChild(child),
  };
}

/** What the load generator runs on one route of one app: `route.cookie === 'chain'` takes each response's cookie. */
export function loadJob(url, route, cookie, connections) {
  return {
    url,
    method: route.method,
    path: route.path,
    cookie,
    cookieChain: route.cookie === 'chain',
    connections,
  };
}
