import { expect, it, jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { capturingLogger } from './support/logger.js';

// The app installed ioredis (or nothing) but not `redis`: importing it fails as Node would.
jest.unstable_mockModule('redis', () => {
  throw Object.assign(new Error("Cannot find package 'redis'"), { code: 'ERR_MODULE_NOT_FOUND' });
});

const { SessionStoreUnavailableError } = await import('../src/index.js');
const { RedisSessionStore } = await import('../src/redis/index.js');

it('says at boot that RedisSessionStore({ url }) needs the "redis" package, once, and refuses calls at once', async () => {
  const log = capturingLogger();
  Logger.overrideLogger(log);
  try {
    const store = new RedisSessionStore({ url: 'redis://default:hunter2@127.0.0.1:6379' });
    for (let i = 0; i < 50 && log.lines.length === 0; i++) await sleep(10);
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatch(
      /needs the "redis" package, which is not installed: run `npm install redis`/,
    );
    expect(log.lines[0]).not.toContain('hunter2');
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      await expect(store.load('a'.repeat(43))).rejects.toBeInstanceOf(SessionStoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(100);
    }
    expect(log.lines).toHaveLength(1);
    await store.close();
  } finally {
    Logger.overrideLogger(false);
  }
});
