import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
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

  it('refuses a nonsensical size bound', () => {
    expect(() => new MemorySessionStore({ maxSessions: 0 })).toThrow(/maxSessions/);
  });
});
