// The wrk load generator: one `wrk` process per measurement (C, epoll, one thread by default), with
// bench/lib/wrk.lua for the method, the cookie, the /login cookie chain and a JSON summary.
// Same job fields and result shape as the autocannon worker (lib/load-worker.mjs).
import { execFileSync, spawn } from 'node:child_process';
import { URL, fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./wrk.lua', import.meta.url));

/** The `wrk` on PATH, or undefined. */
export function wrkVersion() {
  try {
    const out = execFileSync('wrk', ['--version'], { encoding: 'utf8', stdio: 'pipe' });
    return out.split('\n')[0].trim();
  } catch (error) {
    // wrk --version exits 1 after printing its banner.
    const text = String(error?.stdout ?? '');
    return /wrk/.test(text) ? text.split('\n')[0].trim() : undefined;
  }
}

export function startWrk({ threads = 1 } = {}) {
  const live = new Set();
  return {
    name: 'wrk',
    run(job) {
      return new Promise((resolve, reject) => {
        const args = [
          `-t${Math.min(threads, job.connections)}`,
          `-c${job.connections}`,
          `-d${job.duration}s`,
          '--timeout',
          '10s',
          '-s',
          script,
          `${job.url}${job.path}`,
        ];
        const child = spawn('wrk', args, {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...process.env,
            BENCH_METHOD: job.method,
            BENCH_COOKIE: job.cookie ?? '',
            BENCH_CHAIN: job.cookieChain ? '1' : '0',
          },
        });
        live.add(child);
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('error', reject);
        child.on('exit', (code) => {
          live.delete(child);
          const m = /BENCH_JSON (\{.*\})/.exec(out);
          if (code !== 0 || !m) return reject(new Error(`wrk exited ${code}: ${out.slice(-500)}`));
          const r = JSON.parse(m[1]);
          const seconds = r.duration_us / 1e6;
          // wrk counts a status >= 400 as a "status" error; socket errors are the rest.
          resolve({
            rps: r.requests / seconds,
            total: r.requests,
            seconds,
            latency: {
              p50: r.p50_us / 1000,
              p99: r.p99_us / 1000,
              mean: r.mean_us / 1000,
              max: r.max_us / 1000,
            },
            ok: r.requests - r.status,
            non2xx: r.status,
            errors: r.connect + r.read + r.write,
            timeouts: r.timeout,
            bytesPerResponse: r.requests ? r.bytes / r.requests : 0,
          });
        });
      });
    },
    async stop() {
      for (const child of live) child.kill('SIGTERM');
    },
  };
}
