import type { SessionStore } from 'nestjs-sessions';
import type { SampleConfig } from './config.js';

/** The store named by SESSION_STORE; `undefined` means the built-in memory store. */
export async function createStore(config: SampleConfig): Promise<SessionStore | undefined> {
  switch (config.store) {
    case 'memory':
      return undefined;
    default:
      throw new Error(`SESSION_STORE=${config.store} is not available in this build`);
  }
}
