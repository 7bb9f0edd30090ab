import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { resolveSessionOptions } from '../session.options.js';
import type { SessionModuleOptions } from '../interfaces/session-options.interface.js';
import { MemorySessionStore } from '../stores/memory-session.store.js';
import type { SessionCarrier, SettleAtEnd } from './session-carrier.js';
import { SessionHandle } from './session-handle.js';
import type { SessionLogger } from './session-logger.js';
import { SessionRuntime } from './session-runtime.js';

const SECRET = 'k7Qp2vXn9LrT4wYz8BcFh3JmS6dGa1EuN5oKiWq0VtR';

const silent: SessionLogger = {
  log: () => undefined,
  error: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
  verbose: () => undefined,
  isLevelEnabled: () => false,
};

/** One request's transport as the engine sees it: a Cookie header in, headers out. */
class RecordingCarrier implements SessionCarrier {
  routeCommits = true;
  routeWillCommit = true;
  readonly headers = new Map<string, string | string[]>();

  constructor(private readonly cookie?: string) {}

  cookieHeader(): string | undefined {
    return this.cookie;
  }
  isSecure(): boolean {
    return false;
  }
  headersSent(): boolean {
    return false;
  }
  getHeader(name: string): unknown {
    return this.headers.get(name.toLowerCase());
  }
  setHeader(name: string, value: string | string[]): void {
    this.headers.set(name.toLowerCase(), value);
  }
  settleBeforeResponse(_target: SettleAtEnd): void {}
  onClose(): void {}

  /** `sid=…` of the Set-Cookie header, if one was set. */
  get sessionCookie(): string | undefined {
    const value = this.headers.get('set-cookie');
    const line = (Array.isArray(value) ? value : value ? [value] : []).find((c) =>
      c.startsWith('sid='),
    );
    return line?.split(';')[0];
  }
}

/** A counting store: a real MemorySessionStore that records its reads and writes. */
class CountingMemoryStore extends MemorySessionStore {
  loads = 0;
  readonly saves: Parameters<MemorySessionStore['save']>[0][] = [];
  override loadSync(key: string) {
    this.loads++;
    return super.loadSync(key);
  }
  override saveSync(write: Parameters<MemorySessionStore['save']>[0]) {
    this.saves.push(write);
    super.saveSync(write);
  }
}

function engine(options: Partial<SessionModuleOptions> = {}) {
  const store = new CountingMemoryStore();
  const runtime = new SessionRuntime(
    resolveSessionOptions({ secret: SECRET, ...options }, { NODE_ENV: 'test' }),
    store,
    silent,
  );
  const request = (cookie?: string) => {
    const carrier = new RecordingCarrier(cookie);
    return { carrier, handle: new SessionHandle<Record<string, unknown>>(runtime, carrier) };
  };
  /** One request: load, run, commit; the cookie the response carries (or the one sent). */
  const exchange = async (cookie: string | undefined, run: (h: SessionHandle) => void) => {
    const { carrier, handle } = request(cookie);
    await handle.load();
    run(handle);
    await handle.settle(true);
    return carrier.sessionCookie ?? cookie;
  };
  return { store, runtime, request, exchange };
}

afterEach(() => {
  jest.useRealTimers();
});

