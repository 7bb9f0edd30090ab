import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { describeSessionStoreContract, createWrite } from '../testing/index.js';
import { MemorySessionStore } from './memory-session.store.js';

describeSessionStoreContract(
  'MemorySessionStore',
  { describe, it, beforeAll, afterAll },
  { create: async () => new MemorySessionStore(), cleanup: (store) => store.close!() },
);

describe('MemorySessionStore', () => {
  it('evicts the least recently used session past maxSessions (ST-9)', async () => {
    const store = new MemorySessionStore({ maxSessions: 3 });
    const writes = [createWrite({ n: 0 }), createWrite({ n: 1 }), createWrite({ n: 2 })];
    for (const w of writes) await store.save(w);
    await store.load(writes[0].key); // now the most recently used
    await store.save(createWrite({ n: 3 }));
    expect(store.size).toBe(3);
    expect(await store.load(writes[1].key)).toBeNull();
    expect(await store.load(writes[0].key)).not.toBeNull();
    await store.close();
  });

  it('evicts sessions without a user first, so anonymous traffic cannot push out a logged-in one (eviction by flooding)', async () => {
    const store = new MemorySessionStore({ maxSessions: 4 });
    const users = [createWrite({}, { userId: 'u1' }), createWrite({}, { userId: 'u2' })];
    for (const w of users) await store.save(w);
    const flood = Array.from({ length: 200 }, (_, n) => createWrite({ n }));
    for (const w of flood) await store.save(w);
    expect(store.size).toBe(4);
    for (const w of users) expect(await store.load(w.key)).not.toBeNull();
    // Only the newest anonymous sessions are left.
    expect(await store.load(flood[0].key)).toBeNull();
    expect(await store.load(flood[199].key)).not.toBeNull();
    // With no anonymous session left, a user's least recently used one goes (u1 and u2 were read).
    const more = [createWrite({}, { userId: 'u3' }), createWrite({}, { userId: 'u4' })];
    for (const w of more) await store.save(w);
    await store.save(createWrite({}, { userId: 'u5' }));
    expect(await store.load(users[0].key)).not.toBeNull();
    expect(await store.load(users[1].key)).not.toBeNull();
    expect(await store.load(more[0].key)).toBeNull();
    await store.close();
  });

  it('moves a session between the eviction groups when it logs in and out', async () => {
    const store = new MemorySessionStore({ maxSessions: 2 });
    const session = createWrite({});
    await store.save(session);
    await store.save({ ...session, kind: 'update', userId: 'u1' });
    await store.save(createWrite({ a: 1 }));
    await store.save(createWrite({ a: 2 }));
    expect((await store.load(session.key))?.userId).toBe('u1');
    expect(await store.listForUser('u1')).toHaveLength(1);
    await store.save({ ...session, kind: 'update', userId: null });
    // Anonymous again: newer anonymous sessions push it out (after its second chance).
    for (let a = 3; a < 7; a++) await store.save(createWrite({ a }));
    expect(await store.load(session.key)).toBeNull();
    expect(await store.listForUser('u1')).toHaveLength(0);
    await store.close();
  });

  it('never evicts a retained record (revocation): a store full of them refuses the write instead of forgetting one', async () => {
    const store = new MemorySessionStore({ maxSessions: 3 });
    const kept = [createWrite({ d: 1 }, { retain: true }), createWrite({ d: 2 }, { retain: true })];
    for (const w of kept) await store.save(w);
    for (let n = 0; n < 50; n++) await store.save(createWrite({ n }));
    for (const w of kept) expect(await store.load(w.key)).not.toBeNull();
    await store.save(createWrite({ d: 3 }, { retain: true }));
    await expect(store.save(createWrite({ d: 4 }, { retain: true }))).rejects.toThrow(/full/);
    await expect(store.save(createWrite({ n: 51 }))).rejects.toThrow(/full/);
    for (const w of kept) expect(await store.load(w.key)).not.toBeNull();
    // Expiry still frees room.
    store.sweep(Date.now() + 120_000);
    await store.save(createWrite({ d: 5 }, { retain: true }));
    await store.close();
  });

  it('sweeps expired sessions without being asked', async () => {
    const store = new MemorySessionStore({ sweepInterval: 20 });
    await store.save(createWrite({ a: 1 }, { expiresAt: Date.now() + 10 }));
    await store.save(createWrite({ a: 1 }));
    expect(store.size).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(store.size).toBe(1);
    await store.close();
  });

  it('keeps keys and texts that look like its own encoding, in their order', async () => {
    const store = new MemorySessionStore();
    const set = {
      '3:abc': '"4:x"',
      '': '""',
      '12': '12',
      'ключ:': '"значение ✓"',
      ['__proto__']: '{"polluted":true}',
    };
    const write = createWrite({});
    await store.save({ ...write, set: { ...set } });
    const created = await store.load(write.key);
    expect(created?.data).toEqual(set);
    expect(Object.getPrototypeOf(created!.data)).toBe(Object.prototype);
    await store.save({
      ...write,
      kind: 'update',
      set: { '': '"again"', z: 'null' },
      unset: ['3:abc'],
    });
    const updated = await store.load(write.key);
    expect(Object.keys(updated!.data)).toEqual(['12', '', 'ключ:', '__proto__', 'z']);
    expect(updated!.data['']).toBe('"again"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await store.close();
  });

  it('applies any run of changes to a session as a model of its fields does', async () => {
    const name = fc.constantFrom('a', 'b', '12', '1:a', '', '__proto__', 'ключ');
    const text = fc.oneof(
      fc.constantFrom('1', '"2:xy"', 'null'),
      fc.string({ unit: 'binary' }).map((v) => JSON.stringify(v)),
    );
    const change = fc.record({
      set: fc.dictionary(name, text),
      unset: fc.uniqueArray(name, { maxLength: 3 }),
      replace: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(name, text),
        fc.array(change, { maxLength: 5 }),
        async (start, changes) => {
          const store = new MemorySessionStore();
          const write = createWrite({});
          const model = new Map(Object.entries({ ...start }));
          await store.save({ ...write, set: { ...start } });
          for (const { set, unset, replace } of changes) {
            const removed = unset.filter((key) => !Object.hasOwn(set, key));
            await store.save({
              ...write,
              kind: 'update',
              set: { ...set },
              unset: removed,
              replace,
            });
            if (replace) model.clear();
            for (const key of removed) model.delete(key);
            for (const key of Object.keys(set)) model.set(key, set[key]);
          }
          const loaded = await store.load(write.key);
          expect(new Map(Object.entries(loaded!.data))).toEqual(model);
          await store.close();
        },
      ),
    );
  });

  it('refuses a nonsensical size bound', () => {
    expect(() => new MemorySessionStore({ maxSessions: 0 })).toThrow(/maxSessions/);
  });
});
