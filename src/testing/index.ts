export {
  describeSessionStoreContract,
  createWrite,
  updateWrite,
  randomStorageKey,
  type SessionStoreContractFramework,
  type SessionStoreContractOptions,
} from './store-contract.js';
export { createSessionCookie } from './session-cookie.js';
export { SessionTestingModule, SessionTestClock } from './session-testing.module.js';
