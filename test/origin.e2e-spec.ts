import { describe, expect, it } from '@jest/globals';
import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import request from 'supertest';
import {
  AllowCrossSite,
  Session,
  SessionOriginGuard,
  type SessionModuleOptions,
} from '../src/index.js';
import { APP_GUARD } from '@nestjs/core';
import { TEST_ADAPTER, createFixtureApp, guardedAppPerTest, sessionCookie } from './support/app.js';

@Controller('origin')
class OriginController {
  @Get('read')
  read(@Session('n') n: number | undefined) {
    return { n: n ?? 0 };
  }

  @Post('write')
  @HttpCode(200)
  write(@Session() session: Session<{ n?: number }>) {
    session.data.n = (session.data.n ?? 0) + 1;
    return { n: session.data.n };
  }

  @Post('hook')
  @HttpCode(200)
  @AllowCrossSite()
  hook() {
    return 'accepted';
  }
}

/** A POST from the page of the host a proxy says the client addressed. */
const viaProxy = (http: ReturnType<typeof request>) =>
  http
    .post('/origin/write')
    .set('X-Forwarded-Host', 'shop.example.com')
    .set('Origin', 'https://shop.example.com');

describe('SessionOriginGuard (e2e)', () => {
  const bootApp = guardedAppPerTest(OriginController, SessionOriginGuard);

  async function boot(options: Partial<SessionModuleOptions> = {}) {
    const app = await bootApp(options);
    // Listening on one port: the Origin of "this host" must stay the same across requests.
    await app.listen(0, '127.0.0.1');
    const self = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    return { http: request(self), self, app };
  }

  it('refuses a cross-site POST with the session cookie, lets the same origin and GETs through (CSRF-1)', async () => {
    const { http, self } = await boot();
    const first = await http.post('/origin/write').set('Origin', self).expect(200);
    const cookie = sessionCookie(first)!;

    const forged = await http
      .post('/origin/write')
      .set('Cookie', cookie)
      .set('Origin', 'https://evil.example')
      .expect(403);
    expect(forged.body.message).toBe('Cross-site request refused');
    expect(forged.headers['set-cookie']).toBeUndefined();
    await http
      .post('/origin/write')
      .set('Cookie', cookie)
      .set('Sec-Fetch-Site', 'cross-site')
      .set('Origin', self)
      .expect(403);

    await http
      .post('/origin/write')
      .set('Cookie', cookie)
      .set('Sec-Fetch-Site', 'same-origin')
      .expect(200);
    await http.post('/origin/write').set('Cookie', cookie).set('Origin', self).expect(200);
    const read = await http
      .get('/origin/read')
      .set('Cookie', cookie)
      .set('Sec-Fetch-Site', 'cross-site')
      .expect(200);
    expect(read.body).toEqual({ n: 3 });
  });

  it('refuses a state-changing request without Origin unless allowMissingOrigin (CSRF-1)', async () => {
    const strict = await boot();
    await strict.http.post('/origin/write').expect(403);
    await strict.http.post('/origin/write').set('Origin', 'null').expect(403);
    await strict.app.close();
    const lenient = await boot({ allowMissingOrigin: true });
    await lenient.http.post('/origin/write').expect(200);
    await lenient.http.post('/origin/write').set('Origin', 'https://evil.example').expect(403);
  });

  it('lets trusted origins and @AllowCrossSite() routes through', async () => {
    const { http } = await boot({ trustedOrigins: ['https://app.example.com'] });
    await http
      .post('/origin/write')
      .set('Origin', 'https://app.example.com')
      .set('Sec-Fetch-Site', 'same-site')
      .expect(200);
    await http.post('/origin/write').set('Origin', 'https://app.example.com').expect(200);
    await http.post('/origin/write').set('Origin', 'https://other.example.com').expect(403);
    await http
      .post('/origin/hook')
      .set('Origin', 'https://payments.example')
      .set('Sec-Fetch-Site', 'cross-site')
      .expect(200);
  });

  it("follows the framework's trust proxy setting when trustProxy is unset", async () => {
    if (TEST_ADAPTER === 'fastify') {
      const app = await createFixtureApp(
        {},
        {
          controllers: [OriginController],
          providers: [{ provide: APP_GUARD, useClass: SessionOriginGuard }],
        },
        { fastify: { trustProxy: true } },
      );
      try {
        await viaProxy(request(app.getHttpServer())).expect(200);
      } finally {
        await app.close();
      }
      return;
    }
    const { http, app } = await boot();
    const express = app.getHttpAdapter().getInstance() as {
      set(name: string, value: unknown): void;
    };
    express.set('trust proxy', true);
    await viaProxy(http).expect(200);
  });

  it('compares with X-Forwarded-Host only when a proxy is trusted', async () => {
    const behind = await boot({ trustProxy: true });
    await viaProxy(behind.http).expect(200);
    await behind.app.close();
    const direct = await boot({ trustProxy: false });
    await viaProxy(direct.http).expect(403);
  });
});
