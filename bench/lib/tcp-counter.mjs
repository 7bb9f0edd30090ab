// A counting TCP proxy between an app and its store (Redis or PostgreSQL). It counts round trips
// (a burst of client bytes sent while no reply is pending starts one) and commands (Redis: RESP
// arrays; PostgreSQL: Query and Execute messages) per direction, without touching the bytes. Only
// the app's own connections pass through it, so other users of the same server do not count.
import { Buffer } from 'node:buffer';
import net from 'node:net';

class RespCommands {
  constructor(onCommand) {
    this.buf = Buffer.alloc(0);
    this.onCommand = onCommand;
  }
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const used = this.parse();
      if (used === 0) return;
      this.buf = this.buf.subarray(used);
    }
  }
  // One command (`*N` array of `$len` bulk strings); returns bytes used, 0 when incomplete.
  parse() {
    const b = this.buf;
    if (b.length === 0) return 0;
    if (b[0] !== 0x2a) {
      // Inline command: one line.
      const end = b.indexOf('\r\n');
      if (end < 0) return 0;
      this.onCommand(b.subarray(0, end).toString().split(' ')[0].toUpperCase());
      return end + 2;
    }
    let pos = b.indexOf('\r\n');
    if (pos < 0) return 0;
    const n = Number(b.subarray(1, pos).toString());
    pos += 2;
    let name;
    for (let i = 0; i < n; i++) {
      const lineEnd = b.indexOf('\r\n', pos);
      if (lineEnd < 0) return 0;
      const len = Number(b.subarray(pos + 1, lineEnd).toString());
      const start = lineEnd + 2;
      if (b.length < start + len + 2) return 0;
      if (i === 0)
        name = b
          .subarray(start, start + len)
          .toString()
          .toUpperCase();
      pos = start + len + 2;
    }
    this.onCommand(name);
    return pos;
  }
}

/** The first `n` NUL-terminated strings of a PostgreSQL message body. */
function cstrings(body, n) {
  const out = [];
  let pos = 0;
  while (out.length < n && pos <= body.length) {
    const end = body.indexOf(0, pos);
    if (end < 0) break;
    out.push(body.subarray(pos, end).toString());
    pos = end + 1;
  }
  return out;
}

/** `SELECT`, `INSERT`, … of a statement (a leading WITH counts as itself). */
const verb = (sql = '') => (/^\s*([A-Za-z]+)/.exec(sql)?.[1] ?? 'SQL').toUpperCase();

class PgMessages {
  constructor(onCommand) {
    this.buf = Buffer.alloc(0);
    this.startup = true;
    this.onCommand = onCommand;
    this.statements = new Map();
    this.bound = undefined;
  }
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      const b = this.buf;
      if (this.startup) {
        if (b.length < 8) return;
        const len = b.readInt32BE(0);
        if (b.length < len) return;
        const code = b.readInt32BE(4);
        // SSLRequest / GSSENCRequest are followed by another untyped startup message.
        if (code !== 80877103 && code !== 80877104) this.startup = false;
        this.buf = b.subarray(len);
        continue;
      }
      if (b.length < 5) return;
      const len = b.readInt32BE(1);
      if (b.length < 1 + len) return;
      const type = String.fromCharCode(b[0]);
      const body = b.subarray(5, 1 + len);
      if (type === 'Q') this.onCommand(verb(cstrings(body, 1)[0]));
      else if (type === 'P') {
        const [name, sql] = cstrings(body, 2);
        this.statements.set(name, verb(sql));
      } else if (type === 'B') {
        const [, statement] = cstrings(body, 2);
        this.bound = this.statements.get(statement) ?? 'EXECUTE';
      } else if (type === 'E') this.onCommand(this.bound ?? 'EXECUTE');
      this.buf = b.subarray(1 + len);
    }
  }
}

/**
 * Starts a proxy to `target` ({ host, port }) speaking `protocol` ('redis' | 'postgres').
 * Resolves `{ port, counts(), commandsSince(i), close() }`; `counts()` returns
 * `{ roundTrips, commands, names, sequenceLength }` so far. PostgreSQL commands are named by the
 * statement's first word (SELECT, INSERT, …), prepared statements included.
 */
export async function startCountingProxy(target, protocol) {
  const counts = { roundTrips: 0, commands: 0, names: {} };
  const sequence = [];
  const sockets = new Set();
  const onCommand = (name) => {
    counts.commands++;
    counts.names[name] = (counts.names[name] ?? 0) + 1;
    if (sequence.length < 1_000_000) sequence.push(name);
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client).add(upstream);
    const parser = protocol === 'redis' ? new RespCommands(onCommand) : new PgMessages(onCommand);
    let waiting = false;
    client.on('data', (chunk) => {
      if (!waiting) counts.roundTrips++;
      waiting = true;
      parser.push(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      waiting = false;
      client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    counts: () => ({ ...counts, names: { ...counts.names }, sequenceLength: sequence.length }),
    /** The commands seen since `counts().sequenceLength` was `index`, in order. */
    commandsSince: (index) => sequence.slice(index),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
