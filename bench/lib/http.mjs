// A small HTTP client for the harness (logins, sanity checks, the lost-updates burst).
import { Buffer } from 'node:buffer';
import http from 'node:http';

/** One request; resolves `{ status, headers, body, json }`. */
export function request(url, { method = 'GET', cookie, body, agent, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: {
          ...(cookie ? { cookie } : {}),
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': payload.length }
            : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            // not JSON: callers look at `body`
          }
          resolve({ status: res.statusCode, headers: res.headers, body: text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.end(payload);
  });
}

/** The `name=value` pair of the session cookie `sid` in a response, or undefined (also when it is being cleared). */
export function sessionCookie(headers, name = 'sid') {
  for (const line of [headers['set-cookie'] ?? []].flat()) {
    const pair = line.split(';', 1)[0];
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq).trim() === name && pair.slice(eq + 1) !== '') return pair.trim();
  }
  return undefined;
}

/** Logs in (POST /login, no cookie) and returns the session cookie. */
export async function login(base) {
  const res = await request(`${base}/login`, { method: 'POST' });
  if (res.status !== 200)
    throw new Error(`POST /login answered ${res.status}: ${res.body.slice(0, 200)}`);
  const cookie = sessionCookie(res.headers);
  if (!cookie) throw new Error('POST /login set no session cookie');
  return cookie;
}
