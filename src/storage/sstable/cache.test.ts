import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sampleKey } from '../../../test/support/sstable-fixtures.js';
import { encodedEntryBytes } from '../entry/codec.js';
import { valueEntry } from '../entry/entry.js';
import { Block, BlockBuilder } from './block.js';
import { BLOCK_CACHE_OVERHEAD_BYTES, BlockCache } from './cache.js';

/** A one-entry block at `fileOffset`, about `valueBytes` + 40 bytes long. */
function blockAt(fileOffset: number, valueBytes = 100): Block {
  const builder = new BlockBuilder(64);
  const entry = valueEntry(sampleKey(fileOffset), 1n, Buffer.alloc(valueBytes, 1));
  builder.add(entry, encodedEntryBytes(entry));
  return Block.decode(Buffer.from(builder.finish()), 'mem', fileOffset);
}

describe('BlockCache', () => {
  it('counts misses and hits', () => {
    const cache = new BlockCache(1 << 20);
    assert.equal(cache.lookup(1, 0), undefined);
    const block = blockAt(0);
    cache.insert(1, block);
    assert.equal(cache.lookup(1, 0), block);
    assert.equal(cache.lookup(2, 0), undefined, 'another file at the same offset is another block');
    assert.deepEqual(cache.stats(), {
      hits: 1,
      misses: 2,
      bytes: block.buf.length + BLOCK_CACHE_OVERHEAD_BYTES,
    });
  });

  it('evicts the least recently used blocks once over capacity', () => {
    const charge = blockAt(0).buf.length + BLOCK_CACHE_OVERHEAD_BYTES;
    const cache = new BlockCache(3 * charge);
    const blocks = [0, 1000, 2000].map((offset) => blockAt(offset));
    for (const block of blocks) cache.insert(1, block);
    assert.equal(cache.stats().bytes, 3 * charge);
    cache.lookup(1, 0); // 0 is now the most recently used; 1000 the least
    cache.insert(1, blockAt(3000));
    assert.equal(cache.stats().bytes, 3 * charge);
    assert.equal(cache.lookup(1, 1000), undefined);
    assert.ok(cache.lookup(1, 0));
    assert.ok(cache.lookup(1, 2000));
    assert.ok(cache.lookup(1, 3000));
  });

  it('charges by bytes: one large block pushes out several small ones', () => {
    const small = blockAt(0).buf.length + BLOCK_CACHE_OVERHEAD_BYTES;
    const cache = new BlockCache(4 * small);
    for (const offset of [0, 1000, 2000, 3000]) cache.insert(1, blockAt(offset));
    const large = blockAt(9000, 2 * small);
    cache.insert(1, large);
    assert.ok(cache.stats().bytes <= 4 * small);
    assert.equal(cache.lookup(1, 9000), large);
    assert.equal(cache.lookup(1, 0), undefined);
    assert.equal(cache.lookup(1, 1000), undefined);
    assert.equal(cache.lookup(1, 2000), undefined);
  });

  it('does not keep a block larger than its capacity', () => {
    const cache = new BlockCache(100);
    cache.insert(1, blockAt(0));
    assert.equal(cache.stats().bytes, 0);
    assert.equal(cache.lookup(1, 0), undefined);
  });

  it('drops a whole file on evictFile', () => {
    const cache = new BlockCache(1 << 20);
    cache.insert(1, blockAt(0));
    cache.insert(1, blockAt(1000));
    const kept = blockAt(0);
    cache.insert(2, kept);
    cache.evictFile(1);
    assert.equal(cache.stats().bytes, kept.buf.length + BLOCK_CACHE_OVERHEAD_BYTES);
    assert.equal(cache.lookup(1, 0), undefined);
    assert.equal(cache.lookup(1, 1000), undefined);
    assert.equal(cache.lookup(2, 0), kept);
    // The list is still consistent after removals from its middle.
    cache.insert(3, blockAt(0));
    cache.evictFile(2);
    cache.evictFile(3);
    assert.equal(cache.stats().bytes, 0);
  });

  it('replaces a block inserted twice at the same place', () => {
    const cache = new BlockCache(1 << 20);
    cache.insert(1, blockAt(0));
    const second = blockAt(0);
    cache.insert(1, second);
    assert.equal(cache.stats().bytes, second.buf.length + BLOCK_CACHE_OVERHEAD_BYTES);
    assert.equal(cache.lookup(1, 0), second);
  });
});
