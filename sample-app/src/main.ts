import 'reflect-metadata';
import cluster from 'node:cluster';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule } from './app.module.js';
import { loadConfig, type SampleConfig } from './config.js';
import { startFakeUpstream } from './upstream/fake-upstream.js';
import { loadUpstreamSettings } from './upstream/upstream.module.js';

const logger = new Logger('SampleApp');

/** Most worker processes WORKERS may ask for. */
const MAX_WORKERS = 64;

/** WORKERS: how many processes share the port (default 1: this process serves alone). */
function workerCount(env: NodeJS.ProcessEnv = process.env): number {
  const raw = (env.WORKERS ?? '1').trim();
  const count = Number(raw);
  if (!/^\d+$/.test(raw) || count < 1 || count > MAX_WORKERS) {
    throw new Error(`WORKERS must be a whole number from 1 to ${MAX_WORKERS} (got "${raw}")`);
  }
  return count;
}

/** One server process: the Nest app on PORT. */
async function serve(config: SampleConfig): Promise<void> {
  const module = AppModule.register(config);
  const app =
    config.adapter === 'fastify'
      ? await NestFactory.create(module, new FastifyAdapter())
      : await NestFactory.create(module);
  app.enableShutdownHooks();
  await app.listen(config.port, '0.0.0.0');
  const who = cluster.isWorker ? `worker ${cluster.worker?.id} (pid ${process.pid})` : 'server';
  logger.log(
    `Listening on http://localhost:${config.port} (${config.adapter}, session store: ${config.store}, ${who})`,
  );
}

/**
 * The primary of `WORKERS=N npm start`: forks N workers that share one port (`node:cluster`
 * hands connections to them in turn), replaces a worker that dies after it started, and stops
 * them all on SIGINT/SIGTERM. Refuses the memory store: every worker would keep its own sessions.
 */
async function supervise(config: SampleConfig, workers: number): Promise<void> {
  if (config.store === 'memory') {
    logger.error(
      `WORKERS=${workers} needs a shared session store, but SESSION_STORE is memory: each worker ` +
        'would keep its own sessions in its own memory, so a user logged in through one worker ' +
        'would be anonymous on the next request, which another worker serves. Set ' +
        'SESSION_STORE=redis (with REDIS_URL) or SESSION_STORE=postgres (with DATABASE_URL), or ' +
        'run a single process (WORKERS=1). Not starting.',
    );
    process.exit(1);
  }
  if (config.store === 'cookie') {
    logger.error(
      `WORKERS=${workers}: SESSION_STORE=cookie keeps its logout deny list in each process's memory, ` +
        'so a logout seen by one worker would not reach the others. Run a single process (WORKERS=1). Not starting.',
    );
    process.exit(1);
  }
  logger.log(`Starting ${workers} workers on port ${config.port} (session store: ${config.store})`);
  const listening = new Set<number>();
  let stopping = false;
  let exitCode = 0;

  cluster.on('listening', (worker) => listening.add(worker.id));
  cluster.on('exit', (worker, code, signal) => {
    const started = listening.delete(worker.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode);
      return;
    }
    if (!started) {
      // A worker that cannot even start will not start on a retry either: stop, do not loop.
      logger.error(`A worker failed to start (${signal ?? `exit code ${code}`}); stopping.`);
      stopping = true;
      exitCode = 1;
      for (const other of Object.values(cluster.workers ?? {})) other?.process.kill('SIGTERM');
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(1);
      return;
    }
    logger.warn(`Worker ${worker.id} exited (${signal ?? `exit code ${code}`}); starting another`);
    cluster.fork();
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      stopping = true;
      const alive = Object.values(cluster.workers ?? {});
      if (alive.length === 0) process.exit(exitCode);
      for (const worker of alive) worker?.process.kill(signal);
    });
  }
  if (!process.env.UPSTREAM_URL) {
    // One fake upstream for all workers (they inherit UPSTREAM_URL), so they share its logins.
    const { port, sessionTtlMs, username, password } = loadUpstreamSettings();
    const upstream = await startFakeUpstream({ port, sessionTtlMs, username, password });
    process.env.UPSTREAM_URL = upstream.url;
  }
  for (let i = 0; i < workers; i++) cluster.fork();
}

async function main(): Promise<void> {
  const config = loadConfig();
  if (cluster.isPrimary) {
    const workers = workerCount();
    if (workers > 1) return supervise(config, workers);
  }
  await serve(config);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
