import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TINY } from '../../test/support/lsm-options.js';
import { tempDir } from '../../test/support/temp-dir.js';
import { murmur3 } from '../util/hash.js';
import type { Engine } from './engine.js';
import { type Entry, tombstoneEntry, valueEntry } from './entry/entry.js';
import { makeVersion } from './entry/version.js';
import { LsmEngine } from './lsm-engine.js';
import { MemoryEngine } from './memory-engine.js';
import { type PurgeFilter, purged } from './purge.js';

const HALF = 2 ** 31;
/** Recent versions, so that compaction keeps tombstones (their grace period has not passed). */
const NOW_MS = Date.now();
/** The lower half of the hash space, every version written before NOW_MS + 1 s. */
const LOWER: PurgeFilter = { hashRanges: [0, HALF], versionMax: makeVersion(NOW_MS + 1000, 0) };

function hashOf(key: string): number {
  return murmur3(Buffer.from(key), 0);
}

async function keysOf(engine: Engine): Promise<string[]> {
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  const keys: string[] = [];
  for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
    for (const entry of batch) keys.push(entry.key.toString());
  }
  await cursor.close();
  return keys;
}

describe('purge', () => {
  test('purged(): ranges are [start, end), several of them, and the version bound holds', () => {
    const key = Buffer.from('some-key');
    const hash = murmur3(key, 0);
    const at = (ranges: number[], versionMax = 10n) =>
      purged({ hashRanges: ranges, versionMax }, key, 0, key.length, 5n);
    assert.equal(at([hash, hash + 1]), true);
    assert.equal(at([0, hash]), false, 'end excluded');
    assert.equal(at([hash + 1, 2 ** 32]), false);
    assert.equal(at([0, 1, hash - 1 > 1 ? hash - 1 : 2, hash + 1, 2 ** 32 - 1, 2 ** 32]), true);
    assert.equal(at([0, 2 ** 32], 4n), false, 'a newer version stays');
    assert.equal(at([]), false);
  });

  const engines: [
    string,
    () => Promise<{ engine: Engine; reopen?: () => Promise<Engine>; close(): Promise<void> }>,
  ][] = [
    ['MemoryEngine', async () => ({ engine: new MemoryEngine(), close: async () => {} })],
    [
      'LsmEngine, tiny limits',
      async () => {
        const dir = await tempDir('ringkv-purge-');
        const open = () => LsmEngine.open({ dir: dir.path, sync: false, ...TINY, log: () => {} });
        return { engine: await open(), reopen: open, close: () => dir.remove() };
      },
    ],
  ];
  for (const [name, make] of engines) {
    test(`${name}: drops what the filter names, keeps the rest and what is newer`, async () => {
      const { engine, reopen, close } = await make();
      const entries: Entry[] = [];
      for (let i = 0; i < 600; i++) {
        const key = Buffer.from(`key-${i}`);
        const version = makeVersion(NOW_MS, i);
        entries.push(i % 7 === 0 ? tombstoneEntry(key, version) : valueEntry(key, version, key));
      }
      for (const entry of entries) await engine.write(entry);
      // A key of the lower half written again above the bound: it stays.
      const kept = entries.map((e) => e.key.toString()).find((k) => hashOf(k) < HALF)!;
      await engine.write(valueEntry(Buffer.from(kept), makeVersion(NOW_MS + 5000, 0), Buffer.from('newer')));
      const expected = entries
        .map((e) => e.key.toString())
        .filter((k) => hashOf(k) >= HALF || k === kept)
        .sort();
      try {
        await engine.purge!(LOWER);
        assert.deepEqual((await keysOf(engine)).sort(), expected);
        assert.equal((await engine.get(Buffer.from(kept)))?.value.toString(), 'newer');
      } catch (err) {
        await engine.close();
        await close();
        throw err;
      }
      if (reopen !== undefined) {
        await engine.close();
        const again = await reopen();
        assert.deepEqual((await keysOf(again)).sort(), expected, 'purged for good: not back after a restart');
        await again.close();
      } else {
        await engine.close();
      }
      await close();
    });
  }
});
