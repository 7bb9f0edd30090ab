import { Controller, Get, HttpCode, Param, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  Session,
  SessionLock,
  SessionModule,
  type SessionModuleOptions,
  type SessionStore,
} from '../../src/index.js';
import { TEST_SECRET, sessionCookie } from './app.js';
import { capturingLogger } from './logger.js';

interface LoadSession {
  userId?: string;
  writes?: number[];
}

/** Routes a load test drives: a login, a locked read-modify-write, a read. */
@Controller('load')
export class LoadController {
  @Post('login/:user')
  @HttpCode(200)
  async login(@Param('user') user: string, @Session() session: Session<LoadSession>) {
    await session.regenerate();
    session.data.userId = user;
    session.data.writes = [];
    return 'ok';
  }

  /** Appends `n` under the session lock: a lost write or a stuck lock shows up here. */
  @Post('write/:n')
  @HttpCode(200)
  @SessionLock()
  write(@Param('n') n: string, @Session() session: Session<LoadSession>) {
    session.data.writes = [...(session.data.writes ?? []), Number(n)];
    return { count: session.data.writes.length };
  }

  @Get('writes')
  writes(@Session() session: Session<LoadSession>) {
    return { userId: session.data.userId ?? null, writes: session.data.writes ?? [] };
  }
}

/** A Nest app with `SessionModule.forRoot({ store })` and the load routes; its log lines are kept. */
export async function loadApp(
  store: SessionStore,
  options: Partial<SessionModuleOptions> = {},
): Promise<{ app: INestApplication; http: ReturnType<typeof request>; log: string[] }> {
  const logger = capturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [
      SessionModule.forRoot({
        secret: TEST_SECRET,
        store,
        cookie: { secure: false },
        lockTimeout: 2_000,
        ...options,
      }),
    ],
    controllers: [LoadController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, http: request(app.getHttpServer()), log: logger.lines };
}

/** One answered request of the load. */
export interface LoadAnswer {
  readonly at: number;
  readonly status: number;
  readonly client: number;
  /** What a refusal said (its JSON `message`), kept to tell a 409 "busy" from a fencing one. */
  readonly message?: string;
}

/** A request the app has not answered by then counts as a failure (status 0), not a hang. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * `clients` users, each with its own session, each sending one locked write after another (so
 * `clients` requests are in flight at all times). Remembers every answer and every write that
 * was answered 200, to check afterwards that none of those was lost.
 */
export class SessionLoad {
  readonly answers: LoadAnswer[] = [];
  private readonly cookies: string[] = [];
  private readonly acked: number[][] = [];
  private running = false;
  private loops: Promise<void>[] = [];
  private seq = 0;

  constructor(
    private readonly http: ReturnType<typeof request>,
    private readonly clients = 8,
    private readonly label = 'u',
  ) {}

  /** Logs every client in (the store must be up). */
  async login(): Promise<void> {
    for (let i = 0; i < this.clients; i++) {
      const res = await this.http.post(`/load/login/${this.label}${i}`);
      if (res.status !== 200) throw new Error(`login answered ${res.status}`);
      this.cookies[i] = sessionCookie(res)!;
      this.acked[i] = [];
    }
  }

  start(): void {
    this.running = true;
    this.loops = this.cookies.map((_, i) => this.loop(i));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /** Answers received in [from, to). */
  between(from: number, to = Infinity): LoadAnswer[] {
    return this.answers.filter((a) => a.at >= from && a.at < to);
  }

  /** When every client has had a 200 at or after `from`: the moment the last one did. */
  allServedSince(from: number): number | undefined {
    let latest = 0;
    for (let i = 0; i < this.clients; i++) {
      const first = this.answers.find((a) => a.client === i && a.at >= from && a.status === 200);
      if (!first) return undefined;
      latest = Math.max(latest, first.at);
    }
    return latest;
  }

  /** Writes answered 200 that the store no longer has, over all clients (must be 0). */
  async lostWrites(): Promise<number> {
    let lost = 0;
    for (let i = 0; i < this.clients; i++) {
      const res = await this.http.get('/load/writes').set('Cookie', this.cookies[i]);
      if (res.status !== 200) throw new Error(`reading back answered ${res.status}`);
      const stored = new Set<number>(res.body.writes);
      lost += this.acked[i].filter((n) => !stored.has(n)).length;
    }
    return lost;
  }

  /** How many writes were answered 200 so far. */
  get ackedCount(): number {
    return this.acked.reduce((sum, list) => sum + list.length, 0);
  }

  private async loop(client: number): Promise<void> {
    while (this.running) {
      const n = ++this.seq;
      let status: number;
      let message: string | undefined;
      try {
        const res = await this.http
          .post(`/load/write/${n}`)
          .set('Cookie', this.cookies[client])
          .timeout(REQUEST_TIMEOUT_MS);
        status = res.status;
        if (status !== 200) message = String(res.body?.message ?? res.text);
      } catch {
        // The app did not answer (or not within the bound): counted as a failure by the checks.
        status = 0;
      }
      this.answers.push({ at: Date.now(), status, client, message });
      if (status === 200) this.acked[client].push(n);
      // A client that is refused at once does not spin: it retries a little later, as users do.
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Counts of each status among `answers`, e.g. `{ 200: 31, 503: 12 }`. */
export function statusCounts(answers: readonly LoadAnswer[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of answers) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}
