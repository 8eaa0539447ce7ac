import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
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

describe('BlockCache (property)', () => {
  const file = fc.integer({ min: 1, max: 3 });
  const slot = fc.integer({ min: 0, max: 5 });
  // Blocks of about 40 to 3,000 bytes against capacities of 0 to 12,000: some larger than the cache.
  const valueBytes = fc.integer({ min: 0, max: 3000 });
  const opArb = fc.oneof(
    fc.record({ op: fc.constant('insert' as const), file, slot, valueBytes }),
    fc.record({ op: fc.constant('insertCold' as const), file, slot, valueBytes }),
    fc.record({ op: fc.constant('lookup' as const), file, slot }),
    fc.record({ op: fc.constant('has' as const), file, slot }),
    fc.record({ op: fc.constant('evictFile' as const), file }),
  );

  it('matches a model LRU by bytes, never holds more than its capacity, and counts hits and misses', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 12_000 }),
        fc.array(opArb, { maxLength: 120 }),
        (capacity, ops) => {
          const cache = new BlockCache(capacity);
          // Most recently used first.
          let model: { file: number; offset: number; block: Block; charge: number }[] = [];
          let hits = 0;
          let misses = 0;
          const bytes = () => model.reduce((sum, m) => sum + m.charge, 0);
          const at = (file: number, offset: number) =>
            model.findIndex((m) => m.file === file && m.offset === offset);
          for (const o of ops) {
            if (o.op === 'evictFile') {
              cache.evictFile(o.file);
              model = model.filter((m) => m.file !== o.file);
            } else {
              const offset = o.slot * 1000;
              const i = at(o.file, offset);
              if (o.op === 'lookup') {
                const found = cache.lookup(o.file, offset);
                if (i < 0) {
                  misses++;
                  assert.equal(found, undefined);
                } else {
                  hits++;
                  const [m] = model.splice(i, 1);
                  assert.equal(found, m!.block);
                  model.unshift(m!);
                }
              } else if (o.op === 'has') {
                assert.equal(cache.has(o.file, offset), i >= 0);
              } else {
                const block = blockAt(offset, o.valueBytes);
                const node = {
                  file: o.file,
                  offset,
                  block,
                  charge: block.buf.length + BLOCK_CACHE_OVERHEAD_BYTES,
                };
                if (o.op === 'insert') {
                  cache.insert(o.file, block);
                  if (node.charge <= capacity) {
                    if (i >= 0) model.splice(i, 1);
                    model.unshift(node);
                    while (bytes() > capacity) model.pop();
                  }
                } else {
                  const fits = bytes() + node.charge <= capacity;
                  assert.equal(cache.insertCold(o.file, block), fits);
                  if (fits && i < 0) model.push(node);
                }
              }
            }
            assert.ok(cache.stats().bytes <= capacity, 'over capacity');
            assert.deepEqual(cache.stats(), { hits, misses, bytes: bytes() });
          }
          for (const m of model) assert.ok(cache.has(m.file, m.offset));
          for (const file of [1, 2, 3]) cache.evictFile(file);
          assert.equal(cache.stats().bytes, 0);
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });
});