describe('SessionHandle (unit)', () => {
  it('tracks what changed: an in-place change of a nested value is one key in the write, an untouched key is not', async () => {
    const { store, exchange } = engine();
    const cookie = await exchange(undefined, (s) => {
      s.data.cart = ['a'];
      s.data.profile = { name: 'ann' };
    });
    store.saves.length = 0;
    await exchange(cookie, (s) => (s.data.cart as string[]).push('b'));
    expect(store.saves).toHaveLength(1);
    expect(store.saves[0].set).toEqual({ cart: '["a","b"]' });
    expect(store.saves[0].unset).toEqual([]);
    // Reading without changing writes nothing.
    store.saves.length = 0;
    await exchange(cookie, (s) => void s.data.profile);
    expect(store.saves).toHaveLength(0);
  });

  it('fences a write under @SessionLock: once the lock passed to another request, the write is refused and nothing is written', async () => {
    const { store, exchange, request } = engine({ lockTimeout: '2s' });
    const cookie = await exchange(undefined, (s) => (s.data.n = 1));
    const key = store.saves[0].key;
    // Held: the write carries the owner and goes through.
    const first = request(cookie);
    first.handle.requireLock();
    await first.handle.load();
    first.handle.data.n = 2;
    await first.handle.settle(true);
    expect(store.saves.at(-1)?.lockOwner).toEqual(expect.any(String));
    expect(store.loadSync(key)?.data).toEqual({ n: '2' });
    // The lease runs out while the holder stalls (no renewal ran), and another owner takes it.
    jest.useFakeTimers({ now: Date.now(), doNotFake: ['nextTick', 'setImmediate'] });
    const late = request(cookie);
    late.handle.requireLock();
    await late.handle.load();
    late.handle.data.n = 3;
    jest.setSystemTime(Date.now() + 60_000);
    expect(await store.acquireLock(key, 'another', 5_000)).toBe(true);
    await expect(late.handle.settle(true)).rejects.toMatchObject({ code: 'SESSION_CONFLICT' });
    expect(store.loadSync(key)?.data).toEqual({ n: '2' });
    await store.releaseLock(key, 'another');
    // Released early (the client went away), then taken by its retry: the first write is still fenced.
    const aborted = request(cookie);
    aborted.handle.requireLock();
    await aborted.handle.load();
    aborted.handle.data.n = 4;
    await aborted.handle.release();
    expect(await store.acquireLock(key, 'retry', 5_000)).toBe(true);
    // settle() throws at once when nothing was awaited (the memory store writes synchronously).
    await expect((async () => aborted.handle.settle(true))()).rejects.toMatchObject({
      code: 'SESSION_CONFLICT',
    });
    expect(store.loadSync(key)?.data).toEqual({ n: '2' });
  });

  it('commits each value of an observable handler under one lock, gives it back at the end, and fences a stray save() after it', async () => {
    const { store, exchange, request } = engine({ lockTimeout: '2s' });
    const cookie = await exchange(undefined, (s) => (s.data.n = 1));
    const key = store.saves[0].key;
    const { handle } = request(cookie);
    handle.requireLock();
    await handle.load();
    handle.data.n = 2;
    await handle.settle(true, true);
    expect(handle.holdsLock).toBe(true);
    expect(await store.acquireLock(key, 'other', 1_000)).toBe(false);
    handle.data.n = 3;
    await handle.settle(true, true);
    await handle.release();
    expect(store.loadSync(key)?.data).toEqual({ n: '3' });
    expect(await store.acquireLock(key, 'next', 1_000)).toBe(true);
    // After the end, a stray save() neither locks again nor writes over the next holder.
    handle.data.n = 4;
    await expect(handle.save()).rejects.toMatchObject({ code: 'SESSION_CONFLICT' });
    expect(handle.holdsLock).toBe(false);
    expect(store.loadSync(key)?.data).toEqual({ n: '3' });
  });

  it('still locks the live session when the first of two cookies is dead (CK-15)', async () => {
    const { store, exchange, request } = engine({ lockTimeout: '2s' });
    const dead = await exchange(undefined, (s) => (s.data.n = 1));
    await store.destroy(store.saves[0].key);
    const live = await exchange(undefined, (s) => (s.data.n = 2));
    const liveKey = store.saves[1].key;
    const { handle } = request(`${dead}; ${live}`);
    handle.requireLock();
    await handle.load();
    expect(handle.id).toBe(liveKey);
    expect(handle.holdsLock).toBe(true);
    expect(await store.acquireLock(liveKey, 'other', 1_000)).toBe(false);
    await handle.release();
  });

  it('writes nothing and sets no cookie for a new session nobody wrote to', async () => {
    const { store, request } = engine();
    const { carrier, handle } = request();
    await handle.load();
    void handle.data.anything;
    await handle.settle(true);
    expect(store.saves).toHaveLength(0);
    expect(carrier.sessionCookie).toBeUndefined();
  });

  it('rolls back what a failed request changed, keeping what was stored (LC-8)', async () => {
    const { store, request, exchange } = engine();
    const cookie = await exchange(undefined, (s) => (s.data.n = 1));
    store.saves.length = 0;
    const { handle } = request(cookie);
    await handle.load();
    handle.data.n = 2;
    await handle.settle(false);
    expect(store.saves).toHaveLength(0);
    let n: unknown;
    await exchange(cookie, (s) => (n = s.data.n));
    expect(n).toBe(1);
  });

  it('checks the signature before any store access: a forged cookie reaches no store (TOK-5)', async () => {
    const { store, exchange } = engine();
    const cookie = await exchange(undefined, (s) => (s.data.n = 1));
    const forged = `${cookie!.slice(0, -3)}AAA`;
    store.loads = 0;
    let isNew = false;
    await exchange(forged, (s) => (isNew = s.isNew));
    expect(isNew).toBe(true);
    expect(store.loads).toBe(0);
  });

  it('ends a session without a user after anonymousIdleTimeout and one with a user after idleTimeout (fake clock)', async () => {
    jest.useFakeTimers({ now: Date.parse('2026-12-01T10:00:00Z') });
    const { exchange } = engine({ idleTimeout: '30m', anonymousIdleTimeout: '5m' });
    const visitor = await exchange(undefined, (s) => (s.data.cart = ['a']));
    const user = await exchange(undefined, (s) => (s.data.userId = 'u1'));
    jest.setSystemTime(Date.now() + 6 * 60_000);
    const seen: Record<string, boolean> = {};
    await exchange(visitor, (s) => (seen.visitor = s.isNew));
    await exchange(user, (s) => (seen.user = s.isNew));
    expect(seen).toEqual({ visitor: true, user: false });
    jest.setSystemTime(Date.now() + 31 * 60_000);
    await exchange(user, (s) => (seen.user = s.isNew));
    expect(seen.user).toBe(true);
  });
});
