// DESIGN.md's performance targets, checked against a run's results.
import { ADAPTERS } from '../configs.mjs';
import { pairedCpuRatio, pairedP99Ratio, pairedRatio } from '../throughput.mjs';

/** Rows `{ target, measured, status }`; status is 'met', 'not met' or 'n/a'. */
export function checkTargets({ throughput: tp, roundTrips: rt, memory: mem, lostUpdates: lu }) {
  const rows = [];
  const vsOther = (config, route, other) => (tp ? pairedRatio(tp, route, config, other) : NaN);
  // `context`: measured alongside the target's values (the floor), not part of its status.
  const add = (target, values, ok, context = []) => {
    const measured = values.filter(([, v]) => Number.isFinite(v));
    rows.push({
      target,
      measured: [...values, ...context.filter(([, v]) => Number.isFinite(v))]
        .map(
          ([label, v, unit = '×']) =>
            `${label} ${Number.isFinite(v) ? `${unit === '×' ? v.toFixed(2) : v}${unit}` : 'n/a'}`,
        )
        .join('; '),
      status:
        measured.length < values.length ? 'n/a' : ok(values.map(([, v]) => v)) ? 'met' : 'not met',
    });
  };
  const trips = (config, step) =>
    rt?.results.find((r) => r.config === config)?.steps?.[step]?.roundTrips ?? NaN;

  const sessionRoutes = ['whoami', 'counter', 'login'];
  for (const adapter of ADAPTERS) {
    const p = adapter.prefix;
    const bare = adapter.bare;
    const on = adapter.label;
    if (!tp?.configs.some((c) => c.id === bare)) continue;
    const vsBare = (config, route) => (tp ? pairedRatio(tp, route, config, bare) : NaN);
    const cpuVsBare = (config, route) => (tp ? pairedCpuRatio(tp, route, config, bare) : NaN);
    // Beside each session target: the same ratio in CPU per request (the app's own CPU time: other
    // processes' time slices are not in it), and the floor's, both ways.
    const contextOf = (kind, route, config) => [
      ['CPU × bare', cpuVsBare(config, route)],
      ['floor', vsBare(`${p}floor-${kind}`, route)],
      ['floor CPU', cpuVsBare(`${p}floor-${kind}`, route)],
    ];
    for (const [kind, label] of [
      ['memory', 'memory'],
      ['redis', 'Redis'],
      ['postgres', 'PostgreSQL'],
      ['sealed', 'sealed'],
    ]) {
      add(
        `${on}: route that never touches the session ≥ 0.98× bare (${label})`,
        [['plain', vsBare(`${p}nss-${kind}`, 'plain')]],
        ([a]) => a >= 0.98,
        [['CPU × bare', cpuVsBare(`${p}nss-${kind}`, 'plain')]],
      );
    }
    const memRead = [['× bare', vsBare(`${p}nss-memory`, 'whoami')]];
    if (adapter.id === 'express')
      memRead.push(['× express-session', vsOther('nss-memory', 'whoami', 'es-memory')]);
    add(
      `${on}: session read, memory store ≥ 0.9× bare${adapter.id === 'express' ? ' (≥ 1.6× express-session)' : ''}`,
      memRead,
      ([a, b = Infinity]) => a >= 0.9 && b >= 1.6,
      contextOf('verify', 'whoami', `${p}nss-memory`),
    );
    add(
      `${on}: session read, Redis ≥ 0.85× bare, one round trip`,
      [
        ['× bare', vsBare(`${p}nss-redis`, 'whoami')],
        ['round trips', trips(`${p}nss-redis`, 'whoami'), ''],
      ],
      ([a, b]) => a >= 0.85 && b === 1,
      contextOf('verify', 'whoami', `${p}nss-redis`),
    );
    add(
      `${on}: session write, memory ≥ 0.85× bare`,
      [['× bare', vsBare(`${p}nss-memory`, 'counter')]],
      ([a]) => a >= 0.85,
      contextOf('verify', 'counter', `${p}nss-memory`),
    );
    // POST /counter reads then writes: one round trip for the read plus one for the write.
    add(
      `${on}: session write, Redis ≥ 0.7× bare (read-modify-write: 1 + 1 round trips)`,
      [
        ['× bare', vsBare(`${p}nss-redis`, 'counter')],
        ['round trips', trips(`${p}nss-redis`, 'counter'), ''],
      ],
      ([a, b]) => a >= 0.7 && b === 2,
      contextOf('verify', 'counter', `${p}nss-redis`),
    );
    const sealedRead = [['× bare', vsBare(`${p}nss-sealed`, 'whoami')]];
    const sealedWrite = [['× bare', vsBare(`${p}nss-sealed`, 'counter')]];
    if (adapter.id === 'express') {
      sealedRead.push(['× iron-session', vsOther('nss-sealed', 'whoami', 'iron')]);
      sealedWrite.push(['× iron-session', vsOther('nss-sealed', 'counter', 'iron')]);
    }
    add(
      `${on}: sealed read ≥ 0.9× bare${adapter.id === 'express' ? ' (≥ 3× iron-session)' : ''}`,
      sealedRead,
      ([a, b = Infinity]) => a >= 0.9 && b >= 3,
      contextOf('sealed', 'whoami', `${p}nss-sealed`),
    );
    add(
      `${on}: sealed write ≥ 0.8× bare${adapter.id === 'express' ? ' (≥ 3× iron-session)' : ''}`,
      sealedWrite,
      ([a, b = Infinity]) => a >= 0.8 && b >= 3,
      contextOf('sealed', 'counter', `${p}nss-sealed`),
    );
    if (adapter.id === 'fastify') {
      for (const [mine, theirs, name] of [
        ['f-nss-memory', 'fs-memory', '@fastify/session MemoryStore (memory)'],
        ['f-nss-redis', 'fs-redis', '@fastify/session + connect-redis (Redis)'],
        ['f-nss-sealed', 'f-secure', '@fastify/secure-session (sealed)'],
      ]) {
        add(
          `Fastify: ahead of ${name} on every session route`,
          sessionRoutes.map((r) => [r, vsOther(mine, r, theirs)]),
          (v) => v.every((x) => x > 1),
        );
      }
    }
    // p99 of every session row ≤ 1.5× bare's p99 in the same rounds.
    const p99 = [];
    for (const kind of ['memory', 'redis', 'postgres', 'sealed'])
      for (const r of sessionRoutes)
        p99.push([`${kind} ${r}`, tp ? pairedP99Ratio(tp, r, `${p}nss-${kind}`, bare) : NaN]);
    const worst = p99.filter(([, v]) => Number.isFinite(v)).sort((a, b) => b[1] - a[1]);
    rows.push({
      target: `${on}: p99 latency of every session row ≤ 1.5× bare's p99`,
      measured: worst.length
        ? `worst: ${worst
            .slice(0, 3)
            .map(([l, v]) => `${l} ${v.toFixed(2)}×`)
            .join(
              '; ',
            )}; ${worst.filter(([, v]) => v > 1.5).length} of ${worst.length} rows above 1.5×`
        : 'n/a',
      status:
        worst.length < p99.length ? 'n/a' : worst.every(([, v]) => v <= 1.5) ? 'met' : 'not met',
    });
  }
  for (const store of ['memory', 'redis', 'postgres']) {
    const best = (lu?.results ?? [])
      .filter((r) => r.id.startsWith(`nss-${store}`) && r.survivors)
      .map((r) => [
        r.label.replace(/^nestjs-sessions · [a-z]+ · /, ''),
        Math.min(...r.survivors),
        '/50',
      ]);
    if (!best.length) best.push([store, NaN, '/50']);
    rows.push({
      target: `50 concurrent same-key cart adds: 50 / 50 (${store}, some mode)`,
      measured: best.map(([l, v, u]) => `${l} ${Number.isFinite(v) ? v + u : 'n/a'}`).join('; '),
      status: best.some(([, v]) => v === 50)
        ? 'met'
        : best.every(([, v]) => !Number.isFinite(v))
          ? 'n/a'
          : 'not met',
    });
  }
  const memRow = (variant, store) =>
    mem?.results.find((r) => r.variant === variant && r.store === store);
  const nss = memRow('user', 'nss');
  const es = memRow('user', 'es');
  add(
    'memory store footprint ≤ express-session MemoryStore bytes per session',
    [
      ['nestjs-sessions', nss?.bytesPerSession ?? NaN, ' B'],
      ['express-session', es?.bytesPerSession ?? NaN, ' B'],
    ].map(([l, v, u]) => [l, Number.isFinite(v) ? Math.round(v) : v, u]),
    ([a, b]) => a <= b,
  );
  add(
    'memory store lookup time independent of session count (@100k ÷ @1 ≤ 1.5)',
    [['@100k ÷ @1', nss ? +(nss.lookupNsFull / nss.lookupNsOne).toFixed(2) : NaN, '×']],
    ([a]) => a <= 1.5,
  );
  return rows;
}
