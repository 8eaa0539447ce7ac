/**
 * The block cache counters seen through point reads (read-path.ts): one
 * lookup per block a read needs, so that hits / (hits + misses) is the hit
 * ratio /metrics documents.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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
