import type {
  SessionRecord,
  SessionStore,
  SessionTimes,
} from '../interfaces/session-store.interface.js';
import { MAX_COOKIES_LOOKED_UP, readCookieValues } from '../transport/session-cookie.js';
import { SessionTokenSigner } from '../transport/session-token.js';
import type {
  FetchRecord,
  MaybePromise,
  OpenedSession,
  SessionBackend,
  SessionSave,
} from './session-backend.js';
import type { SessionEvents } from './session-events.js';
import { expiryReason, isExpired, type ExpiryPolicy } from './session-policy.js';
import { storeCall, storeFailure } from './store-call.js';

/**
 * Store mode: the session lives in a {@link SessionStore} under the SHA-256 of a random token, and
 * the cookie carries the token, signed. In-process stores that answer synchronously are read and
 * written without a promise.
 */
export class StoreBackend implements SessionBackend {
  readonly holdsSessions = true;

  constructor(
    readonly store: SessionStore,
    private readonly cookieName: string,
    private readonly signer: SessionTokenSigner,
    private readonly policy: ExpiryPolicy,
    private readonly events: SessionEvents,
    private readonly now: () => number,
  ) {}

  /** Every value of our cookie in the request (duplicates come from cookie tossing, CK-15). */
  presented(cookieHeader: string | undefined): string[] {
    return readCookieValues(cookieHeader, this.cookieName);
  }

  /**
   * The first value that verifies and names a live record. Every copy's signature is checked; only
   * verified ones reach the store, at most a few (CK-15).
   */
  open(
    values: readonly string[],
    fetch: FetchRecord,
    from = 0,
    lookups = 0,
  ): MaybePromise<OpenedSession | undefined> {
    for (let i = from; i < values.length && lookups < MAX_COOKIES_LOOKED_UP; i++) {
      const verified = this.signer.verify(values[i]);
      if (!verified) {
        this.events.emit('invalid', { reason: 'signature' });
        continue;
      }
      lookups++;
      const found = fetch(SessionTokenSigner.storageKey(verified.token));
      if (found instanceof Promise) {
        const tried = lookups;
        return found.then((record) =>
          record
            ? { record, token: verified.token, stale: verified.stale }
            : this.open(values, fetch, i + 1, tried),
        );
      }
      if (found) return { record: found, token: verified.token, stale: verified.stale };
    }
    return undefined;
  }

  /**
   * Loads a record and applies the server's own expiry rules, whatever the store's TTL did (TO-3):
   * an expired record is deleted and reported as absent. Without a promise when the store answers
   * synchronously (`loadSync`) and the record is live.
   */
  find(key: string, presented = false): MaybePromise<SessionRecord | null> {
    const { store } = this;
    if (!store.loadSync)
      return storeCall(() => store.load(key)).then((r) => this.live(key, r, presented));
    let record: SessionRecord | null;
    try {
      record = store.loadSync(key);
    } catch (error) {
      return Promise.reject(storeFailure(error));
    }
    return this.live(key, record, presented);
  }

  /** The record if it is live; an expired one is deleted first. */
  private live(
    key: string,
    record: SessionRecord | null,
    presented: boolean,
  ): SessionRecord | null | Promise<null> {
    if (!record) {
      // Expired in the store, destroyed, revoked or evicted: the store cannot say which.
      if (presented) this.events.emit('invalid', { key, reason: 'unknown' });
      return null;
    }
    const now = this.now();
    if (!isExpired(record, now, this.policy)) return record;
    this.events.emit('expired', {
      key: record.key,
      userId: record.userId,
      reason: expiryReason(record, now),
    });
    return storeCall(() => this.store.destroy(key)).then(() => null);
  }

  /** Saves at once when the store can (`saveSync`), else returns a promise. */
  save({ write }: SessionSave): MaybePromise<undefined> {
    const { store } = this;
    if (!store.saveSync) return storeCall(() => store.save(write)).then(() => undefined);
    try {
      store.saveSync(write);
    } catch (error) {
      throw storeFailure(error);
    }
    return undefined;
  }

  touch(key: string, times: SessionTimes): Promise<boolean> {
    return storeCall(() => this.store.touch(key, times));
  }

  cookieFor(token: string): readonly string[] {
    return [this.signer.sign(token)];
  }

  end(session: { key: string }): Promise<void> {
    return storeCall(() => this.store.destroy(session.key));
  }

  invalidate(key: string): Promise<void> {
    return storeCall(() => this.store.destroy(key));
  }

  invalidateUser(userId: string, except: readonly string[]): Promise<number> {
    return storeCall(() => this.store.destroyForUser(userId, except));
  }

  async sessionsOf(userId: string): Promise<SessionRecord[]> {
    const now = this.now();
    const records = await storeCall(() => this.store.listForUser(userId));
    return records.filter((record) => !isExpired(record, now, this.policy));
  }
}
