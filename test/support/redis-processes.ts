import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** True when redis-server and redis-cli are installed (CI has them). */
export const haveRedisBinaries =
  spawnSync('redis-server', ['--version']).status === 0 &&
  spawnSync('redis-cli', ['--version']).status === 0;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free loopback ports whose +10000 (Cluster bus) ports are free too. */
export async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 30_000 + Math.floor((randomBytes(2).readUInt16BE() / 65_536) * 9_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const all = ports.flatMap((p) => [p, p + 10_000]);
    if ((await Promise.all(all.map(portFree))).every(Boolean)) return ports;
  }
  throw new Error('no free ports for test Redis processes');
}

export function cli(port: number, ...args: string[]): string {
  const out = spawnSync('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 });
  return `${out.stdout?.toString() ?? ''}${out.stderr?.toString() ?? ''}`;
}

/**
 * Whether a write on the primary at `port` is acknowledged by a replica within 500 ms (what
 * `waitForReplicas: 1` asks of every write). Just after a replica's first sync the first `WAIT`
 * can still time out, so a group is ready for durable writes only once this is true.
 */
export function replicatesWrites(port: number): boolean {
  const out = spawnSync('redis-cli', ['-p', String(port)], {
    input: 'SET __replication_probe 1\nWAIT 1 500\nDEL __replication_probe\n',
    timeout: 10_000,
  });
  return out.stdout?.toString().split('\n')[1]?.trim() === '1';
}

/**
 * Redis processes a test starts on loopback (servers and sentinels), all killed and their temp
 * dir removed by `dispose()`. The shared server on 6379 is never touched.
 */
export class RedisProcesses {
  private tempDir: string | undefined;

  /** The temp dir of this group's files, made on first use (a skipped suite leaves nothing). */
  get dir(): string {
    return (this.tempDir ??= mkdtempSync(join(tmpdir(), 'sess-redis-')));
  }
  private readonly children = new Map<number, ChildProcess>();
  private readonly args = new Map<number, string[]>();

  /** Starts redis-server on `port` with extra arguments, and waits for PONG. */
  async server(port: number, extra: string[] = []): Promise<void> {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--dbfilename',
      `dump-${port}.rdb`,
      '--appendonly',
      'no',
      '--save',
      '',
      '--daemonize',
      'no',
      // A replica that (re)joins syncs at once instead of after Redis's default 5 s: the time a
      // failover leaves the new primary without a replica to acknowledge WAIT (docs/redis.md).
      '--repl-diskless-sync-delay',
      '0',
      ...extra,
    ];
    this.args.set(port, args);
    await this.launch(port, args);
  }

  /** Starts a sentinel on `port` monitoring `name` at `masterPort` (quorum 2, 1 s down-after). */
  async sentinel(port: number, name: string, masterPort: number): Promise<void> {
    const file = join(this.dir, `sentinel-${port}.conf`);
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${this.dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 4000`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    );
    const args = [file, '--sentinel'];
    this.args.set(port, args);
    await this.launch(port, args);
  }

  /** kill -9. */
  async kill(port: number): Promise<void> {
    const child = this.children.get(port);
    this.children.delete(port);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts a killed process again with its first arguments and `extra` (a node rejoining). */
  async restart(port: number, extra: string[] = []): Promise<void> {
    await this.launch(port, [...this.args.get(port)!, ...extra]);
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.children.keys()].map((port) => this.kill(port)));
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
  }

  private async launch(port: number, args: string[]): Promise<void> {
    this.children.set(port, spawn('redis-server', args, { stdio: 'ignore' }));
    for (let i = 0; i < 200; i++) {
      if (cli(port, 'ping').includes('PONG')) return;
      await sleep(25);
    }
    throw new Error(`redis process on ${port} did not start`);
  }
}

/** Polls `check` every 100 ms until it is true, for at most `ms`. */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
