// Throughput and latency: every configuration on every route, interleaved over rounds.
import { randomBytes } from 'node:crypto';
import { ADAPTERS, routes } from './configs.mjs';
import { SETTLE_INTERVAL_MS, collectGarbage, startApp, withCpuPerRequest } from './lib/apps.mjs';
import { login, request, sessionCookie } from './lib/http.mjs';
import { loadJob, startLoadGenerator } from './lib/load.mjs';
import { fmt, markdownTable, median, ratio, textTable } from './lib/stats.mjs';

/** Checks that a route does what it should before it is measured; returns an error text or undefined. */
async function sanity(base, route, cookie, config) {
  const url = `${base}${route.path}`;
  if (route.id === 'plain') {
    const r = await request(url, { cookie });
    return r.status === 200 && r.json?.ok === true ? undefined : `GET /plain answered ${r.status}`;
  }
  if (route.id === 'whoami') {
    const r = await request(url, { cookie });
    if (r.status !== 200 || typeof r.json?.userId !== 'string')
      return `GET /whoami answered ${r.status} ${r.body.slice(0, 80)}`;
    if (!config.baseline && !config.control) {
      const anon = await request(url);
      if (anon.status !== 401)
        return `GET /whoami without a cookie answered ${anon.status}, not 401`;
    }
    return undefined;
  }
  if (route.id === 'counter') {
    let jar = cookie;
    const a = await request(url, { method: 'POST', cookie: jar });
    jar = sessionCookie(a.headers) ?? jar;
    const b = await request(url, { method: 'POST', cookie: jar });
    if (a.status !== 200 || b.status !== 200)
      return `POST /counter answered ${a.status}/${b.status}`;
    return b.json?.counter === a.json?.counter + 1
      ? undefined
      : `the counter did not persist (${a.body} then ${b.body})`;
  }
  if (route.id === 'login') {
    const r = await request(url, { method: 'POST', cookie });
    if (r.status !== 200) return `POST /login answered ${r.status}`;
    if (!config.baseline && !config.control) {
      const next = sessionCookie(r.headers);
      if (!next || next === cookie) return 'POST /login did not issue a new session cookie';
      if (!config.stateless) {
        const old = await request(`${base}/whoami`, { cookie });
        if (old.status !== 401)
          return `the pre-login session still answers ${old.status} after regenerate`;
      }
      const who = await request(`${base}/whoami`, { cookie: next });
      if (who.status !== 200) return `the new session answers ${who.status} on /whoami`;
    }
    return undefined;
  }
  return undefined;
}

/**
 * What a cell needs before it is measured: a session cookie from POST /login (bare Nest sets none:
 * it gets one of a typical size, so request bytes stay comparable) and a route that does what it
 * should. `{ job }` for the load generator, or `{ error }`.
 */
async function prepareCell(app, route, config, connections) {
  let cookie = await login(app.url).catch(() => undefined);
  if (!cookie && !config.baseline && !config.control) {
    return { error: 'login gave no cookie', logged: 'login gave no cookie — skipped' };
  }
  cookie ??= `sid=${randomBytes(48).toString('base64url')}`;
  const job = loadJob(app.url, route, cookie, connections);
  const problem = await sanity(app.url, route, cookie, config).catch((e) => String(e));
  if (problem) return { job, error: problem, logged: `FAILED sanity check: ${problem}` };
  return { job };
}

/**
 * The settling step (README.md, "Settling"): the app under load on `route`, in runs of a second,
 * until it has made `count` full garbage collections. Returns why it could not, or undefined.
 */
async function settleApp(app, route, config, connections, loadgen, count) {
  const cell = await prepareCell(app, route, config, connections);
  if (cell.error) return cell.error;
  // Settled (or refused) by itself, caught here: nothing goes unhandled while the load runs.
  let finished = false;
  const outcome = collectGarbage(app, { count, intervalMs: SETTLE_INTERVAL_MS })
    .then(
      () => undefined,
      (error) => error.message,
    )
    .finally(() => {
      finished = true;
    });
  do await loadgen.run({ ...cell.job, duration: 1 });
  while (!finished);
  return outcome;
}

/**
 * Runs the throughput part. Resolves `{ settings, configs, samples, unavailable, failures }` where
 * `samples[configId][routeId]` is one measurement per round.
 */
