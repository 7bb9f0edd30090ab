#!/usr/bin/env node
// CPU profile of one configuration under load: the app runs with `node --cpu-prof`, the load
// generator (wrk, else autocannon) drives one route, and the profile is summarised by self time —
// the library's own functions, the packages around it, GC and idle. See README.md ("Profiles").
//
//   node bench/profile.mjs --config=nss-memory --route=whoami [--seconds=10] [--baseline-dir=DIR]
//                          [--top=15] [--keep=DIR]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { configurations, routes } from './configs.mjs';
import {
  SETTLE_COUNT,
  SETTLE_INTERVAL_MS,
  collectGarbage,
  installCleanup,
  startApp,
  withCpuPerRequest,
} from './lib/apps.mjs';
import { login } from './lib/http.mjs';
import { loadJob, startLoadGenerator } from './lib/load.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    return [m[1], m[2] ?? true];
  }),
);
const config = configurations.find((c) => c.id === (args.config ?? 'nss-memory'));
const route = routes.find((r) => r.id === (args.route ?? 'whoami'));
if (!config || !route) throw new Error('unknown --config or --route');
const seconds = Number(args.seconds ?? 10);
const top = Number(args.top ?? 15);

installCleanup();
const dir = args.keep ?? mkdtempSync(join(os.tmpdir(), 'bench-prof-'));
const secret = randomBytes(32).toString('base64url');
const app = await startApp(config, {
  secret,
  execArgv: ['--expose-gc', '--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200'],
  extraEnv: args['baseline-dir'] ? { BENCH_LIB_DIR: args['baseline-dir'] } : {},
});
if (!app.available) throw new Error(`${config.id} is not available: ${app.reason}`);
const loadgen = await startLoadGenerator(args.load);
let cookie = await login(app.url).catch(() => undefined);
cookie ??= `sid=${randomBytes(48).toString('base64url')}`;
const job = loadJob(app.url, route, cookie, 50);
// Warm-up, settled as the benchmark settles (README.md, "Settling"): in the profile too (it is
// small next to the run).
await Promise.all([
  loadgen.run({ ...job, duration: 2 }),
  collectGarbage(app, { count: SETTLE_COUNT, intervalMs: SETTLE_INTERVAL_MS }),
]);
// The app's CPU time per request in the measured run (Linux: /proc), which the shares divide.
const { result, cpuUs: perRequest } = await withCpuPerRequest(app, () =>
  loadgen.run({ ...job, duration: seconds }),
);
await loadgen.stop();
await app.stop();

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error(`no profile written in ${dir}`);
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
if (!args.keep) rmSync(dir, { recursive: true, force: true });

// Self time per node = its samples × the sampling interval.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const counts = new Map();
for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
const total = profile.samples.length;
const libDir = args['baseline-dir'] ?? join(process.cwd(), 'dist');
const where = (url) => {
  if (!url) return 'v8/native';
  if (url.includes('/nestjs-sessions-baseline-') || url.startsWith(`file://${libDir}`))
    return 'nestjs-sessions';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return 'node core';
  if (url.includes('/bench/')) return 'bench app';
  return url;
};
const groups = new Map();
const fns = new Map();
const all = new Map();
let idle = 0;
let gc = 0;
for (const [id, n] of counts) {
  const node = byId.get(id);
  const { functionName, url, lineNumber } = node.callFrame;
  if (functionName === '(idle)') {
    idle += n;
    continue;
  }
  if (functionName === '(garbage collector)') gc += n;
  const group = functionName.startsWith('(') ? functionName : where(url);
  groups.set(group, (groups.get(group) ?? 0) + n);
  const anyKey = `${functionName || '(anonymous)'} [${group}]`;
  all.set(anyKey, (all.get(anyKey) ?? 0) + n);
  if (group === 'nestjs-sessions') {
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/dist\//, '')}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + n);
  }
}
const busy = total - idle;

// Inclusive: samples with a nestjs-sessions frame anywhere on the stack (the library's own code and
// everything it calls: crypto, header writes, JSON…), split by the leaf function that was running.
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const CRYPTO = new Set([
  'Hmac',
  'Hash',
  'hash',
  'digest',
  'update',
  'final',
  'createCipherBase',
  'setAuthTag',
  'getAuthTag',
  'setAAD',
  'timingSafeEqual',
  'randomFillSync',
  'createHmac',
  'createCipheriv',
  'createDecipheriv',
]);
const isLib = (node) => where(node.callFrame.url) === 'nestjs-sessions';
const underLib = new Map();
const libLeaf = new Map();
let inclusive = 0;
for (const [id, n] of counts) {
  let under = underLib.get(id);
  if (under === undefined) {
    under = false;
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at);
      // The response write itself (Node's `end`, which Express's carrier calls from its patched
      // `res.end`) is bare Nest's cost too: not counted as the library's.
      if (node.callFrame.functionName === 'end' && where(node.callFrame.url) === 'node core') break;
      if (isLib(node)) {
        under = true;
        break;
      }
    }
    underLib.set(id, under);
  }
  if (!under) continue;
  const { functionName, url } = byId.get(id).callFrame;
  // Only the library's own code and the crypto it calls: its route hook and Express's patched
  // `res.end` wrap the handler and the reply, which bare Nest runs too.
  if (where(url) !== 'nestjs-sessions' && !CRYPTO.has(functionName)) continue;
  inclusive += n;
  const key = `${functionName || '(anonymous)'} [${functionName.startsWith('(') ? functionName : where(url)}]`;
  libLeaf.set(key, (libLeaf.get(key) ?? 0) + n);
}
const pct = (n) =>
  `${((100 * n) / busy).toFixed(1)} %${perRequest === undefined ? '' : ` (${((perRequest * n) / busy).toFixed(1)} µs)`}`;
const lines = [];
lines.push(
  `${config.label} (${config.adapter}), ${route.method} ${route.path}: ${Math.round(result.rps)} req/s over ${seconds} s; ` +
    `${busy} busy samples of ${total} (idle ${((100 * idle) / total).toFixed(1)} %); shares below are of busy time` +
    (perRequest === undefined
      ? '.'
      : `, and in µs of the app's CPU time per request in the measured run (${perRequest.toFixed(1)} µs).`),
);
lines.push('', '| where (self time) | share of busy |', '| --- | ---: |');
for (const [g, n] of [...groups].sort((a, b) => b[1] - a[1]).slice(0, 12))
  lines.push(`| ${g} | ${pct(n)} |`);
const libTotal = groups.get('nestjs-sessions') ?? 0;
lines.push(
  '',
  `nestjs-sessions functions by self time (together ${pct(libTotal)}; GC ${pct(gc)}):`,
  '',
);
lines.push('| function (dist/ file:line) | share of busy |', '| --- | ---: |');
for (const [f, n] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top))
  lines.push(`| \`${f}\` | ${pct(n)} |`);
lines.push(
  '',
  `The library's own code plus the crypto it calls (HMAC, hashes, ciphers under a library frame): ${pct(inclusive)} of busy time:`,
  '',
);
lines.push('| function [where] | share of busy |', '| --- | ---: |');
for (const [f, n] of [...libLeaf].sort((a, b) => b[1] - a[1]).slice(0, top))
  lines.push(`| \`${f}\` | ${pct(n)} |`);
lines.push('', 'Top functions overall by self time:', '');
lines.push('| function [where] | share of busy |', '| --- | ---: |');
for (const [f, n] of [...all].sort((a, b) => b[1] - a[1]).slice(0, top))
  lines.push(`| \`${f}\` | ${pct(n)} |`);
console.log(lines.join('\n'));
process.exit(0);
