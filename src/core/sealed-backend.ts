import { SessionCookieTooLargeError, SessionError, SessionGoneError } from '../session.errors.js';
import type { SessionRecord, SessionStore } from '../interfaces/session-store.interface.js';
import { joinChunks, splitIntoChunks } from '../transport/cookie-chunks.js';
import { MAX_COOKIE_BYTES } from '../transport/session-cookie.js';
import type { SealedSession, SessionSealer } from '../transport/session-sealer.js';
import type {
  FetchRecord,
  MaybePromise,
  OpenedSession,
  SessionBackend,
  SessionSave,
} from './session-backend.js';
import type { SessionEvents } from './session-events.js';
import { derivedKey, expiryReason, isExpired, type ExpiryPolicy } from './session-policy.js';
import { storeCall } from './store-call.js';

/** What sealed mode needs of the module's options. */
export interface SealedBackendOptions extends ExpiryPolicy {
  readonly cookieName: string;
  readonly cookieChunks: number;
  /** Where revocations are kept (the deny list and "logged out everywhere" marks), if anywhere. */
  readonly revocationStore: SessionStore | undefined;
}

/**
 * Sealed mode: the whole session is encrypted into its cookie (AES-256-GCM), so nothing is stored
 * per session. With a `revocationStore`, destroyed ids and users logged out everywhere are kept
 * there, and every cookie is checked against it.
 */
export class SealedBackend implements SessionBackend {
  readonly holdsSessions = false;

  constructor(
    private readonly sealer: SessionSealer,
    private readonly options: SealedBackendOptions,
    private readonly events: SessionEvents,
    private readonly now: () => number,
  ) {}

  /** The sealed values in the request, joined back together when the cookie was split. */
  presented(cookieHeader: string | undefined): string[] {
    const { cookieName, cookieChunks } = this.options;
    return joinChunks(cookieHeader, cookieName, cookieChunks);
  }

  /** The first value that opens, is unexpired and not revoked, from `from` on. */
  open(
    values: readonly string[],
    _fetch: FetchRecord,
    from = 0,
  ): MaybePromise<OpenedSession | undefined> {
    const now = this.now();
    for (let i = from; i < values.length; i++) {
      const opened = this.sealer.open(values[i], now);
      if (!opened) {
        this.events.emit('invalid', { reason: 'seal' });
        continue;
      }
      const record = this.recordOf(opened.session);
      if (isExpired(record, now, this.options)) {
        this.events.emit('expired', {
          key: record.key,
          userId: record.userId,
          reason: expiryReason(record, now),
        });
        continue;
      }
      const found = { record, token: undefined, stale: opened.stale };
      if (!this.options.revocationStore) return found;
      return this.isRevoked(opened.session).then((revoked) =>
        revoked ? this.open(values, _fetch, i + 1) : found,
      );
    }
    return undefined;
  }

  /**
   * Seals the session and splits it into cookies; a seal over `cookieChunks` cookies of 4096 bytes
   * fails before anything is sent. After a regenerate, the old id is revoked first: its cookie may
   * have been copied.
   */
  save({ write, texts, previousUser }: SessionSave): MaybePromise<readonly string[]> {
    const now = write.lastActiveAt;
    const session = {
      id: write.key,
      userId: write.userId,
      createdAt: write.createdAt,
      lastActiveAt: now,
      absoluteExpiresAt: write.absoluteExpiresAt,
      sealedAt: now,
      data: texts(),
    };
    const value = this.sealer.seal(session);
    const { cookieName, cookieChunks } = this.options;
    const parts = splitIntoChunks(value, cookieName, cookieChunks);
    if (!parts) {
      throw new SessionCookieTooLargeError(
        Buffer.byteLength(cookieName) + 1 + value.length,
        MAX_COOKIE_BYTES * cookieChunks,
      );
    }
    const sent = () => {
      this.sealer.remember(value, session);
      return parts;
    };
    if (write.previousKey === undefined || !this.options.revocationStore) return sent();
    return this.revoke(write.previousKey, previousUser === null, write.absoluteExpiresAt).then(
      sent,
    );
  }

  /** Destroying a sealed session revokes its id when revocations are kept; the cookie is cleared. */
  async end(session: { key: string; userId: string | null; absoluteExpiresAt: number }) {
    if (!this.options.revocationStore) return;
    await this.revoke(session.key, session.userId === null, session.absoluteExpiresAt);
  }

  /** Deny-lists the id (needs `revocationStore`) until it would have expired anyway. */
  invalidate(key: string): Promise<void> {
    return this.revoke(key, false, this.now() + this.options.absoluteTimeout);
  }