export async function measureThroughput(settings, log = console.log) {
  const { rounds, duration, warmup, connections, routeIds, secret, settle } = settings;
  const selected = settings.configs;
  const selectedRoutes = routes.filter((r) => !routeIds || routeIds.includes(r.id));
  const running = [];
  const unavailable = {};
  const failures = [];
  const cookieBytes = {};
  log(`Starting ${selected.length} configurations…`);
  for (const config of selected) {
    const app = await startApp(config, { secret, execArgv: ['--expose-gc'] });
    if (!app.available) {
      unavailable[config.id] = app.reason;
      log(`  ${config.label.padEnd(34)} not available in this build: ${app.reason}`);
      continue;
    }
    running.push({ config, app });
    log(
      `  ${config.adapter.padEnd(8)}${config.label.padEnd(34)} ${app.url}${app.info?.options && Object.keys(app.info.options).length ? `  options ${JSON.stringify(app.info.options)}` : ''}`,
    );
  }
  const loadgen = await startLoadGenerator(settings.load);
  log(`Load generator: ${loadgen.name}`);
  const samples = {};
  try {
    if (settle > 0) {
      log(`Settling: ${settle} full garbage collections per app and route, under load…`);
      for (const route of selectedRoutes) {
        for (const { config, app } of running) {
          const problem = await settleApp(app, route, config, connections, loadgen, settle);
          if (problem)
            log(
              `  ${route.id.padEnd(7)} ${config.adapter.padEnd(8)}${config.label}: not settled (${problem})`,
            );
        }
      }
    }
    for (let round = 0; round < rounds; round++) {
      for (const route of selectedRoutes) {
        // Rotate the order every round so no configuration always runs first (or right after another).
        const order = running.map((_, i) => running[(i + round) % running.length]);
        for (const { config, app } of order) {
          const label = `round ${round + 1}/${rounds} ${route.id.padEnd(7)} ${config.adapter.padEnd(8)}${config.label}`;
          const cell = await prepareCell(app, route, config, connections);
          if (cell.job) cookieBytes[config.id] = cell.job.cookie.length;
          if (cell.error) {
            failures.push({ config: config.id, route: route.id, round, error: cell.error });
            log(`${label}: ${cell.logged}`);
            continue;
          }
          const { job } = cell;
          if (warmup > 0) await loadgen.run({ ...job, duration: warmup });
          // With the app's own CPU per answered request (bench/README.md, "CPU per request").
          const { result, cpuUs } = await withCpuPerRequest(app, () =>
            loadgen.run({ ...job, duration }),
          );
          ((samples[config.id] ??= {})[route.id] ??= []).push({ round, ...result, cpuUs });
          const bad = result.non2xx + result.errors + result.timeouts;
          log(
            `${label.padEnd(84)} ${fmt(result.rps).padStart(7)} req/s  p99 ${fmt(result.latency.p99, 1).padStart(6)} ms  CPU ${fmt(cpuUs, 1).padStart(6)} µs` +
              (bad
                ? `  !! ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`
                : ''),
          );
        }
      }
    }
  } finally {
    await loadgen.stop();
    await Promise.all(running.map(({ app }) => app.stop()));
  }
  return {
    settings: { rounds, duration, warmup, connections, settle, load: loadgen.name },
    configs: selected.map((c) => ({
      id: c.id,
      label: c.label,
      adapter: c.adapter,
      baseline: !!c.baseline,
      control: !!c.control,
      reference: !!c.reference,
      ...(c.twinOf ? { twinOf: c.twinOf, libRev: c.libRev } : {}),
    })),
    routes: selectedRoutes.map((r) => ({ id: r.id, label: r.label })),
    samples,
    unavailable,
    failures,
    cookieBytes,
  };
}

/** Cells with more failed requests than this share are not compared with anything. */
const MAX_FAILED_SHARE = 0.001;

const valid = (samples) =>
  samples.every((x) => x.non2xx + x.errors + x.timeouts <= MAX_FAILED_SHARE * Math.max(1, x.total));

/**
 * Median over rounds of `a`'s req/s divided by `b`'s req/s in the same round (NaN when either was
 * not measured or a cell failed requests).
 */
export function pairedRatio(data, route, a, b, metric = (x) => x.rps) {
  const sa = data?.samples[a]?.[route] ?? [];
  const sb = data?.samples[b]?.[route] ?? [];
  if (!sa.length || !sb.length || !valid(sa) || !valid(sb)) return NaN;
  return median(
    sa.map((x) => {
      const y = sb.find((y) => y.round === x.round);
      return y ? metric(x) / metric(y) : NaN;
    }),
  );
}

