import { SessionError, SessionStoreUnavailableError } from '../session.errors.js';

/**
 * A store call's error as the engine reports it: session errors (gone, conflict, not
 * serializable…) say what happened; anything else is the backend failing.
 */
export function storeFailure(error: unknown): SessionError {
  return error instanceof SessionError ? error : new SessionStoreUnavailableError(error);
}

/** Runs a store call; failures that are not `SessionError`s become `SessionStoreUnavailableError`. */
export async function storeCall<R>(call: () => Promise<R>): Promise<R> {
  try {
    return await call();
  } catch (error) {
    throw storeFailure(error);
  }
}
