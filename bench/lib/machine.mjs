// The machine and software the numbers were taken on.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { wrkVersion } from './wrk.mjs';

const require = createRequire(import.meta.url);

function version(name) {
  try {
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  } catch {
    try {
      // Packages whose exports hide package.json: walk up from the entry point.
      let dir = require.resolve(name);
      while (dir !== '/') {
        dir = dir.slice(0, dir.lastIndexOf('/'));
        try {
          const pkg = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));
          if (pkg.name === name || dir.endsWith(`/node_modules/${name}`)) return pkg.version;
        } catch {
          // no package.json at this level
        }
      }
    } catch {
      // not installed
    }
    return '?';
  }
}

function git(args) {
  try {
    return execFileSync('git', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return '?';
  }
}

export function describeMachine() {
  const cpus = os.cpus();
  const dirty = git(['status', '--porcelain', '--', 'src']) !== '';
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
    commit: `${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' (src/ has uncommitted changes)' : ''}`,
    versions: Object.fromEntries(
      [
        '@nestjs/core',
        '@nestjs/platform-express',
        'express',
        '@nestjs/platform-fastify',
        'fastify',
        'express-session',
        // The bench apps' node-redis and connect-redis (aliases next to the tests' own versions).
        'connect-redis-10',
        'redis-6',
        'iron-session',
        '@fastify/session',
        '@fastify/cookie',
        '@fastify/secure-session',
        'pg',
        'autocannon',
      ].map((n) => [n, version(n)]),
    ),
    wrk: wrkVersion() ?? 'not installed',
  };
}

export function machineMarkdown(m, loadAfter) {
  const v = Object.entries(m.versions)
    .map(([n, ver]) => `${n} ${ver}`)
    .join(', ');
  return [
    `- Date: ${m.date}`,
    `- CPU: ${m.cpu}, ${m.cores} cores (as seen by the OS); ${m.memoryGiB} GiB RAM; ${m.os}`,
    `- Node ${m.node}; nestjs-sessions at ${m.commit}`,
    `- Load average (1/5/15 min) at start: ${m.loadAverage.join(' / ')}` +
      (loadAfter ? `; at end: ${loadAfter.map((x) => x.toFixed(2)).join(' / ')}` : ''),
    `- ${v}; ${m.wrk ?? ''}`,
  ].join('\n');
}
