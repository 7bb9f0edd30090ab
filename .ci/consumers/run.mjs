#!/usr/bin/env node
// The consumer matrix: packs this package, installs the tarball into each app of this folder (in a
// temp dir, from the npm registry, next to the current redis and ioredis), compiles the app,
// runs the quick start on the memory and Redis stores, and runs the app's own e2e test, which
// uses nestjs-sessions/testing. Needs a build (npm run build) and Redis (REDIS_URL).
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const APPS = ['nest11-cjs', 'nest12-esm'];
const only = process.argv.slice(2);

function run(cmd, args, cwd, label = `${cmd} ${args.join(' ')}`) {
  const started = Date.now();
  const result = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, NODE_OPTIONS: '', REDIS_URL },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 5 * 60_000,
  });
  const took = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    process.stdout.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    throw new Error(`${label} failed in ${relative(root, cwd) || cwd} (${took}s)`);
  }
  console.log(`consumers: ${label} (${took}s)`);
  return result.stdout;
}

/** Every source map of the installed package points at files that ship with it. */
function checkSourceMaps(pkgDir) {
  let maps = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.map')) {
        maps++;
        const { sources } = JSON.parse(readFileSync(path, 'utf8'));
        for (const source of sources) {
          if (!existsSync(resolve(dirname(path), source))) {
            throw new Error(`${relative(pkgDir, path)} points at ${source}, which is not shipped`);
          }
        }
      }
    }
  };
  walk(join(pkgDir, 'dist'));
  console.log(`consumers: ${maps} source maps point at shipped sources`);
}

/** Both builds of every entry point export the same names, resolved through the package's exports. */
const PARITY = `
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
for (const entry of ['', '/testing', '/redis', '/postgres', '/express', '/fastify']) {
  const name = 'nestjs-sessions' + entry;
  const esm = Object.keys(await import(name)).sort().join();
  const cjs = Object.keys(require(name)).filter((k) => k !== '__esModule').sort().join();
  if (esm !== cjs) throw new Error(name + ': ESM exports ' + esm + ' but CommonJS ' + cjs);
}
console.log('same exports in both builds');
`;

/** Starts the built app, walks the quick start over HTTP, stops it with SIGTERM. */
async function quickStart(dir, store) {
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: dir,
    env: { ...process.env, NODE_OPTIONS: '', PORT: '0', SESSION_STORE: store, REDIS_URL },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk) => (output += chunk));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line:\n${output}`)), 30_000);
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on (\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1].replace('[::1]', '127.0.0.1'));
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
  const call = async (method, path, cookie) => {
    const res = await fetch(new URL(path, url), { method, headers: cookie ? { cookie } : {} });
    return { status: res.status, text: await res.text(), setCookie: res.headers.get('set-cookie') };
  };
  const expect = (what, actual, expected) => {
    if (actual !== expected)
      throw new Error(`${what}: expected ${expected}, got ${actual}\n${output}`);
  };
  try {
    const created = await call('POST', '/create_session/bob');
    expect('POST /create_session/bob', created.text, 'Created session for bob');
    const cookie = created.setCookie?.split(';')[0];
    expect('GET /whoami', (await call('GET', '/whoami', cookie)).text, '{"username":"bob"}');
    expect('GET /whoami without a cookie', (await call('GET', '/whoami')).status, 401);
    expect('GET /admin as bob', (await call('GET', '/admin', cookie)).status, 403);
    expect('POST /delete_session', (await call('POST', '/delete_session', cookie)).status, 200);
    expect('GET /whoami after delete', (await call('GET', '/whoami', cookie)).status, 401);
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise((done) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done('hung after SIGTERM');
    }, 10_000);
    child.once('exit', (exitCode, signal) => {
      clearTimeout(timer);
      done(exitCode ?? signal);
    });
  });
  if (code !== 0 && code !== 'SIGTERM') throw new Error(`stopped with ${code}:\n${output}`);
  console.log(`consumers: quick start on ${store}: ok`);
}

const work = mkdtempSync(join(tmpdir(), 'sess-consumers-'));
try {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], root));
  const tarball = join(work, packed[0].filename);
  console.log(`consumers: packed ${packed[0].filename} (${packed[0].entryCount} files)`);
  for (const name of APPS.filter((app) => only.length === 0 || only.includes(app))) {
    const dir = join(work, name);
    cpSync(join(here, name), dir, { recursive: true });
    run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', tarball],
      dir,
    );
    if (name === APPS[0]) {
      checkSourceMaps(join(dir, 'node_modules/nestjs-sessions'));
      run(process.execPath, ['--input-type=module', '-e', PARITY], dir, 'export parity');
    }
    run('npm', ['run', 'build'], dir);
    for (const script of ['typecheck:nodenext', 'typecheck:bundler']) {
      const { scripts } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (scripts[script]) run('npm', ['run', script], dir);
    }
    for (const store of ['memory', 'redis', 'ioredis']) await quickStart(dir, store);
    if (existsSync(join(dir, 'dual-load.mjs'))) run(process.execPath, ['dual-load.mjs'], dir);
    run('npm', ['run', 'test:e2e', '--', '--ci'], dir);
    console.log(`consumers: ${name}: ok`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
