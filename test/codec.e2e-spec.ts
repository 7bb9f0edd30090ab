import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { Body, Controller, Get, HttpCode, Post, type INestApplication } from '@nestjs/common';
import request from 'supertest';
import { Session, type SessionModuleOptions } from '../src/index.js';
import { createFixtureApp, sessionCookie } from './support/app.js';
import { storesUnderTest } from './support/stores.js';

interface Typed {
  when?: Date;
  bytes?: Buffer;
  nested?: {
    at: Date;
    parts: Uint8Array[];
    label: string;
    tagLike: { $date: string; x: number };
    escaped: { $binary: string };
  };
}

@Controller('codec')
class CodecController {
  @Post('save')
  @HttpCode(200)
  save(@Body() body: { at: string; text: string }, @Session() session: Session<Typed>) {
    session.data.when = new Date(body.at);
    session.data.bytes = Buffer.from(body.text);
    session.data.nested = {
      at: new Date(body.at),
      parts: [new Uint8Array([1, 2, 255])],
      label: '$date',
      tagLike: { $date: 'not a tag: two keys', x: 1 },
      escaped: { $binary: 'AAAA' },
    };
    return 'saved';
  }

  @Get('read')
  read(@Session() session: Session<Typed>) {
    const { when, bytes, nested } = session.data;
    return {
      when: when instanceof Date ? when.toISOString() : `not a Date: ${typeof when}`,
      bytes: Buffer.isBuffer(bytes) ? bytes.toString() : `not a Buffer: ${typeof bytes}`,
      nestedAt: nested?.at instanceof Date ? nested.at.getTime() : null,
      part: Buffer.isBuffer(nested?.parts[0]) ? [...nested.parts[0]] : null,
      label: nested?.label,
      tagLike: nested?.tagLike,
      escaped: nested?.escaped,
    };
  }
}

const { stores, dropSchema } = await storesUnderTest('codec');
const STORES: Array<{
  name: string;
  describe: typeof describe;
  options: () => Partial<SessionModuleOptions>;
}> = [
  ...stores.map(({ name, describe, create }) => ({
    name,
    describe,
    options: () => ({ store: create() }),
  })),
  { name: 'sealed', describe, options: () => ({ mode: 'sealed' }) },
];

let app: INestApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

for (const { name, describe: describeStore, options } of STORES) {
  describeStore(`Dates and bytes in the session (e2e, ${name})`, () => {
    it('come back as Date and Buffer, at any depth, and nothing else is revived (ST-11)', async () => {
      const resolved = options();
      app = await createFixtureApp(resolved, { controllers: [CodecController] });
      const http = request(app.getHttpServer());
      const at = '2026-11-27T10:11:12.345Z';
      const saved = await http.post('/codec/save').send({ at, text: 'héllo' }).expect(200);
      const cookie = sessionCookie(saved)!;
      const read = await http.get('/codec/read').set('Cookie', cookie).expect(200);
      expect(read.body).toEqual({
        when: at,
        bytes: 'héllo',
        nestedAt: Date.parse(at),
        part: [1, 2, 255],
        label: '$date',
        tagLike: { $date: 'not a tag: two keys', x: 1 },
        escaped: { $binary: 'AAAA' },
      });
      // Read again unchanged: the tagged texts compare equal, so nothing is written.
      const again = await http.get('/codec/read').set('Cookie', cookie).expect(200);
      expect(again.headers['set-cookie']).toBeUndefined();
      await http.post('/destroy').set('Cookie', sessionCookie(again) ?? cookie);
      await app.close();
      app = undefined;
      await resolved.store?.close?.();
    });

    it('keeps NUL and unpaired surrogates in values exactly, and refuses them in keys and user ids with 400, never a 500', async () => {
      const resolved = options();
      app = await createFixtureApp(resolved);
      const http = request(app.getHttpServer());
      const odd = {
        item: 'a\u0000b',
        lone: '\ud800',
        low: 'x\udc00',
        pair: '😀',
        deep: ['\u0000'],
      };
      const saved = await http.post('/set').send(odd).expect(200);
      const cookie = sessionCookie(saved)!;
      const read = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(read.body.data).toEqual(odd);
      await http.post('/set').set('Cookie', cookie).send({ 'bad\u0000key': 1 }).expect(400);
      await http
        .post('/set')
        .set('Cookie', cookie)
        .send({ nested: { 'k\ud800': 1 } })
        .expect(400);
      await http.post('/login').set('Cookie', cookie).send({ userId: 'a\u0000b' }).expect(400);
      await http.post('/login').set('Cookie', cookie).send({ userId: '\udfff' }).expect(400);
      // Nothing of the refused requests was written.
      const after = await http.get('/read').set('Cookie', cookie).expect(200);
      expect(after.body.data).toEqual(odd);
      await app.close();
      app = undefined;
      await resolved.store?.close?.();
    });
  });
}

afterAll(async () => {
  await dropSchema();
});
