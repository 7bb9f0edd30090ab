import type { INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule } from '../../sample-app/src/app.module.js';
import { loadConfig } from '../../sample-app/src/config.js';
import { TEST_ADAPTER, initApp } from './app.js';

/**
 * Boots the sample app in-process from environment variables, as `npm start` reads them, on the
 * run's adapter unless HTTP_ADAPTER says otherwise. PORT 0
 * puts the fake upstream beside it on an ephemeral port too. `app.close()` closes its store.
 */
export async function bootSampleApp(
  env: NodeJS.ProcessEnv,
): Promise<{ app: INestApplication; http: ReturnType<typeof request> }> {
  // A secret of its own unless the test says otherwise (SESSION_SECRET: '' tests the generated one).
  const secret = randomBytes(32).toString('base64url');
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    SESSION_SECRET: secret,
    HTTP_ADAPTER: TEST_ADAPTER,
    ...env,
  });
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.register(config)],
  }).compile();
  const app = await initApp(moduleRef as never, {}, config.adapter);
  return { app, http: request(app.getHttpServer()) };
}