/** Median over rounds of `a`'s p99 divided by `b`'s p99 in the same round. */
export const pairedP99Ratio = (data, route, a, b) =>
  pairedRatio(data, route, a, b, (x) => x.latency.p99);

/**
 * Median over rounds of `b`'s CPU per request divided by `a`'s in the same round: like the req/s
 * ratio, below 1 when `a` costs more, but out of each app's own CPU time (NaN where not measured).
 */
export const pairedCpuRatio = (data, route, a, b) =>
  pairedRatio(data, route, a, b, (x) => (x.cpuUs > 0 ? 1 / x.cpuUs : NaN));

/** The bare Nest id and the reference id on a configuration's adapter. */
export function anchorsOf(data, id) {
  const config = data.configs.find((c) => c.id === id);
  const adapter = config?.adapter ?? 'express';
  const a = ADAPTERS.find((x) => x.id === adapter);
  const has = (x) => data.configs.some((c) => c.id === x);
  return {
    adapter,
    bare: has(a.bare) ? a.bare : undefined,
    ref: has(a.reference) ? a.reference : undefined,
  };
}

/** Per configuration and route: median req/s, median p99, median of per-round ratios. */
export function summarize(data) {
  const rows = [];
  for (const route of data.routes) {
    for (const config of data.configs) {
      const s = data.samples[config.id]?.[route.id];
      if (!s?.length) {
        rows.push({
          route: route.id,
          config: config.id,
          adapter: config.adapter ?? 'express',
          missing: data.unavailable[config.id] ?? 'not measured',
        });
        continue;
      }
      const bad = s.reduce((n, x) => n + x.non2xx + x.errors + x.timeouts, 0);
      const { bare: base, ref } = anchorsOf(data, config.id);
      rows.push({
        route: route.id,
        config: config.id,
        adapter: config.adapter ?? 'express',
        rps: median(s.map((x) => x.rps)),
        p99: median(s.map((x) => x.latency.p99)),
        vsBare: base ? pairedRatio(data, route.id, config.id, base) : NaN,
        p99VsBare: base ? pairedP99Ratio(data, route.id, config.id, base) : NaN,
        cpuUs: median(s.map((x) => x.cpuUs ?? NaN)),
        cpuVsBare: base ? pairedCpuRatio(data, route.id, config.id, base) : NaN,
        vsRef: ref ? pairedRatio(data, route.id, config.id, ref) : NaN,
        bad,
        rounds: s.length,
      });
    }
  }
  return rows;
}

function tableRows(data, summary) {
  const label = (id) => data.configs.find((c) => c.id === id)?.label ?? id;
  const routeLabel = (id) => data.routes.find((r) => r.id === id)?.label ?? id;
  const adapterLabel = (id) => ADAPTERS.find((a) => a.id === id)?.label ?? id;
  const order = ADAPTERS.map((a) => a.id);
  const sorted = [...summary].sort(
    (x, y) =>
      order.indexOf(x.adapter) - order.indexOf(y.adapter) ||
      data.routes.findIndex((r) => r.id === x.route) -
        data.routes.findIndex((r) => r.id === y.route),
  );
  return sorted.map((r) =>
    r.missing
      ? [
          adapterLabel(r.adapter),
          routeLabel(r.route),
          label(r.config),
          'n/a',
          '',
          '',
          '',
          '',
          '',
          '',
          r.missing.length > 60 ? `${r.missing.slice(0, 57)}…` : r.missing,
        ]
      : [
          adapterLabel(r.adapter),
          routeLabel(r.route),
          label(r.config),
          fmt(r.rps),
          fmt(r.p99, 1),
          ratio(r.vsBare),
          ratio(r.p99VsBare),
          fmt(r.cpuUs, 1),
          ratio(r.cpuVsBare),
          ratio(r.vsRef),
          r.bad ? `${fmt(r.bad)} failed requests (non-2xx, errors, timeouts): not compared` : '',
        ],
  );
}

const HEADER = [
  'adapter',
  'route',
  'configuration',
  'req/s (median)',
  'p99 ms (median)',
  '× bare',
  'p99 × bare',
  'app CPU µs / request (median)',
  'CPU × bare',
  '× express-session / @fastify/session',
  'note',
];
const ALIGN = ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'];

