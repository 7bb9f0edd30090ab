/**
 * What a commit does, decided from the state of one request's session alone: a pure function, so
 * every rule of when a session is created, updated, touched, skipped or re-issued, and when its id
 * rotates, is in one place and tested without a store or a response.
 */

/** The state a commit is planned from. */
export interface CommitInput {
  /** The backend holds sessions (store mode); otherwise the cookie carries them (sealed mode). */
  readonly holdsSessions: boolean;
  /** The session is stored (it came from a cookie, or an earlier commit stored it). */
  readonly persisted: boolean;
  /** The user the session is stored with, and the one this request leaves it with. */
  readonly storedUser: string | null;
  readonly user: string | null;
  /** This request already gave the session a new id (`regenerate()`, a CSRF token after a login). */
  readonly rotating: boolean;
  /** The stored data is replaced whole (`regenerate({ keep: false })`). */
  readonly replacing: boolean;
  /** How many keys this request changes and removes. */
  readonly changedKeys: number;
  readonly removedKeys: number;
  /** A new session is wanted even without data: `saveUninitialized`, or a CSRF token was handed out. */
  readonly keepEmpty: boolean;
  /** Activity is due to be recorded (`touchAfter` passed, or `touch()`). */
  readonly touchDue: boolean;
  /** The cookie was verified under an old secret: send it again under the first one. */
  readonly reissue: boolean;
  /** The session travels on a response (not `SessionService.withSession`). */
  readonly hasResponse: boolean;
  /** The cookie has a lifetime (`maxAge`), which every recorded activity extends. */
  readonly persistentCookie: boolean;
}

/** What to write. */
export type CommitAction =
  /** Nothing. */
  | 'skip'
  /** A new session (its first write). */
  | 'create'
  /** A write to the stored session (its data, id or user changed; in sealed mode, any change). */
  | 'update'
  /** Only the activity times of the stored session. */
  | 'touch'
  /** Nothing stored: only the cookie goes out again (re-issued under the current secret). */
  | 'cookie';

/** One commit, as a value. */
export interface CommitPlan {
  readonly action: CommitAction;
  /**
   * Whether the cookie goes out: `'required'` — the write is useless without it (a new session, a
   * new id, a seal), so nothing is written when it cannot be set; `'wanted'` — sent when it can be;
   * `'none'`.
   */
  readonly cookie: 'required' | 'wanted' | 'none';
  /** Give the session a new id now (LC-2: the user changed). */
  readonly rotate: boolean;
  /**
   * The user changed from one to another: the new user does not inherit what the previous one
   * left; only this request's writes are kept and the stored data is replaced.
   */
  readonly keepOnlyWritten: boolean;
  /** A cookie the request carried led to no live session: clear it in the browser. */
  readonly clearDeadCookie: boolean;
}

const SKIP: CommitPlan = {
  action: 'skip',
  cookie: 'none',
  rotate: false,
  keepOnlyWritten: false,
  clearDeadCookie: false,
};
const SKIP_AND_CLEAR: CommitPlan = { ...SKIP, clearDeadCookie: true };

/** Plans the commit of one request's session. */
export function planCommit(input: CommitInput): CommitPlan {
  const userChanged = input.persisted && input.user !== input.storedUser;
  // A change of user is a privilege change: a new id (LC-2), unless this request already has one.
  const rotate = userChanged && !input.rotating;
  const keepOnlyWritten = userChanged && input.storedUser !== null && input.user !== null;
  const rotating = input.rotating || rotate;
  const changed =
    input.replacing ||
    keepOnlyWritten ||
    rotating ||
    input.changedKeys > 0 ||
    input.removedKeys > 0;

  if (!input.persisted) {
    // A new session stays unstored until something is written to it.
    if (input.changedKeys === 0 && !input.keepEmpty) return SKIP_AND_CLEAR;
    return plan('create', 'required', rotate, keepOnlyWritten);
  }

  if (!input.holdsSessions) {
    // The cookie is the store: any change, a due touch or a re-issue is a new seal, sent.
    if (!changed && !input.reissue && !input.touchDue) return SKIP;
    return plan('update', 'required', rotate, keepOnlyWritten);
  }

  let action: CommitAction;
  if (changed) action = 'update';
  else if (input.touchDue) action = 'touch';
  else if (input.reissue) action = 'cookie';
  else return SKIP;

  let cookie: CommitPlan['cookie'] = 'none';
  if (rotating) cookie = 'required';
  else if (input.reissue || (action !== 'cookie' && input.persistentCookie)) cookie = 'wanted';
  if (!input.hasResponse) {
    // No response to carry a cookie: re-issuing means nothing, a refresh is left out.
    if (action === 'cookie') return SKIP;
    if (cookie === 'wanted') cookie = 'none';
  }
  return plan(action, cookie, rotate, keepOnlyWritten);
}

function plan(
  action: CommitAction,
  cookie: CommitPlan['cookie'],
  rotate: boolean,
  keepOnlyWritten: boolean,
): CommitPlan {
  return { action, cookie, rotate, keepOnlyWritten, clearDeadCookie: false };
}
