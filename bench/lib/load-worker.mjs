// The load generator: a separate process running autocannon's programmatic API, driven over IPC by
// bench/run.mjs, so the app under test and the load generator never share an event loop.
//
// Request { type: 'run', id, url, method, path, cookie, cookieChain, connections, duration, body }
// Answer  { type: 'result', id, result } or { type: 'failed', id, error }
import autocannon from 'autocannon';

function sessionCookie(setCookie) {
  for (const line of [setCookie ?? []].flat()) {
    const pair = String(line).split(';', 1)[0];
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim() === 'sid' && pair.slice(eq + 1) !== '') return pair.trim();
  }
  return undefined;
}

async function run(job) {
  const headers = {};
  if (job.cookie) headers.cookie = job.cookie;
  if (job.body !== undefined) headers['content-type'] = 'application/json';
  const base = {
    method: job.method,
    headers,
    ...(job.body !== undefined ? { body: JSON.stringify(job.body) } : {}),
  };
  let requests;
  if (job.cookieChain) {
    // Browser-like logins: every request carries the live cookie a previous login returned (each
    // cookie is used once, as a regenerate ends it), so every login regenerates a stored session.
    // autocannon resets per-connection context between requests, hence the shared pool.
    const pool = job.cookie ? [job.cookie] : [];
    requests = [
      {
        ...base,
        path: job.path,
        setupRequest(req) {
          const cookie = pool.pop();
          const h = { ...req.headers };
          if (cookie) h.cookie = cookie;
          else delete h.cookie;
          return { ...req, headers: h };
        },
        onResponse(status, _body, _context, resHeaders) {
          const cookie = sessionCookie(resHeaders['set-cookie'] ?? resHeaders['Set-Cookie']);
          if (cookie) pool.push(cookie);
        },
      },
    ];
  }
  const result = await autocannon({
    // autocannon takes the path from the URL (a top-level `path` option is ignored).
    url: `${job.url}${job.path}`,
    connections: job.connections,
    duration: job.duration,
    pipelining: 1,
    timeout: 10,
    ...base,
    ...(requests ? { requests } : {}),
  });
  const seconds = result.duration || job.duration;
  return {
    rps: result.requests.total / seconds,
    total: result.requests.total,
    seconds,
    latency: {
      p50: result.latency.p50,
      p99: result.latency.p99,
      mean: result.latency.mean,
      max: result.latency.max,
    },
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    bytesPerResponse: result.requests.total ? result.throughput.total / result.requests.total : 0,
  };
}

process.on('disconnect', () => process.exit(0));
process.on('message', async (job) => {
  if (job?.type === 'stop') process.exit(0);
  if (job?.type !== 'run') return;
  try {
    process.send({ type: 'result', id: job.id, result: await run(job) });
  } catch (error) {
    process.send({ type: 'failed', id: job.id, error: String(error?.stack ?? error) });
  }
});
process.send({ type: 'ready' });
