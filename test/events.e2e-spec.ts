import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  MemorySessionStore,
  SessionService,
  type SessionEvent,
  type SessionModuleOptions,
} from '../src/index.js';
import { TEST_SECRET, createFixtureApp, sessionCookie } from './support/app.js';
import { advanceClock, fakeClock } from './support/clock.js';
import { capturingLogger } from './support/logger.js';

/** A logger that keeps every line, at every level. */
describe('Session events (e2e)', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    jest.useRealTimers();
    await app?.close();
    app = undefined;
  });

  async function boot(options: Partial<SessionModuleOptions> = {}) {
    const events: SessionEvent[] = [];
    const logger = capturingLogger();
    app = await createFixtureApp(
      { onEvent: (event) => events.push(event), ...options },
      {},
      { logger },
    );
    return { events, logger, http: request(app.getHttpServer()) };
  }

  const ofType = (events: SessionEvent[], type: SessionEvent['type']) =>
    events.filter((event) => event.type === type);

  it('emits created, regenerated, destroyed, revoked and invalid as they happen (REV-7)', async () => {
    fakeClock();
    const { events, http } = await boot({ idleTimeout: '30m' });

    const created = await http.post('/set').send({ name: 'ann' }).expect(200);
    const anonymous = sessionCookie(created)!;
    expect(ofType(events, 'created')).toEqual([
      { type: 'created', at: expect.any(Number), ref: expect.any(String), userId: null },
    ]);
    const anonymousRef = events[0].ref;

    const login = await http
      .post('/login')
      .set('Cookie', anonymous)
      .send({ userId: 'u1' })
      .expect(200);
    const [regenerated] = ofType(events, 'regenerated');
    expect(regenerated).toMatchObject({ previousRef: anonymousRef, userId: 'u1' });
    expect(regenerated.ref).not.toBe(anonymousRef);

    await http.post('/destroy').set('Cookie', sessionCookie(login)!).expect(200);
    expect(ofType(events, 'destroyed')).toEqual([
      expect.objectContaining({ ref: regenerated.ref, userId: 'u1' }),
    ]);

    const [value] = sessionCookie(created)!.split('=').slice(1);
    await http
      .get('/read')
      .set('Cookie', `sid=${value.slice(0, -2)}xx`)
      .expect(200);
    expect(ofType(events, 'invalid')).toEqual([
      { type: 'invalid', at: expect.any(Number), reason: 'signature' },
    ]);

    // The store drops expired sessions itself: their cookie is reported as naming nothing.
    const idle = sessionCookie(await http.post('/set').send({ name: 'bob' }).expect(200))!;
    advanceClock(31 * 60_000);
    await http.get('/read').set('Cookie', idle).expect(200);
    expect(ofType(events, 'invalid')[1]).toMatchObject({
      reason: 'unknown',
      ref: ofType(events, 'created')[1].ref,
    });
    // So is a destroyed session's.
    await http.get('/read').set('Cookie', sessionCookie(login)!).expect(200);
    expect(ofType(events, 'invalid')[2]).toMatchObject({ reason: 'unknown', ref: regenerated.ref });

    const service = app!.get(SessionService);
    const other = await http.post('/login').send({ userId: 'u2' }).expect(200);
    await service.invalidateAllForUser('u2');
    const kept = await http.post('/set').send({ name: 'cy' }).expect(200);
    const { body } = await http.get('/id').set('Cookie', sessionCookie(kept)!).expect(200);
    await service.invalidate(body.id as string);
    expect(ofType(events, 'revoked')).toEqual([
      expect.objectContaining({ userId: 'u2', reason: 'invalidate-user', count: 1 }),
      expect.objectContaining({ ref: ofType(events, 'created').at(-1)!.ref, reason: 'invalidate' }),
    ]);
    expect(sessionCookie(other)).toBeDefined();
  });

  it('reports an expired session the store still held, with its reason (REV-7)', async () => {
    fakeClock();
    const store = new MemorySessionStore();
    // Written by an instance with a longer idle timeout, read by one with a shorter one.
    const lenient = await boot({ store, idleTimeout: '2h', anonymousIdleTimeout: '2h' });
    const cookie = sessionCookie(await lenient.http.post('/set').send({ name: 'ann' }))!;
    await app!.close();
    const strict = await boot({ store, idleTimeout: '30m' });
    advanceClock(40 * 60_000);
    await strict.http.get('/read').set('Cookie', cookie).expect(200);
    expect(strict.events).toEqual([
      {
        type: 'expired',
        at: expect.any(Number),
        ref: lenient.events[0].ref,
        userId: null,
        reason: 'idle',
      },
    ]);
    await store.close();
  });

  it('logs no line per visitor by default: a flood of first visits stays out of the log, forged cookies do not (log volume)', async () => {
    const { logger, http } = await boot({ onEvent: undefined });
    for (let i = 0; i < 30; i++) {
      const cookie = sessionCookie(await http.post('/set').send({ n: i }).expect(200))!;
      await http.post('/destroy').set('Cookie', cookie).expect(200);
    }
    const sessionLines = () => logger.lines.filter((line) => line.startsWith('Session '));
    expect(sessionLines()).toEqual([]);
    await http.get('/read').set('Cookie', 'sid=forged.value').expect(200);
    expect(sessionLines()).toEqual([expect.stringMatching(/^Session invalid reason signature/)]);
  });

  it('logs every event with a keyed hash of the id, never a token, an id or the secret (OBS-1)', async () => {
    const { logger, http } = await boot({ onEvent: undefined, logEvents: true });
    const created = await http.post('/set').send({ name: 'ann' }).expect(200);
    const first = sessionCookie(created)!;
    const firstId = (await http.get('/id').set('Cookie', first).expect(200)).body.id as string;
    const login = await http
      .post('/login')
      .set('Cookie', first)
      .send({ userId: 'user.not-in-logs' })
      .expect(200);
    const second = sessionCookie(login)!;
    const secondId = (await http.get('/id').set('Cookie', second).expect(200)).body.id as string;
    await http.post('/regenerate').set('Cookie', second).expect(200);
    await http.get('/read').set('Cookie', `${second}x`).expect(200);
    await http.post('/destroy').set('Cookie', second).expect(200);

    const text = logger.lines.join('\n');
    expect(text).toMatch(/Session created [\w-]{16}/);
    expect(text).toMatch(/Session regenerated [\w-]{16} \(was [\w-]{16}\)/);
    // A marker no 16-character ref can contain by chance ('.' is not in the ref alphabet).
    expect(text).not.toContain('user.not-in-logs');
    expect(text).toMatch(/Session invalid reason signature/);
    const secrets = [TEST_SECRET, firstId, secondId];
    for (const cookie of [first, second]) {
      const value = cookie.slice(cookie.indexOf('=') + 1);
      secrets.push(value, ...value.split('.'));
    }
    for (const secret of secrets) expect(text).not.toContain(secret);
  });

  it('emits in sealed mode too: created, invalid seal, expired', async () => {
    fakeClock();
    const { events, http } = await boot({ mode: 'sealed', idleTimeout: '30m' });
    const created = await http.post('/set').send({ name: 'ann' }).expect(200);
    const cookie = sessionCookie(created)!;
    await http.get('/read').set('Cookie', `${cookie}A`).expect(200);
    advanceClock(31 * 60_000);
    await http.get('/read').set('Cookie', cookie).expect(200);
    expect(events.map((event) => [event.type, event.reason])).toEqual([
      ['created', undefined],
      ['invalid', 'seal'],
      ['expired', 'idle'],
    ]);
  });

  it('logs forged cookies as warnings at most once per 10 s, counting the others', async () => {
    fakeClock();
    const { logger, http } = await boot({ onEvent: undefined });
    const forged = (i: number) => `sid=${'A'.repeat(43)}.${String(i).padStart(43, 'B')}`;
    for (let i = 0; i < 5; i++) await http.get('/read').set('Cookie', forged(i)).expect(200);
    advanceClock(11_000);
    await http.get('/read').set('Cookie', forged(9)).expect(200);
    expect(logger.lines.filter((line) => line.includes('Session invalid'))).toEqual([
      'Session invalid reason signature SessionModule',
      'Session invalid reason signature (4 more since the last warning) SessionModule',
    ]);
  });

  it('logs and ignores a listener that throws', async () => {
    const { logger, http } = await boot({
      onEvent: () => {
        throw new Error('listener broke');
      },
    });
    await http.post('/set').send({ name: 'ann' }).expect(200);
    expect(logger.lines.some((line) => /onEvent listener threw.*listener broke/.test(line))).toBe(
      true,
    );
  });
});
