// Lost updates (issue 4): 50 concurrent `POST /cart/items` on one session; the handler reads the
// cart, awaits ~3 ms (a catalog lookup), then writes cart + item. Counts the items that survive.
import http from 'node:http';
import { CONCURRENCY_MODES, SEALED_OPTIONS } from './configs.mjs';
import { startApp } from './lib/apps.mjs';
import { login, request, sessionCookie } from './lib/http.mjs';
import { fmt, markdownTable, median, textTable } from './lib/stats.mjs';

const BURST = 50;

function cases() {
  const list = [];
  for (const store of ['memory', 'redis', 'postgres']) {
    const base = { app: 'nestjs-sessions.mjs', family: 'nestjs-sessions', store };
    list.push({
      ...base,
      id: `nss-${store}`,
      label: `nestjs-sessions · ${store} · default`,
      env: { BENCH_STORE: store },
    });
    list.push({
      ...base,
      id: `nss-${store}-lock`,
      label: `nestjs-sessions · ${store} · @SessionLock() route`,
      env: { BENCH_STORE: store },
      path: '/cart/items-locked',
      needsLock: true,
    });
    for (const mode of CONCURRENCY_MODES) {
      list.push({
        ...base,
        id: `nss-${store}-${mode}`,
        label: `nestjs-sessions · ${store} · concurrency: '${mode}'`,
        env: { BENCH_STORE: store, BENCH_OPTIONS: JSON.stringify([{ concurrency: mode }]) },
      });
    }
  }
  list.push({
    app: 'nestjs-sessions.mjs',
    id: 'nss-sealed',
    label: 'nestjs-sessions · sealed cookie · default',
    env: { BENCH_STORE: 'memory', BENCH_OPTIONS: JSON.stringify(SEALED_OPTIONS) },
  });
  list.push({
    app: 'express-session.mjs',
    id: 'es-memory',
    label: 'express-session · MemoryStore',
    env: { BENCH_STORE: 'memory' },
  });
  list.push({
    app: 'express-session.mjs',
    id: 'es-redis',
    label: 'express-session · connect-redis',
    env: { BENCH_STORE: 'redis' },
  });
  list.push({ app: 'iron-session.mjs', id: 'iron', label: 'iron-session', env: {} });
  return list;
}

/** One item on a fresh session must stick before a burst means anything; returns an error text or undefined. */
async function sanity(base, path) {
  const cookie = await login(base);
  const add = await request(`${base}${path}`, { method: 'POST', cookie, body: { item: 'probe' } });
  if (add.status !== 200) return `POST ${path} answered ${add.status}`;
  const cart = await request(`${base}/cart`, { cookie: sessionCookie(add.headers) ?? cookie });
  const items = cart.json?.items;
  return Array.isArray(items) && items.length === 1 && items[0] === 'probe'
    ? undefined
    : `GET /cart answered ${cart.status} ${cart.body.slice(0, 80)} after one add`;
}

async function burst(base, path, agent) {
  // Open the sockets first so the burst measures the session work, not TCP handshakes.
  await Promise.all(Array.from({ length: BURST }, () => request(`${base}/plain`, { agent })));
  let jar = await login(base);
  const start = process.hrtime.bigint();
  const statuses = {};
  const cookie = jar;
  await Promise.all(
    Array.from({ length: BURST }, async (_, i) => {
      const res = await request(`${base}${path}`, {
        method: 'POST',
        cookie,
        body: { item: `item-${i}` },
        agent,
      });
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      // A browser keeps the last cookie it receives (stateless sessions re-issue it on every write).
      jar = sessionCookie(res.headers) ?? jar;
    }),
  );
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const cart = await request(`${base}/cart`, { cookie: jar, agent });
  const items = new Set(Array.isArray(cart.json?.items) ? cart.json.items : []);
  const survivors = Array.from({ length: BURST }, (_, i) => `item-${i}`).filter((x) =>
    items.has(x),
  ).length;
  // Acknowledged (200) but gone afterwards: the updates lost without anyone being told.
  const lostSilently = Math.max(0, (statuses[200] ?? 0) - survivors);
  return { survivors, wallMs, statuses, lostSilently };
}

