import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  EntryKind,
  MemoryEngine,
  makeVersion,
  VERSION_MAX,
  valueEntry,
  versionPhysicalMs,
} from '../storage/index.js';
import { HybridClock } from './clock.js';
import { LocalStore } from './local-store.js';
import { Receipt } from './receipt.js';

const T = 1_700_000_000_000;
const ONE = { ack: 1, from: 1 };

/** A node's data written while its wall clock read `wallMs`. */
async function writtenAt(engine: MemoryEngine, wallMs: number): Promise<void> {
  const store = new LocalStore(engine, new HybridClock({ wallMs: () => wallMs }));
  await store.put(Buffer.from('a'), Buffer.from('before'), ONE);
  await store.put(Buffer.from('b'), Buffer.from('before'), ONE);
}

describe('LocalStore', () => {
  test('restarted with its wall clock set back past the drift bound, a write still wins over the stored one', async () => {
    const engine = new MemoryEngine();
    await writtenAt(engine, T + 10 * 60_000);
    // The restarted node: its clock refuses to follow a version 10 minutes ahead (node.ts seedClock).
    const clock = new HybridClock({ wallMs: () => T });
    assert.equal(clock.observe(engine.maxVersion()), false);
    const store = new LocalStore(engine, clock);

    const receipt = new Receipt();
    await store.put(Buffer.from('a'), Buffer.from('after'), { ...ONE, receipt });
    assert.equal((await store.get(Buffer.from('a'), ONE))?.value.toString(), 'after');
    assert.ok(receipt.version! > makeVersion(T + 10 * 60_000, 0), 'stamped above the stored version');
    await store.put(Buffer.from('a'), Buffer.from('again'), ONE);
    assert.equal((await store.get(Buffer.from('a'), ONE))?.value.toString(), 'again');

    await store.delete(Buffer.from('b'), ONE);
    assert.equal((await store.get(Buffer.from('b'), ONE))?.kind, EntryKind.Tombstone);

    // A key the old run never wrote takes the clock's version as usual.
    await store.put(Buffer.from('c'), Buffer.from('new'), ONE);
    const c = await store.get(Buffer.from('c'), ONE);
    assert.equal(versionPhysicalMs(c!.version), T, 'the clock was not dragged to the stored version');
  });

  test('a key stamped above the stored versions is still read while the clock is below what it holds', async () => {
    const later = T + 10 * 60_000;
    const engine = new MemoryEngine();
    // The old run's one write, and so the newest version stored: (later, 0).
    await new LocalStore(engine, new HybridClock({ wallMs: () => later })).put(
      Buffer.from('a'),
      Buffer.from('old'),
      ONE,
    );
    let wallMs = T;
    const store = new LocalStore(engine, new HybridClock({ wallMs: () => wallMs }));
    // Stamped above the stored version, one above the other: (later, 1), then (later, 2).
    await store.put(Buffer.from('a'), Buffer.from('first'), ONE);
    await store.put(Buffer.from('a'), Buffer.from('second'), ONE);
    // The wall clock reaches the old run's millisecond: the clock stamps (later, 0) for another key,
    // then (later, 1), above the newest version the store opened with but below what 'a' holds now.
    wallMs = later;
    await store.put(Buffer.from('b'), Buffer.from('v'), ONE);
    await store.put(Buffer.from('a'), Buffer.from('third'), ONE);
    assert.equal((await store.get(Buffer.from('a'), ONE))?.value.toString(), 'third');
  });

  test('a key held at the largest version there is refuses a write instead of wrapping below it', async () => {
    const engine = new MemoryEngine();
    await engine.write(valueEntry(Buffer.from('x'), VERSION_MAX, Buffer.from('end')));
    const store = new LocalStore(engine, new HybridClock({ wallMs: () => T }));
    await assert.rejects(store.put(Buffer.from('x'), Buffer.from('v'), ONE), {
      code: 'RINGKV_NOT_ENOUGH_REPLICAS',
    });
    assert.equal((await store.get(Buffer.from('x'), ONE))?.value.toString(), 'end');
  });
});
