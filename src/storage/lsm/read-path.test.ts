/**
 * The block cache counters seen through point reads (read-path.ts): one
 * lookup per block a read needs, so that hits / (hits + misses) is the hit
 * ratio /metrics documents.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError } from '../../util/errors.js';
import { valueEntry } from '../entry/entry.js';
import { LsmEngine } from '../lsm-engine.js';
import { MemoryVfs } from '../vfs/index.js';

describe('ReadPath block cache counters', () => {
  test('a point read of an uncached block counts one miss; reading it again, one hit', async () => {
    const engine = await LsmEngine.open({ dir: '/data', sync: false, vfs: new MemoryVfs(), log: () => {} });
    try {
      const key = Buffer.from('key');
      await engine.write(valueEntry(key, 1n, Buffer.from('value')));
      // A flushed table is not warmed: its one block is read on the first get.
      await engine.flush();
      const before = engine.stats();
      assert.equal((await engine.get(key))?.value.toString(), 'value');
      const cold = engine.stats();
      assert.equal(cold.blockCacheMisses - before.blockCacheMisses, 1, 'misses of the cold read');
      assert.equal(cold.blockCacheHits - before.blockCacheHits, 0, 'hits of the cold read');
      assert.equal((await engine.get(key))?.value.toString(), 'value');
      const warm = engine.stats();
      assert.equal(warm.blockCacheMisses - cold.blockCacheMisses, 0, 'misses of the warm read');
      assert.equal(warm.blockCacheHits - cold.blockCacheHits, 1, 'hits of the warm read');
    } finally {
      await engine.close();
    }
  });
});

describe('ReadPath and damage', () => {
  test('a cached block whose entry is damaged fails get() with a rejection, never a synchronous throw', async () => {
    const vfs = new MemoryVfs();
    const engine = await LsmEngine.open({ dir: '/data', sync: false, vfs, log: () => {} });
    try {
      const key = Buffer.from('key');
      await engine.write(valueEntry(key, 1n, Buffer.from('value')));
      await engine.flush();
      // The table's one block, stored raw (level 0), as a hostile or faulty writer would leave it: the
      // entry's value length runs past the entries, and the block's crc agrees. The block decodes (its
      // crc is right) and is cached; reading the entry finds the damage.
      const name = (await vfs.list('/data')).find((n) => n.endsWith('.sst'))!;
      const path = `/data/${name}`;
      const bytes = await vfs.readFile(path);
      const valueLengthAt = 15 + 1 + key.length;
      assert.ok(bytes.subarray(16, 16 + key.length).equals(key), 'the block is stored raw, entry first');
      assert.equal(bytes[valueLengthAt], 5);
      const entryCount = 1;
      const crcAt = valueLengthAt + 1 + 5 + 4 * entryCount + 4;
      bytes[valueLengthAt] = 0x7f;
      bytes.writeUInt32LE(crc32(bytes.subarray(0, crcAt)), crcAt);
      const file = vfs.openSync(path, 'r+');
      try {
        file.writeSync(bytes, 0, crcAt + 4, 0);
      } finally {
        file.closeSync();
      }
      for (const round of ['from disk', 'cached']) {
        let read: Promise<unknown> | undefined;
        assert.doesNotThrow(() => {
          read = engine.get(key);
        }, `get() of a block ${round} threw synchronously`);
        await assert.rejects(read!, (err: unknown) => {
          assert.ok(err instanceof CorruptionError, String(err));
          assert.equal(err.file, path);
          assert.match(err.message, /value runs past the end/);
          return true;
        });
      }
    } finally {
      await engine.close();
    }
  });
});
