#!/usr/bin/env node
// `npm test`: the whole suite. With no arguments, the Redis failover spec runs last, in a Jest
// process of its own: its kill -9 timings depend on the CPU the servers, the sentinels and both
// clients get, and on this project's 2-core machines Jest runs every other spec in one process
// before it, whose leftovers (timers, sockets, child processes) it would share. With arguments
// (`npm test -- --testPathPatterns cookies`), one Jest run with them, the failover spec included.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const jest = createRequire(import.meta.url).resolve('jest/bin/jest');
const nodeOptions = [
  process.env.NODE_OPTIONS,
  '--experimental-vm-modules',
  '--disable-warning=ExperimentalWarning',
]
  .filter(Boolean)
  .join(' ');

function run(args, env = {}) {
  const result = spawnSync(process.execPath, [jest, ...args], {
    stdio: 'inherit',
    env: { ...process.env, NODE_OPTIONS: nodeOptions, ...env },
  });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

const args = process.argv.slice(2);
if (args.length > 0) process.exit(run(args));
const main = run([], { SESSION_TEST_FAILOVER_APART: '1' });
const failover = run(['--selectProjects', 'e2e', '--testPathPatterns', 'redis-failover']);
process.exit(main || failover);