export async function measureLostUpdates({ secret, repeats = 1, only }, log = console.log) {
  const results = [];
  let current; // { key, app }: the @SessionLock() case follows its store's default case and reuses its app
  const missing = new Map(); // app + store -> why it is unavailable (a module or backend, not an option)
  try {
    for (const c of cases().filter((x) => !only || only.some((o) => x.id.startsWith(o)))) {
      const appKey = JSON.stringify([c.app, c.env]);
      const storeKey = `${c.app}|${c.env.BENCH_STORE ?? ''}`;
      if (missing.has(storeKey)) {
        results.push({ id: c.id, label: c.label, na: missing.get(storeKey) });
        continue;
      }
      if (current?.key !== appKey) {
        await current?.app.stop?.();
        current = {
          key: appKey,
          app: await startApp({ id: c.id, app: c.app, env: c.env }, { secret }),
        };
      }
      const app = current.app;
      if (!app.available) {
        if (!app.reason.startsWith('the library refused')) missing.set(storeKey, app.reason);
        results.push({ id: c.id, label: c.label, na: app.reason });
        log(`  ${c.label.padEnd(56)} n/a: ${app.reason}`);
        continue;
      }
      if (c.needsLock && !app.info?.lock) {
        results.push({ id: c.id, label: c.label, na: 'this build exports no SessionLock' });
        log(`  ${c.label.padEnd(56)} n/a: this build exports no SessionLock`);
        continue;
      }
      const path = c.path ?? '/cart/items';
      const problem = await sanity(app.url, path).catch((e) => String(e?.message ?? e));
      if (problem) {
        results.push({ id: c.id, label: c.label, na: `sanity check failed: ${problem}` });
        log(`  ${c.label.padEnd(56)} sanity check failed: ${problem}`);
        continue;
      }
      const agent = new http.Agent({ keepAlive: true, maxSockets: BURST });
      const runs = [];
      try {
        for (let r = 0; r < repeats; r++) runs.push(await burst(app.url, path, agent));
      } catch (error) {
        results.push({ id: c.id, label: c.label, na: `failed: ${error.message}` });
        log(`  ${c.label.padEnd(56)} failed: ${error.message}`);
        continue;
      } finally {
        agent.destroy();
      }
      const statuses = {};
      for (const run of runs)
        for (const [s, n] of Object.entries(run.statuses)) statuses[s] = (statuses[s] ?? 0) + n;
      const row = {
        id: c.id,
        label: c.label,
        survivors: runs.map((x) => x.survivors),
        lostSilently: runs.map((x) => x.lostSilently),
        wallMs: median(runs.map((x) => x.wallMs)),
        statuses,
      };
      results.push(row);
      log(
        `  ${c.label.padEnd(56)} ${row.survivors.join(', ')} / ${BURST}  ${fmt(row.wallMs)} ms  ${JSON.stringify(statuses)}`,
      );
    }
  } finally {
    await current?.app.stop?.();
  }
  return { burst: BURST, repeats, results };
}

function rows(data) {
  return data.results.map((r) =>
    r.na
      ? [r.label, 'n/a', '', '', '', r.na.length > 90 ? `${r.na.slice(0, 87)}…` : r.na]
      : [
          r.label,
          `${r.survivors.join(', ')} / ${data.burst}`,
          r.lostSilently.join(', '),
          fmt(r.wallMs),
          Object.entries(r.statuses)
            .map(([s, n]) => `${s}×${n}`)
            .join(' '),
          '',
        ],
  );
}

const HEADER = [
  'configuration',
  'items surviving',
  'lost after a 200',
  'burst wall time ms (median)',
  'responses',
  'note',
];
const ALIGN = ['l', 'r', 'r', 'r', 'l', 'l'];

export const lostUpdatesText = (data) => textTable(HEADER, rows(data), ALIGN);
export const lostUpdatesMarkdown = (data) =>
  `${data.burst} concurrent \`POST /cart/items\` on one logged-in session, each handler reading the cart, ` +
  `awaiting ~3 ms, then writing cart + item; ${data.repeats} burst(s) per row (one value each), a fresh session each. ` +
  `Survivors are the distinct items in \`GET /cart\` afterwards, with the last cookie received (what a browser keeps); ` +
  `"lost after a 200" counts requests that were told their item was added but whose item is gone (a 409 is not a lost update: the client knows).\n\n` +
  markdownTable(HEADER, rows(data), ALIGN);
