#!/usr/bin/env node
// The benchmark: `npm run bench` (full) or `npm run bench -- --quick` (a few seconds per cell, one
// round: checks the harness, not the library). See bench/README.md.
import { execFileSync, execSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { URL, fileURLToPath } from 'node:url';
import { ADAPTERS, baselineTwin, configurations, routes } from './configs.mjs';
import { SETTLE_COUNT, forkTracked, installCleanup } from './lib/apps.mjs';
import { checkTargets } from './lib/targets.mjs';
import { describeMachine, machineMarkdown } from './lib/machine.mjs';
import { markdownTable, textTable } from './lib/stats.mjs';
import { barChartSvg, stackSvgs } from './lib/svg.mjs';
import { lostUpdatesMarkdown, lostUpdatesText, measureLostUpdates } from './lost-updates.mjs';
import { memoryMarkdown, memoryText } from './memory.mjs';
import { measureRoundTrips, roundTripsMarkdown, roundTripsText } from './roundtrips.mjs';
import {
  beforeAfterMarkdown,
  measureThroughput,
  summarize,
  throughputMarkdown,
  throughputText,
} from './throughput.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const root = here('..');

const HELP = `Usage: npm run bench -- [options]
  --quick               1 round, 1 s warm-up + 3 s per cell, fewer repeats (validates the harness)
  --rounds=N            rounds of interleaved measurements (default 8)
  --duration=S          measured seconds per cell (default 3)
  --warmup=S            discarded warm-up seconds per cell (default 1)
  --settle=N            before round 1, N full garbage collections in every app under load on
                        every route, so each is measured in the state a long-running server
                        reaches (default ${SETTLE_COUNT}; 0: none; see README.md, "Settling")
  --connections=N       concurrent connections of the load generator (default 50)
  --only=ID,…           configurations (bare Nest of each adapter used is always included): ${configurations.map((c) => c.id).join(', ')}
  --adapters=A,…        express, fastify (default both)
  --baseline=REV        also measure nestjs-sessions built from git revision REV (a temp dir, same
                        node_modules), as "(baseline REV)" twins interleaved with the current build
  --load=NAME           wrk | autocannon (default: wrk when it is on PATH, else autocannon)
  --routes=ID,…         routes: ${routes.map((r) => r.id).join(', ')}
  --parts=NAME,…        throughput, roundtrips, memory, lost (default all)
  --no-build            use dist/ as it is instead of running npm run build first
  --out=DIR             where RESULTS.md, results.svg and results/results.json go (default bench/)`;

function parseArgs(argv) {
  const args = {};
  for (const a of argv) {
    if (a === '--help' || a === '-h') {
      console.log(HELP);
      process.exit(0);
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}\n${HELP}`);
    args[m[1]] = m[2] ?? true;
  }
  const known = [
    'quick',
    'rounds',
    'duration',
    'warmup',
    'settle',
    'connections',
    'only',
    'routes',
    'parts',
    'no-build',
    'out',
    'adapters',
    'baseline',
    'load',
  ];
  for (const k of Object.keys(args))
    if (!known.includes(k)) throw new Error(`unknown option --${k}\n${HELP}`);
  const quick = !!args.quick;
  const num = (name, full, fast) => {
    const v = args[name] === undefined ? (quick ? fast : full) : Number(args[name]);
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} must be a number`);
    return v;
  };
  const list = (name) =>
    typeof args[name] === 'string'
      ? args[name]
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined;
  const only = list('only');
  for (const id of only ?? [])
    if (!configurations.some((c) => c.id === id)) throw new Error(`unknown configuration '${id}'`);
  const adapters = list('adapters') ?? ADAPTERS.map((a) => a.id);
  for (const id of adapters)
    if (!ADAPTERS.some((a) => a.id === id)) throw new Error(`unknown adapter '${id}'`);
  const load = typeof args.load === 'string' ? args.load : undefined;
  if (load && !['wrk', 'autocannon'].includes(load))
    throw new Error(`unknown load generator '${load}'`);
  const routeIds = list('routes');
  for (const id of routeIds ?? [])
    if (!routes.some((r) => r.id === id)) throw new Error(`unknown route '${id}'`);
  const parts = list('parts') ?? ['throughput', 'roundtrips', 'memory', 'lost'];
  for (const p of parts)
    if (!['throughput', 'roundtrips', 'memory', 'lost'].includes(p))
      throw new Error(`unknown part '${p}'`);
  return {
    quick,
    rounds: Math.max(1, num('rounds', 8, 1)),
    duration: Math.max(1, num('duration', 3, 3)),
    warmup: num('warmup', 1, 1),
    settle: Math.round(num('settle', SETTLE_COUNT, SETTLE_COUNT)),
    connections: Math.max(1, num('connections', 50, 50)),
    roundTripRequests: quick ? 5 : 20,
    memoryLookups: quick ? 50_000 : 200_000,
    lostRepeats: quick ? 1 : 3,
    only,
    adapters,
    baseline: typeof args.baseline === 'string' ? args.baseline : undefined,
    load,
    routeIds,
    parts,
    build: !args['no-build'],
    out: typeof args.out === 'string' ? args.out : here('.'),
  };
}

