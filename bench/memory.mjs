// Memory per session and lookup time, nestjs-sessions' MemorySessionStore against express-session's
// MemoryStore, in one process started with --expose-gc (bench/run.mjs does that; alone:
// `node --expose-gc bench/memory.mjs`). Each store is filled with the same sessions, written the
// way each library writes them: nestjs-sessions as a `create` SessionWrite of per-key JSON texts,
// express-session as the serialized Session object (data plus its cookie).
import { randomBytes } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { fmt, markdownTable, textTable } from './lib/stats.mjs';

const VARIANTS = [
  {
    id: 'user',
    label: 'logged in: { userId, name, counter }',
    data: (i) => ({ userId: `u${i}`, name: 'bench', counter: 1 }),
  },
  {
    id: 'anon',
    label: 'anonymous: { counter, cart: [2 items] }',
    data: () => ({ counter: 1, cart: ['item-a', 'item-b'] }),
  },
];

function heap() {
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

const nestjsSessions = {
  id: 'nss',
  label: 'nestjs-sessions MemorySessionStore',
  async load() {
    ({ MemorySessionStore: this.Store } = await import('nestjs-sessions'));
  },
  create(count) {
    return new this.Store({ maxSessions: Math.max(count, 1) * 2 });
  },
  key: () => randomBytes(32).toString('base64url'),
  async write(store, key, data) {
    const now = Date.now();
    const set = {};
    for (const k of Object.keys(data)) set[k] = JSON.stringify(data[k]);
    await store.save({
      kind: 'create',
      key,
      set,
      unset: [],
      userId: typeof data.userId === 'string' ? data.userId : null,
      createdAt: now,
      lastActiveAt: now,
      expiresAt: now + 30 * 60_000,
      absoluteExpiresAt: now + 12 * 3_600_000,
    });
  },
  async read(store, key) {
    return store.load(key);
  },
  close: (store) => store.close?.(),
};

const expressSession = {
  id: 'es',
  label: 'express-session MemoryStore',
  async load() {
    ({ default: this.session } = await import('express-session'));
    this.Cookie = this.session.Cookie;
  },
  create() {
    return new this.session.MemoryStore();
  },
  // uid-safe(24), as express-session generates ids.
  key: () => randomBytes(24).toString('base64url'),
  write(store, key, data) {
    const sess = {
      cookie: new this.Cookie({
        maxAge: 30 * 60_000,
        secure: false,
        httpOnly: true,
        sameSite: 'lax',
        path: '/',
      }),
      ...data,
    };
    return new Promise((resolve, reject) =>
      store.set(key, sess, (err) => (err ? reject(err) : resolve())),
    );
  },
  read(store, key) {
    return new Promise((resolve, reject) =>
      store.get(key, (err, s) => (err ? reject(err) : resolve(s))),
    );
  },
  close: () => {},
};

async function timeLookups(lib, store, keys, count, lookups) {
  const picks = new Uint32Array(lookups);
  for (let i = 0; i < lookups; i++) picks[i] = Math.floor(Math.random() * count);
  for (let i = 0; i < Math.min(lookups, 20_000); i++) await lib.read(store, keys[picks[i]]);
  const start = process.hrtime.bigint();
  for (let i = 0; i < lookups; i++) {
    const s = await lib.read(store, keys[picks[i]]);
    if (!s) throw new Error(`${lib.id}: lookup missed`);
  }
  return Number(process.hrtime.bigint() - start) / lookups;
}

async function measureOne(lib, variant, count, lookups) {
  const keys = new Array(count).fill(null);
  // Loaded before the first reading: a module's code is not a cost per session.
  await lib.load();
  await tick();
  const before = heap();
  const store = lib.create(count);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    keys[i] = lib.key();
    await lib.write(store, keys[i], variant.data(i));
  }
  const writeNs = Number(process.hrtime.bigint() - t0) / count;
  const after = heap();
  const lookupNsFull = await timeLookups(lib, store, keys, count, lookups);
  // The same key over and over in the full store: the table's cost without cache misses.
  const lookupNsFullHot = await timeLookups(lib, store, [keys[count >> 1]], 1, lookups);
  await lib.close(store);

  const one = lib.create(1);
  const oneKey = [lib.key()];
  await lib.write(one, oneKey[0], variant.data(0));
  const lookupNsOne = await timeLookups(lib, one, oneKey, 1, lookups);
  await lib.close(one);
  return {
    store: lib.id,
    label: lib.label,
    variant: variant.id,
    variantLabel: variant.label,
    sessions: count,
    bytesPerSession: (after - before) / count,
    writeNs,
    lookupNsOne,
    lookupNsFull,
    lookupNsFullHot,
  };
}

export async function measureMemory({ count = 100_000, lookups = 200_000 } = {}) {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
  const results = [];
  for (const variant of VARIANTS) {
    for (const lib of [nestjsSessions, expressSession]) {
      try {
        results.push(await measureOne(lib, variant, count, lookups));
      } catch (error) {
        results.push({
          store: lib.id,
          label: lib.label,
          variant: variant.id,
          variantLabel: variant.label,
          error: String(error?.message ?? error),
        });
      }
    }
  }
  return { count, lookups, results };
}

function rows(data) {
  return data.results.map((r) =>
    r.error
      ? [r.variantLabel, r.label, 'n/a', '', '', '', '', r.error]
      : [
          r.variantLabel,
          r.label,
          fmt(r.bytesPerSession),
          fmt(r.writeNs / 1000, 2),
          fmt(r.lookupNsOne / 1000, 2),
          fmt(r.lookupNsFull / 1000, 2),
          `${(r.lookupNsFull / r.lookupNsOne).toFixed(2)}×`,
          fmt(r.lookupNsFullHot / 1000, 2),
        ],
  );
}

const HEADER = [
  'sessions',
  'store',
  'heap bytes / session',
  'write µs',
  'lookup µs @1',
  'lookup µs @100k',
  '@100k ÷ @1',
  'same key @100k µs',
];
const ALIGN = ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'];

export const memoryText = (data) =>
  textTable(
    HEADER.map((h) => h.replace('100k', fmt(data.count))),
    rows(data),
    ALIGN,
  );
export const memoryMarkdown = (data) =>
  `${fmt(data.count)} sessions per store in one process (\`--expose-gc\`, heap used after full GCs, minus the heap before); ` +
  `lookups: ${fmt(data.lookups)} awaited reads of random existing sessions, at 1 and at ${fmt(data.count)} sessions ` +
  `(express-session's MemoryStore answers through setImmediate, which is part of its lookup cost). ` +
  `"same key" reads one session over and over in the full store: the lookup without CPU-cache misses, ` +
  `so the difference to the random column is the cost of a big working set, not of the data structure.\n\n` +
  markdownTable(
    HEADER.map((h) => h.replace('100k', fmt(data.count))),
    rows(data),
    ALIGN,
  );

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.env.BENCH_MEMORY_SESSIONS ?? 100_000);
  const lookups = Number(process.env.BENCH_MEMORY_LOOKUPS ?? 200_000);
  const data = await measureMemory({ count, lookups });
  if (process.send) process.send({ type: 'result', data }, () => process.exit(0));
  else console.log(memoryText(data));
}
