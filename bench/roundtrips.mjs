// Store round trips per request: each store-backed configuration runs behind a counting TCP proxy
// (lib/tcp-counter.mjs); requests are sent one at a time and the proxy's counters are read around
// each of them (after a short settle, so fire-and-forget writes such as express-session's touch
// are counted too).
import { setTimeout as sleep } from 'node:timers/promises';
import { URL } from 'node:url';
import { configurations } from './configs.mjs';
import { startApp } from './lib/apps.mjs';
import { login, request, sessionCookie } from './lib/http.mjs';
import { markdownTable, median, textTable } from './lib/stats.mjs';
import { startCountingProxy } from './lib/tcp-counter.mjs';

const SETTLE_MS = 25;

const STEPS = [
  { id: 'plain', label: 'GET /plain', method: 'GET', path: '/plain' },
  { id: 'whoami', label: 'GET /whoami (read)', method: 'GET', path: '/whoami' },
  { id: 'counter', label: 'POST /counter (write)', method: 'POST', path: '/counter' },
  {
    id: 'login',
    label: 'POST /login (regenerate + write)',
    method: 'POST',
    path: '/login',
    chain: true,
  },
];

function backend(kind) {
  const url = new URL(
    kind === 'redis'
      ? (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
      : (process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'),
  );
  return { url, host: url.hostname, port: Number(url.port || (kind === 'redis' ? 6379 : 5432)) };
}

export async function measureRoundTrips({ secret, requests = 20, only }, log = console.log) {
  const results = [];
  for (const config of configurations.filter((c) => c.store && (!only || only.includes(c.id)))) {
    const target = backend(config.store);
    const proxy = await startCountingProxy({ host: target.host, port: target.port }, config.store);
    const via = new URL(target.url);
    via.hostname = '127.0.0.1';
    via.port = String(proxy.port);
    const extraEnv =
      config.store === 'redis' ? { REDIS_URL: via.href } : { DATABASE_URL: via.href };
    let app;
    try {
      app = await startApp(config, { secret, extraEnv });
      if (!app.available) {
        results.push({
          config: config.id,
          label: `${config.adapter === 'fastify' ? 'Fastify · ' : ''}${config.label}`,
          unavailable: app.reason,
        });
        log(`  ${config.label}: not available in this build: ${app.reason}`);
        continue;
      }
      let cookie = await login(app.url);
      const row = {
        config: config.id,
        label: `${config.adapter === 'fastify' ? 'Fastify · ' : ''}${config.label}`,
        steps: {},
      };
      for (const step of STEPS) {
        const perRequest = [];
        for (let i = 0; i < requests; i++) {
          await sleep(SETTLE_MS);
          const before = proxy.counts();
          const res = await request(`${app.url}${step.path}`, { method: step.method, cookie });
          await sleep(SETTLE_MS);
          const after = proxy.counts();
          if (res.status !== 200)
            throw new Error(`${config.id} ${step.path}: ${res.status} ${res.body.slice(0, 100)}`);
          if (step.chain) cookie = sessionCookie(res.headers) ?? cookie;
          const names = proxy.commandsSince(before.sequenceLength).join(' ');
          perRequest.push({
            roundTrips: after.roundTrips - before.roundTrips,
            commands: after.commands - before.commands,
            names,
          });
        }
        const signatures = {};
        for (const p of perRequest) signatures[p.names] = (signatures[p.names] ?? 0) + 1;
        row.steps[step.id] = {
          roundTrips: median(perRequest.map((p) => p.roundTrips)),
          maxRoundTrips: Math.max(...perRequest.map((p) => p.roundTrips)),
          commands: median(perRequest.map((p) => p.commands)),
          typical: Object.entries(signatures).sort((a, b) => b[1] - a[1])[0][0] || '—',
        };
      }
      results.push(row);
      log(
        `  ${config.label.padEnd(34)} ` +
          STEPS.map(
            (s) => `${s.id} ${row.steps[s.id].roundTrips} rt (${row.steps[s.id].typical})`,
          ).join(', '),
      );
    } finally {
      await app?.stop?.();
      await proxy.close();
    }
  }
  return { requests, results };
}

function rows(data) {
  return data.results.flatMap((r) =>
    r.unavailable
      ? [[r.label, 'n/a', '', '', '', r.unavailable]]
      : STEPS.map((s) => {
          const x = r.steps[s.id];
          return [
            r.label,
            s.label,
            String(x.roundTrips),
            String(x.maxRoundTrips),
            String(x.commands),
            x.typical,
          ];
        }),
  );
}

const HEADER = [
  'configuration',
  'request',
  'round trips (median)',
  'max',
  'commands / statements',
  'typical commands',
];
const ALIGN = ['l', 'l', 'r', 'r', 'r', 'l'];

export const roundTripsText = (data) => textTable(HEADER, rows(data), ALIGN);
export const roundTripsMarkdown = (data) =>
  `${data.requests} sequential requests per row, counted by a TCP proxy between the app and its store ` +
  `(commands: Redis commands, or PostgreSQL statements named by their first word). Target: a read is 1, a write is 1; ` +
  `a read-modify-write request such as POST /counter is a read plus a write.\n\n` +
  markdownTable(HEADER, rows(data), ALIGN);

if (import.meta.url === `file://${process.argv[1]}`) {
  const { installCleanup } = await import('./lib/apps.mjs');
  const { randomBytes } = await import('node:crypto');
  installCleanup();
  const data = await measureRoundTrips({ secret: randomBytes(32).toString('base64url') });
  console.log(roundTripsText(data));
}