export function throughputText(data) {
  return textTable(HEADER, tableRows(data, summarize(data)), ALIGN);
}

export function throughputMarkdown(data) {
  const s = data.settings;
  const failures = data.failures.length
    ? '\n\nCells that failed their sanity check (not measured):\n' +
      data.failures
        .map((f) => `- ${f.config} · ${f.route} (round ${f.round + 1}): ${f.error}`)
        .join('\n')
    : '';
  const cookies = Object.entries(data.cookieBytes)
    .map(([id, n]) => `${data.configs.find((c) => c.id === id)?.label ?? id} ${n}`)
    .join(', ');
  return (
    [
      `${s.settle ? `Every app settled first by ${s.settle} full garbage collections under load on each route (README.md, "Settling"). ` : ''}${s.rounds} round(s), configurations interleaved and rotated each round; per cell ${s.warmup} s warm-up (discarded) then ${s.duration} s measured with ${s.connections} connections (${s.load ?? 'autocannon'}, separate process). ` +
        `Ratios are the median over rounds of the ratio to the other configuration measured in the same round; × bare, p99 × bare and CPU × bare are to bare Nest on the same adapter (CPU × bare: bare's CPU per request over this configuration's, from the app's own user + system time over the requests it answered: other processes' time slices are not in it, a slower shared core still shows), the last column to express-session (MemoryStore) on Express and to @fastify/session (MemoryStore) on Fastify.`,
      '',
      markdownTable(HEADER, tableRows(data, summarize(data)), ALIGN),
      '',
      `Cookie header sizes sent (bytes, \`name=value\`): ${cookies}.`,
    ].join('\n') + failures
  );
}

/**
 * Before and after: every nestjs-sessions configuration next to its baseline twin (`--baseline`),
 * both as ratios to bare on the same adapter, and current ÷ baseline in the same round.
 */
export function beforeAfterRows(data) {
  const rows = [];
  for (const twin of data.configs.filter((c) => c.twinOf)) {
    const current = data.configs.find((c) => c.id === twin.twinOf);
    if (!current) continue;
    const { bare } = anchorsOf(data, current.id);
    for (const route of data.routes) {
      rows.push({
        adapter: current.adapter,
        route: route.id,
        config: current.id,
        label: current.label,
        rev: twin.libRev,
        before: pairedRatio(data, route.id, twin.id, bare),
        after: pairedRatio(data, route.id, current.id, bare),
        change: pairedRatio(data, route.id, current.id, twin.id),
        cpuChange: pairedCpuRatio(data, route.id, current.id, twin.id),
        p99Before: pairedP99Ratio(data, route.id, twin.id, bare),
        p99After: pairedP99Ratio(data, route.id, current.id, bare),
        missing: data.unavailable[twin.id],
      });
    }
  }
  return rows;
}

export function beforeAfterMarkdown(data) {
  const rows = beforeAfterRows(data);
  if (!rows.length) return '';
  const rev = rows[0].rev;
  const adapterLabel = (id) => ADAPTERS.find((a) => a.id === id)?.label ?? id;
  const routeLabel = (id) => data.routes.find((r) => r.id === id)?.label ?? id;
  return [
    `Baseline: the library built from \`${rev}\`, measured in the same rounds as the current build (same apps, same options). ` +
      `"current ÷ baseline" is the median of the per-round ratio of the two (req/s, and the baseline's CPU per request over the current's: above 1 when the current build costs less); ±0.05 is within this machine's noise.`,
    '',
    markdownTable(
      [
        'adapter',
        'route',
        'configuration',
        'baseline × bare',
        'current × bare',
        'current ÷ baseline',
        'CPU per request: baseline ÷ current',
        'p99 × bare (baseline → current)',
        'note',
      ],
      rows.map((r) => [
        adapterLabel(r.adapter),
        routeLabel(r.route),
        r.label,
        ratio(r.before),
        ratio(r.after),
        ratio(r.change),
        ratio(r.cpuChange),
        `${ratio(r.p99Before)} → ${ratio(r.p99After)}`,
        r.missing
          ? `baseline not available: ${r.missing.length > 70 ? `${r.missing.slice(0, 67)}…` : r.missing}`
          : '',
      ]),
      ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  ].join('\n');
}
