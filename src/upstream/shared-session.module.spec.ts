import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  InjectSharedSession,
  SharedSessionClient,
  SharedSessionConfigError,
  SharedSessionModule,
  SharedSessionUnavailableException,
  getSharedSessionToken,
  type SharedSessionLoginContext,
  type SharedSessionOptions,
  type SharedSessionOptionsFactory,
} from './index.js';

/** An upstream that accepts any login and tells which cookie it received. */
let server: Server;
let baseUrl: string;
let logins = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/login') {
      logins++;
      res.writeHead(204, { 'set-cookie': `sid=s${logins}; Path=/` }).end();
      return;
    }
    if (!req.headers.cookie) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ cookie: req.headers.cookie }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const login = async (ctx: SharedSessionLoginContext) => {
  const res = await ctx.post('/login', { user: 'svc' });
  if (!res.ok) throw new Error('refused');
};

@Injectable()
class ConfigLike {
  readonly url = () => baseUrl;
}

@Module({ providers: [ConfigLike], exports: [ConfigLike] })
class ConfigLikeModule {}

@Injectable()
class CrmOptions implements SharedSessionOptionsFactory {
  constructor(private readonly config: ConfigLike) {}
  createSharedSessionOptions(): SharedSessionOptions {
    return { baseUrl: this.config.url(), login, logger: false };
  }
}

@Injectable()
class Consumer {
  constructor(
    @InjectSharedSession('billing') readonly billing: SharedSessionClient,
    @InjectSharedSession('crm') readonly crm: SharedSessionClient,
  ) {}
}

describe('SharedSessionModule', () => {
  it('registers one injectable client per upstream name, with register and registerAsync', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SharedSessionModule.register({ name: 'billing', baseUrl, login, logger: false }),
        SharedSessionModule.registerAsync({
          name: 'crm',
          imports: [ConfigLikeModule],
          useClass: CrmOptions,
        }),
      ],
      providers: [Consumer],
    }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    try {
      const consumer = app.get(Consumer);
      expect(consumer.billing).toBeInstanceOf(SharedSessionClient);
      expect(consumer.billing.name).toBe('billing');
      expect(consumer.crm.name).toBe('crm');
      expect(consumer.billing).not.toBe(consumer.crm);
      expect(app.get(getSharedSessionToken('crm'))).toBe(consumer.crm);

      const res = await consumer.crm.get('/data');
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ cookie: expect.stringMatching(/^sid=s\d+$/) });
    } finally {
      await app.close();
    }
  });

  it('passes injected providers to useFactory', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SharedSessionModule.registerAsync({
          name: 'crm',
          imports: [ConfigLikeModule],
          inject: [ConfigLike],
          useFactory: (config: ConfigLike) => ({ baseUrl: config.url(), login, logger: false }),
        }),
      ],
    }).compile();
    const client = moduleRef.get<SharedSessionClient>(getSharedSessionToken('crm'));
    expect((await client.get('/data')).status).toBe(200);
    await moduleRef.close();
  });

  it('closes the client on application shutdown', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [SharedSessionModule.register({ name: 'billing', baseUrl, login, logger: false })],
    }).compile();
    const app = moduleRef.createNestApplication();
    app.enableShutdownHooks();
    await app.init();
    const client = app.get<SharedSessionClient>(getSharedSessionToken('billing'));
    await app.close();
    await expect(client.get('/data')).rejects.toBeInstanceOf(SharedSessionUnavailableException);
  });

  it('fails at registration when the options are wrong, saying what to change', () => {
    expect(() =>
      SharedSessionModule.register({ name: 'billing', baseUrl: 'not a url', login }),
    ).toThrow(/Invalid shared session options for "billing": baseUrl must be an absolute http/);
    expect(() => SharedSessionModule.registerAsync({ name: 'crm' })).toThrow(
      SharedSessionConfigError,
    );
    expect(() =>
      SharedSessionModule.registerAsync({
        name: 'bad name!',
        useFactory: () => ({ baseUrl, login }),
      }),
    ).toThrow(/name must be/);
  });

  it('fails at boot when an async factory returns wrong options', async () => {
    const building = Test.createTestingModule({
      imports: [
        SharedSessionModule.registerAsync({
          name: 'crm',
          useFactory: () => ({ baseUrl, login, retries: 99 }),
        }),
      ],
    }).compile();
    await expect(building).rejects.toThrow(/retries must be a whole number/);
  });
});
