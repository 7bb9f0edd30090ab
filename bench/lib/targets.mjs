// DESIGN.md's performance targets, checked against a run's results.
import { pairedRatio } from '../throughput.mjs';

/** Rows `{ target, measured, status }`; status is 'met', 'not met' or 'n/a'. */
export function checkTargets({ throughput: tp, roundTrips: rt, memory: mem, lostUpdates: lu }) {
  const rows = [];
  const vsBare = (config, route) => (tp ? pairedRatio(tp, route, config, 'bare') : NaN);
  const vsOther = (config, route, other) => (tp ? pairedRatio(tp, route, config, other) : NaN);
  const add = (target, values, ok) => {
    const measured = values.filter(([, v]) => Number.isFinite(v));
    rows.push({
      target,
      measured: values
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

  for (const [config, label] of [
    ['nss-memory', 'memory'],
    ['nss-redis', 'Redis'],
    ['nss-postgres', 'PostgreSQL'],
    ['nss-sealed', 'sealed'],
  ]) {
    add(
      `route that never touches the session ≥ 0.98× bare (${label})`,
      [['plain', vsBare(config, 'plain')]],
      ([a]) => a >= 0.98,
    );
  }
  add(
    'session read, memory store ≥ 0.9× bare (≥ 1.6× express-session)',
    [
      ['× bare', vsBare('nss-memory', 'whoami')],
      ['× express-session', vsOther('nss-memory', 'whoami', 'es-memory')],
    ],
    ([a, b]) => a >= 0.9 && b >= 1.6,
  );
  add(
    'session read, Redis ≥ 0.8× bare, one round trip',
    [
      ['× bare', vsBare('nss-redis', 'whoami')],
      ['round trips', trips('nss-redis', 'whoami'), ''],
    ],
    ([a, b]) => a >= 0.8 && b === 1,
  );
  add(
    'session write, memory ≥ 0.85× bare',
    [['× bare', vsBare('nss-memory', 'counter')]],
    ([a]) => a >= 0.85,
  );
  // POST /counter reads then writes: one round trip for the read plus one for the write.
  add(
    'session write, Redis ≥ 0.7× bare, one round trip (read-modify-write: 1 + 1)',
    [
      ['× bare', vsBare('nss-redis', 'counter')],
      ['round trips', trips('nss-redis', 'counter'), ''],
    ],
    ([a, b]) => a >= 0.7 && b === 2,
  );
  add(
    'sealed stateless read ≥ 0.9× bare (≥ 3× iron-session)',
    [
      ['× bare', vsBare('nss-sealed', 'whoami')],
      ['× iron-session', vsOther('nss-sealed', 'whoami', 'iron')],
    ],
    ([a, b]) => a >= 0.9 && b >= 3,
  );
  add(
    'sealed stateless write ≥ 0.8× bare (≥ 3× iron-session)',
    [
      ['× bare', vsBare('nss-sealed', 'counter')],
      ['× iron-session', vsOther('nss-sealed', 'counter', 'iron')],
    ],
    ([a, b]) => a >= 0.8 && b >= 3,
  );
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