  /** Every cookie of the user sealed before now is revoked; cookies cannot be counted. */
  async invalidateUser(userId: string, except: readonly string[]): Promise<undefined> {
    const store = this.revocationStore();
    const now = this.now();
    const data = { notBefore: now, keep: except };
    // Sessions sealed before now expire within absoluteTimeout; the record is useless after that.
    await upsert(store, notBeforeKey(userId), data, now, now + this.options.absoluteTimeout, true);
    return undefined;
  }

  find(): never {
    return unsupported();
  }

  sessionsOf(): never {
    return unsupported();
  }

  touch(): never {
    // Never planned: in sealed mode a touch is a new seal.
    return unsupported();
  }

  cookieFor(): never {
    return unsupported();
  }

  /** A sealed session seen as a store record, so that one set of expiry rules covers both modes. */
  private recordOf(session: SealedSession): SessionRecord {
    // The session's own idle timeout, if any, is in its data, where isExpired() applies it.
    const idle =
      session.userId === null ? this.options.anonymousIdleTimeout : this.options.idleTimeout;
    return {
      key: session.id,
      data: session.data,
      userId: session.userId,
      createdAt: session.createdAt,
      lastActiveAt: session.lastActiveAt,
      expiresAt: Math.min(session.lastActiveAt + idle, session.absoluteExpiresAt),
      absoluteExpiresAt: session.absoluteExpiresAt,
      version: 0,
    };
  }

  /**
   * Whether a sealed session was revoked: its id is on the deny list, or its user was logged out
   * everywhere after it was sealed. One parallel round trip; store errors fail closed (FAIL-5).
   */
  private async isRevoked(session: SealedSession): Promise<boolean> {
    const store = this.revocationStore();
    const [denied, user] = await Promise.all([
      storeCall(() => store.load(denyKey(session.id))),
      session.userId === null
        ? null
        : storeCall(() => store.load(notBeforeKey(session.userId as string))),
    ]);
    if (denied) return true;
    if (!user) return false;
    const notBefore = Number(JSON.parse(user.data.notBefore ?? '0'));
    const keep = JSON.parse(user.data.keep ?? '[]') as unknown;
    return session.sealedAt < notBefore && !(Array.isArray(keep) && keep.includes(session.id));
  }

  /**
   * Puts a sealed session's id on the deny list until it would have expired anyway. A session with a
   * user is denied until its absolute expiry, with a record that is never evicted (`retain`). An
   * anonymous one opens nothing of a user's: its record lives only as long as a copy of its cookie
   * could (`anonymousIdleTimeout` from now) and may be evicted, so a flood of anonymous logouts can
   * neither pile up nor push out the records that matter.
   */
  private async revoke(id: string, anonymous: boolean, absoluteExpiresAt: number): Promise<void> {
    const store = this.revocationStore();
    const now = this.now();
    const until = anonymous
      ? Math.min(now + this.options.anonymousIdleTimeout, absoluteExpiresAt)
      : absoluteExpiresAt;
    await upsert(store, denyKey(id), { denied: true }, now, until, !anonymous);
  }

  private revocationStore(): SessionStore {
    const store = this.options.revocationStore;
    if (!store) {
      throw new SessionError(
        'SESSION_UNSUPPORTED',
        "Revoking sealed sessions needs 'revocationStore'; without it a copied cookie works until it expires",
      );
    }
    return store;
  }
}

/** Writes a revocation record, creating or replacing it. */
async function upsert(
  store: SessionStore,
  key: string,
  data: Record<string, unknown>,
  now: number,
  until: number,
  retain: boolean,
): Promise<void> {
  const set: Record<string, string> = {};
  for (const field of Object.keys(data)) set[field] = JSON.stringify(data[field]);
  const write = {
    key,
    set,
    unset: [],
    retain,
    userId: null,
    createdAt: now,
    lastActiveAt: now,
    expiresAt: until,
    absoluteExpiresAt: until,
  };
  try {
    await storeCall(() => store.save({ ...write, kind: 'create' }));
  } catch (error) {
    if (!(error instanceof SessionGoneError)) throw error;
    await storeCall(() => store.save({ ...write, kind: 'update' }));
  }
}

const denyKey = (id: string) => derivedKey('deny', id);
const notBeforeKey = (userId: string) => derivedKey('not-before', userId);

function unsupported(): never {
  throw new SessionError(
    'SESSION_UNSUPPORTED',
    "Sessions in 'sealed' mode live only in their cookies: they cannot be listed, read or changed by id",
  );
}
