import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, HttpCode, Post, UseGuards, type INestApplication } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiOkResponse, DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  AllowAnonymous,
  RequireSession,
  Session,
  SessionGuard,
  SessionModule,
  applySessionSecurity,
  type SessionModuleOptions,
} from '../src/index.js';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { TEST_ADAPTER, TEST_SECRET } from './support/app.js';

@Controller('docs')
class DocumentedController {
  @Get('open')
  open() {
    return 'open';
  }

  @Get('guarded')
  @UseGuards(SessionGuard)
  guarded(@Session() session: Session) {
    return session.data;
  }

  @Get('admin')
  @RequireSession((data: { role?: string }) => data.role === 'admin')
  admin() {
    return 'admin';
  }

  @Post('described')
  @HttpCode(200)
  @RequireSession()
  @ApiOkResponse({ description: 'The thing, described by its route' })
  described() {
    return 'described';
  }

  @Get('anonymous')
  @AllowAnonymous()
  anonymous() {
    return 'anonymous';
  }
}

@Controller('guarded-class')
@UseGuards(SessionGuard)
class GuardedController {
  @Post()
  create() {
    return 'created';
  }
}

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function document(
  options: Partial<SessionModuleOptions> = {},
  globalGuard = false,
): Promise<OpenAPIObject> {
  const moduleRef = await Test.createTestingModule({
    imports: [SessionModule.forRoot({ secret: TEST_SECRET, ...options })],
    controllers: [DocumentedController, GuardedController],
    providers: globalGuard ? [{ provide: APP_GUARD, useClass: SessionGuard }] : [],
  }).compile();
  app =
    TEST_ADAPTER === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  // As apps do it: the document is made before listen() / init().
  const config = new DocumentBuilder().setTitle('app').build();
  return applySessionSecurity(SwaggerModule.createDocument(app, config), app);
}

describe('OpenAPI (@nestjs/swagger)', () => {
  it('shows the session cookie scheme with the cookie name the module uses', async () => {
    const doc = await document({ cookie: { secure: true } });
    expect(doc.components?.securitySchemes?.session).toMatchObject({
      type: 'apiKey',
      in: 'cookie',
      name: '__Host-sid',
    });
    const renamed = await document({ cookie: { name: 'app_session' } });
    expect(renamed.components?.securitySchemes?.session).toMatchObject({ name: 'app_session' });
  });

  it('marks guarded routes with the scheme and their 401 / 403 / 503, and leaves the others alone', async () => {
    const { paths } = await document();
    expect(paths['/docs/open'].get?.security).toBeUndefined();
    expect(Object.keys(paths['/docs/open'].get?.responses ?? {})).toEqual(['200']);
    expect(paths['/docs/anonymous'].get?.security).toBeUndefined();

    const guarded = paths['/docs/guarded'].get!;
    expect(guarded.security).toEqual([{ session: [] }]);
    expect(Object.keys(guarded.responses).sort()).toEqual(['200', '401', '503']);
    expect(guarded.responses['401']).toMatchObject({ description: 'A valid session is required' });

    const admin = paths['/docs/admin'].get!;
    expect(Object.keys(admin.responses).sort()).toEqual(['200', '401', '403', '503']);

    // A route's own responses stay as it declared them.
    const described = paths['/docs/described'].post!;
    expect(described.responses['200']).toMatchObject({
      description: 'The thing, described by its route',
    });
    expect(Object.keys(described.responses).sort()).toEqual(['200', '401', '503']);

    // A guarded controller: its routes, with POST's default 201.
    const created = paths['/guarded-class'].post!;
    expect(created.security).toEqual([{ session: [] }]);
    expect(Object.keys(created.responses).sort()).toEqual(['201', '401', '503']);
  });

  it('with SessionGuard as APP_GUARD, every route but @AllowAnonymous() ones is guarded', async () => {
    const { paths } = await document({}, true);
    expect(paths['/docs/open'].get?.security).toEqual([{ session: [] }]);
    expect(paths['/docs/anonymous'].get?.security).toBeUndefined();
  });

  it('documents what the routes do: the guarded route answers 401 without a cookie', async () => {
    await document();
    await app!.init();
    if (TEST_ADAPTER === 'fastify') {
      await (app!.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
    }
    await request(app!.getHttpServer()).get('/docs/guarded').expect(401);
    await request(app!.getHttpServer()).get('/docs/open').expect(200);
  });
});
