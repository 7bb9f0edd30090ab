import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVICES, describeWithService } from './support/services.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const describeRedis = await describeWithService('redis');
const describeBoth =
  (await describeWithService('postgres')) === describe ? describeRedis : describe.skip;

/** How long the inner Jest may take before it counts as hanging (its tests take ~2 s). */
const HANG_AFTER_MS = 60_000;

describeBoth('Shutdown (e2e)', () => {
  it(
    'app.close() closes the stores forRootAsync built and the revocation store, so Jest exits by itself',
    async () => {
      const jest = join(ROOT, 'node_modules/jest/bin/jest.js');
      const child = spawn(
        process.execPath,
        [
          jest,
          '--config',
          join(ROOT, 'jest.config.js'),
          '--rootDir',
          ROOT,
          '--roots',
          '<rootDir>/test/fixtures/shutdown',
          '--testRegex',
          'app-close\\.fixture\\.ts$',
          '--ci',
          '--selectProjects',
          'e2e',
        ],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            NODE_OPTIONS: '--experimental-vm-modules --disable-warning=ExperimentalWarning',
            SHUTDOWN_REDIS_URL: SERVICES.redis.url,
            SHUTDOWN_DATABASE_URL: SERVICES.postgres.url,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk));
      const code = await new Promise<number | string>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve('hung');
        }, HANG_AFTER_MS);
        child.once('exit', (exitCode) => {
          clearTimeout(timer);
          resolve(exitCode ?? 'killed');
        });
      });
      if (code !== 0) console.error(output);
      expect(code).toBe(0);
      expect(output).toMatch(/Tests:\s+3 passed, 3 total/);
      expect(output).not.toMatch(/did not exit/);
    },
    HANG_AFTER_MS + 10_000,
  );
});
