import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { MemorySessionStore, SessionModule, type SessionModuleOptions } from '../src/index.js';
import { RedisSessionStore } from '../src/redis/index.js';
import { SessionHealthIndicator } from '../src/terminus/index.js';
import { TEST_SECRET, initApp } from './support/app.js';
import { overriding, storesUnderTest } from './support/stores.js';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly sessions: SessionHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.sessions.isHealthy('sessions', { timeout: '200ms' })]);
  }
}

@Module({
  imports: [TerminusModule],
  controllers: [HealthController],
  providers: [SessionHealthIndicator],
})
class HealthModule {}

const { stores, dropSchema } = await storesUnderTest('health');
afterAll(dropSchema);

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function health(options: Partial<SessionModuleOptions>) {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ secret: TEST_SECRET, ...options }), HealthModule],
  }).compile();
  app = await initApp(moduleRef as never);
  return request(app.getHttpServer()).get('/health');
}

describe('SessionHealthIndicator (@nestjs/terminus)', () => {
  for (const store of stores) {
    store.describe(`on the ${store.name} store`, () => {
      it('is up, with the store’s own description and the latency', async () => {
        const res = await health({ store: store.create() });
        expect(res.status).toBe(200);
        expect(res.body.status).toBe('ok');
        expect(res.body.info.sessions).toMatchObject({ status: 'up' });
        expect(typeof res.body.info.sessions.store).toBe('string');
        expect(res.body.info.sessions.latencyMs).toBeGreaterThanOrEqual(0);
        // No secret, no connection string with a password, reaches the report.
        expect(JSON.stringify(res.body)).not.toContain(TEST_SECRET);
      });
    });
  }

  it('is down (503) when the store does not answer within the timeout', async () => {
    const hung = overriding(new MemorySessionStore(), { load: () => new Promise(() => {}) });
    const res = await health({ store: hung });
    expect(res.status).toBe(503);
    expect(res.body.error.sessions).toMatchObject({
      status: 'down',
      error: 'no answer within 200 ms',
    });
  });

  it('is down (503) when the store reports itself unhealthy', async () => {
    // Nothing listens on this port: the store's own PING fails.
    const store = new RedisSessionStore({ url: 'redis://127.0.0.1:1', connectTimeout: 100 });
    const res = await health({ store });
    expect(res.status).toBe(503);
    expect(res.body.error.sessions).toMatchObject({ status: 'down', store: expect.any(String) });
  });

  it('is up in sealed mode without a revocation store: there is nothing to reach', async () => {
    const res = await health({ mode: 'sealed' });
    expect(res.status).toBe(200);
    expect(res.body.info.sessions).toMatchObject({ status: 'up', store: 'none (sealed cookies)' });
  });
});
