import type { SessionStore } from '../../src/index.js';
import { MemorySessionStore } from '../../src/index.js';

/** A real MemorySessionStore that also counts calls per method, to prove what touches the store. */
export class CountingStore extends MemorySessionStore {
  readonly calls: Record<string, number> = {};
  /** Every write, in order. */
  readonly saves: Parameters<SessionStore['save']>[0][] = [];

  get total(): number {
    return Object.values(this.calls).reduce((a, b) => a + b, 0);
  }

  reset(): void {
    for (const key of Object.keys(this.calls)) delete this.calls[key];
    this.saves.length = 0;
  }

  private count(method: string): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
  }

  override load(key: string) {
    this.count('load');
    return super.load(key);
  }
  override loadSync(key: string) {
    this.count('load');
    return super.loadSync(key);
  }
  private recordSave(write: Parameters<SessionStore['save']>[0]): void {
    this.count('save');
    this.saves.push(write);
  }

  override save(write: Parameters<SessionStore['save']>[0]) {
    this.recordSave(write);
    return super.save(write);
  }
  override saveSync(write: Parameters<SessionStore['save']>[0]) {
    this.recordSave(write);
    return super.saveSync(write);
  }
  override touch(...args: Parameters<SessionStore['touch']>) {
    this.count('touch');
    return super.touch(...args);
  }
  override destroy(key: string) {
    this.count('destroy');
    return super.destroy(key);
  }
}
