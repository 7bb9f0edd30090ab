// Both builds of nestjs-sessions in one process: this ESM app imports the ESM build, and a
// CommonJS helper requires the CommonJS build. They must agree on tokens and request symbols, so
// the CommonJS testing helper works against the ESM app.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { NestFactory } from '@nestjs/core';
import * as esm from 'nestjs-sessions';
import { AppModule } from './dist/app.module.js';

const require = createRequire(import.meta.url);
const cjs = require('nestjs-sessions');
const cjsTesting = require('nestjs-sessions/testing');
assert.notEqual(cjs.SessionModule, esm.SessionModule, 'expected two builds in this process');
assert.equal(cjs.SESSION_STORE, esm.SESSION_STORE, 'the store token differs between builds');

const app = await NestFactory.create(AppModule, { logger: false });
await app.listen(0, '127.0.0.1');
try {
  const cookie = await cjsTesting.createSessionCookie(app, { username: 'dual', role: 'admin' });
  const res = await fetch(new URL('/admin', await app.getUrl()), { headers: { cookie } });
  assert.equal(res.status, 200, `GET /admin with a cookie from the CommonJS helper: ${res.status}`);
} finally {
  await app.close();
}
console.log('dual load: ok');
