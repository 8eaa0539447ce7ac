import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { plain, sampleEntries, sampleKey } from '../../../test/support/sstable-fixtures.js';
import { INVARIANTS } from '../../util/assert.js';
import { CorruptionError } from '../../util/errors.js';
import { encodedEntryBytes } from '../entry/codec.js';
import { type Entry, valueEntry } from '../entry/entry.js';
import { Block, BlockBuilder } from './block.js';
import { BLOCK_OFFSET_BYTES, BLOCK_TRAILER_BYTES } from './format.js';

function buildBlock(entries: readonly Entry[]): Buffer {
  const builder = new BlockBuilder(64);
  for (const entry of entries) builder.add(entry, encodedEntryBytes(entry));
  return Buffer.from(builder.finish());
}

describe('BlockBuilder and Block', () => {
  const entries = sampleEntries(40); // keys sampleKey(0), sampleKey(2), ... sampleKey(78)

  it('sizes a block as entries plus offsets plus trailer', () => {
    const builder = new BlockBuilder(64);
    let entryBytes = 0;
    for (const entry of entries) {
      const bytes = encodedEntryBytes(entry);
      assert.equal(builder.bytesWith(bytes), builder.finishedBytes + bytes + BLOCK_OFFSET_BYTES);
      builder.add(entry, bytes);
      entryBytes += bytes;
    }
    const expected = entryBytes + entries.length * BLOCK_OFFSET_BYTES + BLOCK_TRAILER_BYTES;
    assert.equal(builder.finishedBytes, expected);
    assert.equal(builder.finish().length, expected);
  });

  it('round-trips every entry and finds each key by binary search', () => {
    const block = Block.decode(buildBlock(entries), 'mem', 0);
    assert.equal(block.entryCount, entries.length);
    for (let i = 0; i < entries.length; i++) {
      assert.deepEqual(plain(block.entryAt(i)), plain(entries[i]));
      assert.deepEqual(plain(block.find(entries[i]!.key)), plain(entries[i]));
      assert.equal(block.lowerBound(entries[i]!.key), i);
    }
  });

  it('places absent keys before, between and after the entries', () => {
    const block = Block.decode(buildBlock(entries), 'mem', 0);
    assert.equal(block.find(Buffer.from('a')), undefined);
    assert.equal(block.lowerBound(Buffer.from('a')), 0);
    assert.equal(block.find(sampleKey(5)), undefined);
    assert.equal(block.lowerBound(sampleKey(5)), 3); // between sampleKey(4) and sampleKey(6)
    assert.equal(block.find(Buffer.from('z')), undefined);
    assert.equal(block.lowerBound(Buffer.from('z')), entries.length);
    assert.equal(block.find(Buffer.alloc(0)), undefined);
  });

  it('hands out a sub-range of entries in order', () => {
    const block = Block.decode(buildBlock(entries), 'mem', 0);
    assert.deepEqual(block.entries(5, 9).map(plain), entries.slice(5, 9).map(plain));
    assert.deepEqual(block.entries(3, 3), []);
  });

  it('compares the last added key in place', () => {
    const builder = new BlockBuilder(64);
    const entry = valueEntry(sampleKey(10), 1n, Buffer.from('v'));
    builder.add(entry, encodedEntryBytes(entry));
    assert.equal(builder.compareLastKey(sampleKey(10)), 0);
    assert.ok(builder.compareLastKey(sampleKey(11)) < 0);
    assert.ok(builder.compareLastKey(sampleKey(9)) > 0);
    assert.deepEqual(builder.lastKey(), sampleKey(10));
  });

  it('reuses the builder after reset', () => {
    const builder = new BlockBuilder(64);
    const big = valueEntry(sampleKey(1), 1n, Buffer.alloc(10_000, 7));
    builder.add(big, encodedEntryBytes(big));
    const first = Block.decode(Buffer.from(builder.finish()), 'mem', 0);
    builder.reset();
    assert.equal(builder.entryCount, 0);
    const small = valueEntry(sampleKey(2), 2n, Buffer.from('s'));
    builder.add(small, encodedEntryBytes(small));
    const second = Block.decode(Buffer.from(builder.finish()), 'mem', 0);
    assert.deepEqual(plain(first.entryAt(0)), plain(big));
    assert.deepEqual(plain(second.entryAt(0)), plain(small));
    assert.equal(second.entryCount, 1);
  });

  it('rejects a block whose bytes were changed, naming the file and offset', () => {
    const bytes = buildBlock(entries);
    for (const at of [0, 17, bytes.length - 9, bytes.length - 1]) {
      const damaged = Buffer.from(bytes);
      damaged[at]! ^= 0x40;
      assert.throws(
        () => Block.decode(damaged, '/data/000007.sst', 4096),
        (err: unknown) =>
          err instanceof CorruptionError && err.file === '/data/000007.sst' && err.offset === 4096,
      );
    }
  });

  it('with RINGKV_INVARIANTS, a block whose keys are out of order (its crc right) is corruption naming the file', (t) => {
    if (!INVARIANTS) {
      t.skip('RINGKV_INVARIANTS is not set: the order is not checked');
      return;
    }
    // As a faulty or hostile writer would leave it: the order is the file's fault, not the reader's.
    for (const keys of [
      [entries[1]!, entries[0]!],
      [entries[0]!, entries[2]!, entries[2]!],
    ]) {
      assert.throws(
        () => Block.decode(buildBlock(keys), '/data/000007.sst', 4096),
        (err: unknown) =>
          err instanceof CorruptionError &&
          err.file === '/data/000007.sst' &&
          err.offset === 4096 &&
          /not after the key before it/.test(err.message),
      );
    }
  });

  it('rejects a block shorter than its trailer', () => {
    assert.throws(() => Block.decode(Buffer.alloc(5), 'f', 0), CorruptionError);
  });
});