function build(opts) {
  if (!opts.build) {
    if (!existsSync(`${root}/dist/index.js`))
      throw new Error('dist/index.js is missing: run without --no-build');
    console.log('Using dist/ as it is (--no-build).');
    return 'dist/ used as found (--no-build)';
  }
  console.log('Building the library (npm run build)…');
  try {
    execFileSync('npm', ['run', '--silent', 'build'], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    return 'built by this run';
  } catch {
    if (!existsSync(`${root}/dist/index.js`))
      throw new Error('npm run build failed and there is no dist/');
    console.warn('!! npm run build failed; measuring the dist/ that is already there.');
    return 'npm run build FAILED; dist/ as found was measured';
  }
}

/**
 * Builds the library at `rev` into a temp dir: `git archive` of that revision, this checkout's
 * node_modules linked in, `npm run build` there. Nothing is committed; the dir goes away on exit.
 */
function buildBaseline(rev) {
  const sha = execFileSync('git', ['rev-parse', '--short', `${rev}^{commit}`], {
    cwd: root,
    encoding: 'utf8',
  }).trim();
  const dir = join(os.tmpdir(), `nestjs-sessions-baseline-${sha}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  console.log(`Building the baseline ${sha} in a temp dir (git archive + npm run build)…`);
  execSync(`git archive --format=tar ${sha} | tar -x -C '${dir}'`, { cwd: root, stdio: 'inherit' });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  execFileSync('npm', ['run', '--silent', 'build'], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return { sha, dir };
}

/** The configurations of this run: selected ones, bare per adapter, baseline twins next to theirs. */
function selectConfigurations(opts, baseline) {
  const list = [];
  for (const c of configurations) {
    if (!opts.adapters.includes(c.adapter)) continue;
    const usedAdapter =
      !opts.only || configurations.some((x) => x.adapter === c.adapter && opts.only.includes(x.id));
    if (!(c.baseline && usedAdapter) && opts.only && !opts.only.includes(c.id)) continue;
    list.push(c);
    if (baseline && c.family === 'nss') list.push(baselineTwin(c, baseline.sha, baseline.dir));
  }
  return list;
}

function runMemoryPart(opts) {
  // Its own process: --expose-gc, and a heap no other part has touched.
  const child = forkTracked(here('./memory.mjs'), [], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, BENCH_MEMORY_LOOKUPS: String(opts.memoryLookups) },
  });
  return new Promise((resolve, reject) => {
    child.on('message', (msg) => msg?.type === 'result' && resolve(msg.data));
    child.once('exit', (code) =>
      code ? reject(new Error(`memory part exited ${code}\n${child.output}`)) : null,
    );
  });
}

function chart(data, quick) {
  const summary = summarize(data);
  const panels = ADAPTERS.map((adapter) => {
    const series = data.configs.filter(
      (c) => c.adapter === adapter.id && summary.some((r) => r.config === c.id && !r.missing),
    );
    if (!series.length) return undefined;
    return barChartSvg({
      title: `${adapter.label}: throughput relative to bare Nest on ${adapter.label} (median of ${data.settings.rounds} round(s))${quick ? ' — QUICK RUN' : ''}`,
      groups: data.routes,
      series,
      value: (route, config) =>
        summary.find((r) => r.route === route && r.config === config)?.vsBare,
      note: `${os.cpus()[0]?.model?.trim()}, ${os.cpus().length} cores, Node ${process.version}, ${data.settings.load ?? 'autocannon'}, ${new Date().toISOString().slice(0, 10)}; dashed line = bare Nest`,
    });
  }).filter(Boolean);
  return stackSvgs(panels);
}

async function main() {
  installCleanup();
  const opts = parseArgs(process.argv.slice(2));
  let buildNote = build(opts);
  const baseline = opts.baseline ? buildBaseline(opts.baseline) : undefined;
  if (baseline) buildNote += `; baseline ${baseline.sha} built from git in a temp dir`;
  const machine = describeMachine();
  const secret = randomBytes(32).toString('base64url');
  const results = { machine, build: buildNote, quick: opts.quick };
  const t0 = Date.now();
  console.log(
    `\n${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, load ${machine.loadAverage.join(' ')}`,
  );

  if (opts.parts.includes('throughput')) {
    console.log('\n== Throughput and latency ==');
    results.throughput = await measureThroughput({
      ...opts,
      configs: selectConfigurations(opts, baseline),
      secret,
    });
    console.log(`\n${throughputText(results.throughput)}`);
    // Kept at once, so a failure in a later part does not lose the long part.
    mkdirSync(`${opts.out}/results`, { recursive: true });
    writeFileSync(`${opts.out}/results/results.json`, JSON.stringify(results, null, 2) + '\n');
  }
  if (opts.parts.includes('roundtrips')) {
    console.log('\n== Store round trips per request ==');
    results.roundTrips = await measureRoundTrips({
      secret,
      requests: opts.roundTripRequests,
      only: opts.only,
    });
    console.log(`\n${roundTripsText(results.roundTrips)}`);
  }
  if (opts.parts.includes('memory')) {
    console.log('\n== Memory store: bytes per session, lookup time ==');
    results.memory = await runMemoryPart(opts);
    console.log(`\n${memoryText(results.memory)}`);
  }
  if (opts.parts.includes('lost')) {
    console.log('\n== Lost updates: 50 concurrent cart adds on one session ==');
    results.lostUpdates = await measureLostUpdates({
      secret,
      repeats: opts.lostRepeats,
      only: opts.only,
    });
    console.log(`\n${lostUpdatesText(results.lostUpdates)}`);
  }
  results.loadAfter = os.loadavg();
  results.minutes = (Date.now() - t0) / 60_000;

  const targets = checkTargets(results);
  const targetsTable = markdownTable(
    ['target', 'measured', 'status'],
    targets.map((t) => [t.target, t.measured, t.status]),
  );
  console.log(
    `\n== DESIGN.md targets ==\n${textTable(
      ['target', 'measured', 'status'],
      targets.map((t) => [t.target, t.measured, t.status]),
    )}`,
  );

  const cmd = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const md = [
    '# Benchmark results',
    '',
    opts.quick
      ? '> **Quick run** (`--quick`): one short round per cell, to check the harness. These numbers are not the benchmark; run `npm run bench` on an otherwise idle machine for those.\n'
      : '',
    `Generated by \`${cmd}\` in ${results.minutes.toFixed(1)} min (${buildNote}). Raw data: \`results/results.json\`. How to read it: \`README.md\`.`,
    '',
    '## Machine',
    '',
    machineMarkdown(machine, results.loadAfter),
    '',
    '## DESIGN.md targets',
    '',
    targetsTable,
    '',
    '## Throughput and latency',
    '',
    results.throughput
      ? `![Throughput relative to bare Nest](results.svg)\n\n${throughputMarkdown(results.throughput)}`
      : '_Not measured in this run._',
    '',
    ...(baseline && results.throughput
      ? ['## Before and after', '', beforeAfterMarkdown(results.throughput), '']
      : []),
    '## Store round trips per request',
    '',
    results.roundTrips ? roundTripsMarkdown(results.roundTrips) : '_Not measured in this run._',
    '',
    '## Memory store: bytes per session and lookup time',
    '',
    results.memory ? memoryMarkdown(results.memory) : '_Not measured in this run._',
    '',
    '## Lost updates: 50 concurrent cart adds on one session',
    '',
    results.lostUpdates ? lostUpdatesMarkdown(results.lostUpdates) : '_Not measured in this run._',
    '',
  ].join('\n');
  // Raw data under results/ (ignored by Prettier: it is generated).
  mkdirSync(`${opts.out}/results`, { recursive: true });
  writeFileSync(`${opts.out}/RESULTS.md`, md);
  writeFileSync(`${opts.out}/results/results.json`, JSON.stringify(results, null, 2) + '\n');
  if (results.throughput)
    writeFileSync(`${opts.out}/results.svg`, chart(results.throughput, opts.quick));
  // A full run into bench/ also refreshes the README's benchmark section.
  if (!opts.quick && opts.out === here('.') && results.throughput) {
    updateReadme(
      [
        `Measured by \`${cmd}\` on ${machine.cpu ?? 'this machine'} (${machine.cores ?? '?'} cores, Node ${process.version}), ${new Date().toISOString().slice(0, 10)}; full tables in [bench/RESULTS.md](https://github.com/nestjs-sessions/nestjs-sessions/blob/main/bench/RESULTS.md).`,
        '',
        // Absolute: the README is also shown on the npm registry, where relative links do not resolve.
        '![Throughput relative to bare Nest](https://raw.githubusercontent.com/nestjs-sessions/nestjs-sessions/main/bench/results.svg)',
        '',
        targetsTable,
        '',
        ...(baseline
          ? ['Before and after, same rounds:', '', beforeAfterMarkdown(results.throughput), '']
          : []),
        throughputMarkdown(results.throughput),
      ].join('\n'),
    );
  }
  console.log(
    `\nWrote ${opts.out}/RESULTS.md, results/results.json${results.throughput ? ', results.svg' : ''} (${results.minutes.toFixed(1)} min).`,
  );
  process.exit(0);
}

/** Replaces the README's text between the bench markers. */
function updateReadme(section) {
  const file = `${root}/README.md`;
  const start = '<!-- bench:results:start -->';
  const end = '<!-- bench:results:end -->';
  const readme = readFileSync(file, 'utf8');
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from === -1 || to < from) return console.warn('README.md has no bench markers; not updated.');
  writeFileSync(file, `${readme.slice(0, from + start.length)}\n${section}\n${readme.slice(to)}`);
  console.log('Updated the benchmark section of README.md.');
}

main().catch((error) => {
  console.error(error?.stack ?? error);
  process.exit(1);
});
