import type {
  SharedCredentialRecord,
  SharedCredentialStore,
} from '../interfaces/shared-credential-store.interface.js';

/**
 * Shared credentials in this process's memory: the default. All clients of one upstream in this
 * process share one login; other processes are not reached (use {@link RedisSharedCredentialStore}
 * or {@link PostgresSharedCredentialStore} for that). Records are copied in and out.
 *
 * @example new SharedSessionClient({ name: 'crm', baseUrl, login, store: new MemorySharedCredentialStore() })
 */
export class MemorySharedCredentialStore implements SharedCredentialStore {
  private readonly records = new Map<string, SharedCredentialRecord>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();

  async get(name: string): Promise<SharedCredentialRecord | null> {
    const record = this.records.get(name);
    return record ? { ...record } : null;
  }

  async set(name: string, record: SharedCredentialRecord, owner: string): Promise<boolean> {
    const lock = this.locks.get(name);
    if (!lock || lock.owner !== owner || lock.expiresAt <= Date.now()) return false;
    this.records.set(name, { ...record });
    return true;
  }

  async acquireLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const lock = this.locks.get(name);
    if (lock && lock.expiresAt > now) return false;
    this.locks.set(name, { owner, expiresAt: now + ttlMs });
    return true;
  }

  async releaseLock(name: string, owner: string): Promise<boolean> {
    const lock = this.locks.get(name);
    if (!lock || lock.owner !== owner) return false;
    this.locks.delete(name);
    return lock.expiresAt > Date.now();
  }
}
