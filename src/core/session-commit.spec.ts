import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { planCommit, type CommitInput } from './session-commit.js';

/** A loaded, stored session of user `u1` that this request only read, on a response. */
const READ: CommitInput = {
  holdsSessions: true,
  persisted: true,
  storedUser: 'u1',
  user: 'u1',
  rotating: false,
  replacing: false,
  changedKeys: 0,
  removedKeys: 0,
  keepEmpty: false,
  touchDue: false,
  reissue: false,
  hasResponse: true,
  persistentCookie: false,
};
const NEW: CommitInput = { ...READ, persisted: false, storedUser: null, user: null };

describe('planCommit', () => {
  it('skips a read that changed nothing: no write, no cookie (the read fast path)', () => {
    expect(planCommit(READ)).toMatchObject({ action: 'skip', cookie: 'none' });
  });

  it('leaves a new session unstored until something is written, and clears a dead cookie', () => {
    expect(planCommit(NEW)).toMatchObject({ action: 'skip', clearDeadCookie: true });
    expect(planCommit({ ...NEW, changedKeys: 1 })).toMatchObject({
      action: 'create',
      cookie: 'required',
    });
    // saveUninitialized, or a CSRF token handed out.
    expect(planCommit({ ...NEW, keepEmpty: true }).action).toBe('create');
  });

  it('updates a changed session without a cookie, unless the cookie has a lifetime to extend', () => {
    expect(planCommit({ ...READ, changedKeys: 1 })).toMatchObject({
      action: 'update',
      cookie: 'none',
    });
    expect(planCommit({ ...READ, removedKeys: 1, persistentCookie: true })).toMatchObject({
      action: 'update',
      cookie: 'wanted',
    });
  });

  it('records activity with a touch when only touchAfter passed (TO-5)', () => {
    expect(planCommit({ ...READ, touchDue: true })).toMatchObject({
      action: 'touch',
      cookie: 'none',
    });
  });

  it('re-issues a cookie verified under an old secret without writing the store (KEY-3)', () => {
    expect(planCommit({ ...READ, reissue: true })).toMatchObject({
      action: 'cookie',
      cookie: 'wanted',
    });
    // Without a response there is nothing to re-issue.
    expect(planCommit({ ...READ, reissue: true, hasResponse: false }).action).toBe('skip');
  });

  it('rotates the id when the user changes, and requires the new cookie (LC-2)', () => {
    const login = planCommit({ ...READ, storedUser: null, user: 'u1', changedKeys: 1 });
    expect(login).toMatchObject({
      action: 'update',
      cookie: 'required',
      rotate: true,
      keepOnlyWritten: false,
    });
    const logout = planCommit({ ...READ, user: null, removedKeys: 1 });
    expect(logout).toMatchObject({ rotate: true, cookie: 'required' });
  });

  it('keeps only what this request wrote when one user replaces another', () => {
    expect(planCommit({ ...READ, user: 'u2', changedKeys: 1 })).toMatchObject({
      rotate: true,
      keepOnlyWritten: true,
    });
  });

  it('does not rotate twice when the request already regenerated', () => {
    expect(planCommit({ ...READ, user: 'u2', rotating: true, changedKeys: 1 })).toMatchObject({
      action: 'update',
      cookie: 'required',
      rotate: false,
    });
  });

  it('in sealed mode, makes any change, a due touch or a re-issue a new seal that must be sent', () => {
    const sealed = { ...READ, holdsSessions: false };
    expect(planCommit(sealed).action).toBe('skip');
    for (const change of [{ changedKeys: 1 }, { touchDue: true }, { reissue: true }]) {
      expect(planCommit({ ...sealed, ...change })).toMatchObject({
        action: 'update',
        cookie: 'required',
      });
    }
  });

  it('never stores a new id unless its cookie is required, whatever the state (property)', () => {
    const input = fc.record({
      holdsSessions: fc.boolean(),
      persisted: fc.boolean(),
      storedUser: fc.constantFrom(null, 'u1', 'u2'),
      user: fc.constantFrom(null, 'u1', 'u2'),
      rotating: fc.boolean(),
      replacing: fc.boolean(),
      changedKeys: fc.nat(3),
      removedKeys: fc.nat(3),
      keepEmpty: fc.boolean(),
      touchDue: fc.boolean(),
      reissue: fc.boolean(),
      hasResponse: fc.boolean(),
      persistentCookie: fc.boolean(),
    });
    fc.assert(
      fc.property(input, (state) => {
        const plan = planCommit(state);
        const newId =
          plan.action === 'create' || plan.rotate || (state.rotating && plan.action !== 'skip');
        if (newId) expect(plan.cookie).toBe('required');
        if (state.persisted && state.user !== state.storedUser) {
          // A change of user is never left unsaved, and always means a new id.
          expect(plan.action).toBe('update');
          expect(plan.rotate || state.rotating).toBe(true);
        }
        if (!state.hasResponse) expect(plan.cookie).not.toBe('wanted');
      }),
    );
  });
});
