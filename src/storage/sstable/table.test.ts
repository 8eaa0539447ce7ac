import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  drain,
  plain,
  SMALL_TABLE,
  sampleEntries,
  sampleKey,
  tempDir,
  writeTable,
} from '../../../test/support/sstable-fixtures.js';
import { limits } from '../../config/limits.js';
import { AssertionError } from '../../util/assert.js';
import { isRingkvError } from '../../util/errors.js';
import { encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import { type Entry, EntryKind, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { RecordView } from '../entry/record.js';
import { makeVersion } from '../entry/version.js';
import { FaultyVfs, MemoryVfs } from '../vfs/index.js';
import { BLOCK_CACHE_OVERHEAD_BYTES, BlockCache } from './cache.js';
import { BLOCK_NOT_CACHED, TableReader } from './reader.js';
import { scanTableSync } from './scanner.js';
import { TableWriter } from './writer.js';

const COUNT = 2000;

describe('TableWriter and TableReader', () => {
  const tmp = tempDir();
  const path = join(tmp.dir, '000001.sst');
  // Keys sampleKey(0), sampleKey(2), ..., so every odd key is absent and falls between two present ones.
  const entries = sampleEntries(COUNT);
  let reader: TableReader;

  before(async () => {
    const meta = writeTable(path, entries);
    assert.equal(meta.fileNumber, 1);
    assert.equal(meta.entryCount, COUNT);
    assert.equal(meta.fileBytes, statSync(path).size);
    assert.deepEqual(meta.smallestKey, entries[0]!.key);
    assert.deepEqual(meta.largestKey, entries[COUNT - 1]!.key);
    assert.equal(meta.minVersion, 1000n);
    assert.equal(meta.maxVersion, 1000n + BigInt(COUNT - 1));
    reader = await TableReader.open(path, 1, new BlockCache(1 << 20));
  });

  after(async () => {
    await reader.close();
    tmp.remove();
  });

  it('reports the metadata from the footer and index', () => {
    assert.equal(reader.fileNumber, 1);
    assert.equal(reader.entryCount, COUNT);
    assert.equal(reader.fileBytes, statSync(path).size);
    assert.deepEqual(reader.smallestKey, sampleKey(0));
    assert.deepEqual(reader.largestKey, sampleKey(2 * (COUNT - 1)));
    assert.equal(reader.minVersion, 1000n);
    assert.equal(reader.maxVersion, 1000n + BigInt(COUNT - 1));
    assert.ok(reader._index.blockCount > 50, `only ${reader._index.blockCount} blocks`);
  });

  it('cuts blocks near blockBytes', () => {
    const index = reader._index;
    for (let i = 0; i < index.blockCount; i++) assert.ok(index.blockBytes(i) <= SMALL_TABLE.blockBytes);
    assert.ok(index.blockBytes(0) > SMALL_TABLE.blockBytes / 2);
  });

  it('gets every present key with kind, version, expiry and value intact', async () => {
    for (const entry of entries) {
      assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
      assert.ok(reader.mayContain(entry.key));
    }
    assert.ok(entries.some((e) => e.kind === EntryKind.Tombstone));
    assert.ok(entries.some((e) => e.expiresAtMs !== 0));
  });

  it('returns undefined for absent keys before, between and after', async () => {
    assert.equal(await reader.get(Buffer.alloc(0)), undefined);
    assert.equal(await reader.get(Buffer.from('a')), undefined);
    for (let i = 1; i < 2 * COUNT; i += 2) assert.equal(await reader.get(sampleKey(i)), undefined);
    assert.equal(await reader.get(Buffer.from('key-999999')), undefined);
    assert.equal(await reader.get(Buffer.from('z')), undefined);
  });

  it('scans the whole table in order, one block per batch', async () => {
    const cursor = reader.cursor(Buffer.alloc(0));
    let batches = 0;
    const seen: Entry[] = [];
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      assert.ok(batch.length > 0);
      seen.push(...batch);
      batches++;
    }
    assert.equal(batches, reader._index.blockCount);
    assert.deepEqual(seen.map(plain), entries.map(plain));
    assert.equal(await cursor.next(), undefined, 'stays exhausted');
    await cursor.close();
  });

  it('scans sub-ranges with inclusive start and exclusive end', async () => {
    const cases: Array<[number, number | undefined]> = [
      [0, 2], // one entry
      [20, 40], // present start, present end
      [21, 41], // absent start and end, between keys
      [500, 1700], // across many blocks, ending mid-block
      [3001, undefined], // open end
      [3990, 5000], // end past the last key
    ];
    for (const [from, to] of cases) {
      const expected = entries.filter(
        (e) => e.key.compare(sampleKey(from)) >= 0 && (to === undefined || e.key.compare(sampleKey(to)) < 0),
      );
      const cursor = reader.cursor(sampleKey(from), to === undefined ? undefined : sampleKey(to));
      assert.deepEqual((await drain(cursor)).map(plain), expected.map(plain), `[${from}, ${to})`);
      await cursor.close();
    }
  });

  it('scans empty ranges as empty', async () => {
    const empty: Array<[Buffer, Buffer | undefined]> = [
      [sampleKey(10), sampleKey(10)], // start == end
      [sampleKey(20), sampleKey(10)], // start > end
      [sampleKey(11), sampleKey(12)], // between two adjacent keys
      [Buffer.from('z'), undefined], // after the last key
      [Buffer.from('a'), Buffer.from('b')], // before the first key
    ];
    for (const [start, end] of empty) {
      const cursor = reader.cursor(start, end);
      assert.equal(await cursor.next(), undefined, `[${start}, ${end})`);
      await cursor.close();
    }
  });

  it('stops a range at a key that is the first of a block', async () => {
    const index = reader._index;
    // The first key of block 5 is the key after block 4's last key.
    const lastOfBlock4 = entries.findIndex((e) => e.key.equals(index.lastKey(4)));
    const firstOfBlock5 = entries[lastOfBlock4 + 1]!.key;
    const cursor = reader.cursor(entries[0]!.key, firstOfBlock5);
    const seen = await drain(cursor);
    assert.deepEqual(seen.map(plain), entries.slice(0, lastOfBlock4 + 1).map(plain));
  });
});

describe('tables with unusual values', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  it('round-trips empty values, values larger than a block, and a value larger than a scan chunk', async () => {
    const path = join(tmp.dir, '000002.sst');
    const entries: Entry[] = [];
    for (let i = 0; i < 300; i++) {
      const key = sampleKey(i);
      if (i % 3 === 0) entries.push(valueEntry(key, BigInt(i + 1), Buffer.alloc(0)));
      else if (i === 100) entries.push(valueEntry(key, BigInt(i + 1), Buffer.alloc(1_200_000, 0xab)));
      else if (i % 3 === 1) entries.push(valueEntry(key, BigInt(i + 1), Buffer.alloc(5000 + i, i & 0xff)));
      else entries.push(tombstoneEntry(key, BigInt(i + 1)));
    }
    const meta = writeTable(path, entries, { blockBytes: 4096, bloomBitsPerKey: 10 }, 2);
    assert.ok(meta.fileBytes > 1_200_000 + 99 * 5000);

    const reader = await TableReader.open(path, 2, new BlockCache(1 << 20));
    try {
      for (const entry of entries) assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
      const cursor = reader.cursor(sampleKey(90), sampleKey(110));
      assert.deepEqual((await drain(cursor)).map(plain), entries.slice(90, 110).map(plain));
    } finally {
      await reader.close();
    }
    assert.deepEqual([...scanTableSync(path)].map(plain), entries.map(plain));
  });

  it('writes a one-entry table', async () => {
    const path = join(tmp.dir, '000003.sst');
    const entry = valueEntry(Buffer.from('solo'), 42n, Buffer.from('v'), 123);
    const meta = writeTable(path, [entry], SMALL_TABLE, 3);
    assert.deepEqual(meta.smallestKey, entry.key);
    assert.deepEqual(meta.largestKey, entry.key);
    const reader = await TableReader.open(path, 3, new BlockCache(0));
    try {
      assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
      assert.equal(await reader.get(Buffer.from('solp')), undefined);
      assert.deepEqual((await drain(reader.cursor(Buffer.alloc(0)))).map(plain), [plain(entry)]);
    } finally {
      await reader.close();
    }
  });

  it('accepts a key at the hard length maximum and an empty key', async () => {
    const path = join(tmp.dir, '000004.sst');
    const entries = [
      valueEntry(Buffer.alloc(0), 1n, Buffer.from('e')),
      valueEntry(Buffer.alloc(0xffff, 0x61), 2n, EMPTY),
    ];
    writeTable(path, entries, SMALL_TABLE, 4);
    const reader = await TableReader.open(path, 4, new BlockCache(1 << 20));
    try {
      for (const entry of entries) assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
    } finally {
      await reader.close();
    }
  });
});

const EMPTY = Buffer.alloc(0);

describe('scanTableSync', () => {
  it('returns every entry in order and closes the file when stopped early', () => {
    const tmp = tempDir();
    try {
      const path = join(tmp.dir, '000005.sst');
      const entries = sampleEntries(1500);
      writeTable(path, entries);
      assert.deepEqual([...scanTableSync(path)].map(plain), entries.map(plain));
      let taken = 0;
      for (const _entry of scanTableSync(path)) if (++taken === 10) break;
      assert.equal(taken, 10);
    } finally {
      tmp.remove();
    }
  });
});

describe('TableWriter contract', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  it('asserts strictly ascending keys', () => {
    const writer = new TableWriter(join(tmp.dir, '000010.sst'), 10, SMALL_TABLE);
    writer.add(valueEntry(sampleKey(2), 1n, EMPTY));
    assert.throws(() => writer.add(valueEntry(sampleKey(2), 2n, EMPTY)), AssertionError);
    assert.throws(() => writer.add(valueEntry(sampleKey(1), 2n, EMPTY)), AssertionError);
    writer.abort();
  });

  it('asserts ascending keys across a block boundary', () => {
    const writer = new TableWriter(join(tmp.dir, '000011.sst'), 11, { blockBytes: 64, bloomBitsPerKey: 10 });
    writer.add(valueEntry(sampleKey(5), 1n, Buffer.alloc(100)));
    // The next entry would start a new block; order is still checked against the previous block.
    assert.throws(() => writer.add(valueEntry(sampleKey(4), 1n, Buffer.alloc(100))), AssertionError);
    writer.abort();
  });

  it('refuses to overwrite an existing file', () => {
    const path = join(tmp.dir, '000012.sst');
    writeFileSync(path, 'existing');
    assert.throws(() => new TableWriter(path, 12, SMALL_TABLE), /EEXIST/);
  });

  it('syncs a large table every limits.tableSyncBytes while writing it, not only at its end', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    await vfs.mkdir('/t');
    // The table's second fsync fails: without syncs on the way, its only one is at finish().
    const second = vfs.inject({ op: 'fsync', path: /\.sst$/, skip: 1, times: 1 });
    const writer = new TableWriter('/t/000015.sst', 15, SMALL_TABLE, vfs);
    const value = Buffer.alloc(1024, 7);
    const entries = Math.ceil((4 * limits.tableSyncBytes) / value.length);
    let added = 0;
    assert.throws(() => {
      for (; added < entries; added++) writer.add(valueEntry(sampleKey(added), 1n, value));
    }, /EIO/);
    assert.equal(second.injected, 1);
    // The fault came in add(), after more than one sync's worth of values.
    assert.ok(added * value.length > limits.tableSyncBytes, `${added} entries`);
    assert.ok(added < entries);
    writer.abort();
  });

  it('abort() deletes the file, also after finish()', () => {
    const first = join(tmp.dir, '000013.sst');
    const writer = new TableWriter(first, 13, SMALL_TABLE);
    writer.add(valueEntry(sampleKey(1), 1n, EMPTY));
    writer.abort();
    assert.throws(() => statSync(first), /ENOENT/);
    assert.throws(() => writer.add(valueEntry(sampleKey(2), 1n, EMPTY)), AssertionError);

    const second = join(tmp.dir, '000014.sst');
    const finished = new TableWriter(second, 14, SMALL_TABLE);
    finished.add(valueEntry(sampleKey(1), 1n, EMPTY));
    finished.finish();
    assert.ok(statSync(second).size > 0);
    finished.abort();
    assert.throws(() => statSync(second), /ENOENT/);
  });

  it('refuses to finish an empty table', () => {
    const writer = new TableWriter(join(tmp.dir, '000015.sst'), 15, SMALL_TABLE);
    assert.throws(() => writer.finish(), AssertionError);
    writer.abort();
  });

  it('estimates its size as it goes', () => {
    const writer = new TableWriter(join(tmp.dir, '000016.sst'), 16, SMALL_TABLE);
    assert.equal(writer.estimatedBytes, 0);
    let previous = 0;
    for (const entry of sampleEntries(500)) {
      writer.add(entry);
      assert.ok(writer.estimatedBytes > previous);
      previous = writer.estimatedBytes;
    }
    assert.equal(writer.entryCount, 500);
    const meta = writer.finish();
    assert.ok(
      previous <= meta.fileBytes && meta.fileBytes < previous * 1.2,
      `${previous} vs ${meta.fileBytes}`,
    );
  });

  it('copies the keys it keeps, so callers may reuse their buffers', async () => {
    const path = join(tmp.dir, '000017.sst');
    const writer = new TableWriter(path, 17, SMALL_TABLE);
    const key = Buffer.from('k-00');
    const first = valueEntry(key, 1n, EMPTY);
    writer.add(first);
    key.write('k-01');
    writer.add(valueEntry(key, 2n, EMPTY));
    const meta = writer.finish();
    key.write('zzzz');
    assert.equal(meta.smallestKey.toString(), 'k-00');
    assert.equal(meta.largestKey.toString(), 'k-01');
    assert.deepEqual(
      [...scanTableSync(path)].map((e) => e.key.toString()),
      ['k-00', 'k-01'],
    );
  });
});

describe('TableWriter droppable stats', () => {
  const tmp = tempDir();
  after(() => tmp.remove());
  const physical = (ms: number) => makeVersion(ms, 3);
  // Values that never expire, tombstones and values with an expiry, with versions out of time order.
  const entries = [
    valueEntry(sampleKey(0), physical(9000), EMPTY),
    tombstoneEntry(sampleKey(1), physical(5000)),
    valueEntry(sampleKey(2), physical(1000), EMPTY, 7000),
    tombstoneEntry(sampleKey(3), physical(6000)),
    valueEntry(sampleKey(4), physical(8000), EMPTY, 2000),
    valueEntry(sampleKey(5), physical(9500), EMPTY),
  ];
  // Tombstones from their version's time, values from their expiry or, written already expired (key 4),
  // from their version's time; the newest of their versions.
  const expected = { entries: 4, fromMs: 8000, versionMax: physical(8000) };

  it('counts tombstones and values with an expiry, the latest time they start ageing, and their newest version', () => {
    assert.deepEqual(writeTable(join(tmp.dir, '000030.sst'), entries, SMALL_TABLE, 30).droppable, expected);
  });

  it('counts the same for records added as they are encoded (flushes and compactions)', () => {
    const writer = new TableWriter(join(tmp.dir, '000031.sst'), 31, SMALL_TABLE);
    const record = new RecordView();
    for (const entry of entries) {
      const buf = Buffer.alloc(encodedEntryBytes(entry));
      encodeEntry(entry, buf, 0);
      assert.equal(record.parse(buf, 0, buf.length), undefined);
      writer.addRecord(record);
    }
    assert.deepEqual(writer.finish().droppable, expected);
  });

  it('leaves them out of a table with nothing droppable', () => {
    const meta = writeTable(join(tmp.dir, '000032.sst'), [entries[0]!, entries[5]!], SMALL_TABLE, 32);
    assert.equal(meta.droppable, undefined);
    assert.equal('droppable' in meta, false);
  });
});

describe('block cache and reference counting', () => {
  const tmp = tempDir();
  const path = join(tmp.dir, '000020.sst');
  const entries = sampleEntries(1000);
  before(() => {
    writeTable(path, entries, SMALL_TABLE, 20);
  });
  after(() => tmp.remove());

  it('hits the cache on the second read of a block', async () => {
    const cache = new BlockCache(1 << 20);
    const reader = await TableReader.open(path, 20, cache);
    try {
      const entry = entries[100]!;
      assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
      assert.deepEqual(cache.stats(), { hits: 0, misses: 1, bytes: cache.stats().bytes });
      assert.ok(cache.stats().bytes > 0);
      assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
      assert.equal(cache.stats().hits, 1);
      assert.equal(cache.stats().misses, 1);
    } finally {
      await reader.close();
    }
    assert.equal(cache.stats().bytes, 0, 'a released reader leaves nothing in the cache');
  });

  it('reads a block getCached() found missing with one lookup in all', async () => {
    const cache = new BlockCache(1 << 20);
    const reader = await TableReader.open(path, 20, cache);
    try {
      const entry = entries[300]!;
      assert.equal(reader.getCached(entry.key), BLOCK_NOT_CACHED);
      assert.deepEqual(plain(await reader.getUncached(entry.key)), plain(entry));
      assert.deepEqual(cache.stats(), { hits: 0, misses: 1, bytes: cache.stats().bytes });
      assert.deepEqual(plain(reader.getCached(entry.key) as Entry | undefined), plain(entry));
      assert.equal(cache.stats().hits, 1);
      assert.equal(await reader.getUncached(Buffer.from([0xff, 0xff])), undefined, 'past the last key');
    } finally {
      await reader.close();
    }
  });

  it('shares one read between concurrent misses on a block', async () => {
    const cache = new BlockCache(1 << 20);
    const reader = await TableReader.open(path, 20, cache);
    try {
      const [a, b] = await Promise.all([reader.get(entries[0]!.key), reader.get(entries[1]!.key)]);
      assert.deepEqual([plain(a), plain(b)], [plain(entries[0]), plain(entries[1])]);
      // Both entries are views into one buffer: the block was read once, not twice.
      assert.equal(a?.key.buffer, b?.key.buffer);
      assert.equal(cache.stats().misses, 2);
      assert.equal(cache.stats().bytes, reader._index.blockBytes(0) + BLOCK_CACHE_OVERHEAD_BYTES);
    } finally {
      await reader.close();
    }
  });

  it('evicts by bytes while reading many blocks', async () => {
    const capacity = 4 * 400;
    const cache = new BlockCache(capacity);
    const reader = await TableReader.open(path, 20, cache);
    try {
      for (const entry of entries) assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
      assert.ok(cache.stats().bytes <= capacity);
      assert.ok(cache.stats().bytes > 0);
      const misses = cache.stats().misses;
      await reader.get(entries[0]!.key); // its block was evicted long ago
      assert.equal(cache.stats().misses, misses + 1);
    } finally {
      await reader.close();
    }
  });

  it('keeps the reader usable by an open cursor after close()', async () => {
    // No cache: every batch is a real read on the file handle.
    const reader = await TableReader.open(path, 20, new BlockCache(0));
    const cursor = reader.cursor(Buffer.alloc(0));
    const seen = [...((await cursor.next()) ?? [])];
    await reader.close();
    // The handle is still open while the cursor holds its reference: reads still work.
    assert.deepEqual(plain(await reader.get(entries[500]!.key)), plain(entries[500]));
    reader.ref();
    reader.unref();
    seen.push(...(await drain(cursor)));
    assert.deepEqual(seen.map(plain), entries.map(plain));
    // Exhausted: the cursor let go, the handle is released, and the reader refuses work.
    await reader.close();
    assert.throws(
      () => reader.ref(),
      (err) => isRingkvError(err, 'RINGKV_CLOSED'),
    );
    await assert.rejects(reader.get(entries[0]!.key), (err) => isRingkvError(err, 'RINGKV_CLOSED'));
    assert.throws(
      () => reader.cursor(Buffer.alloc(0)),
      (err) => isRingkvError(err, 'RINGKV_CLOSED'),
    );
    await cursor.close();
  });

  it('releases the handle when a cursor is closed early', async () => {
    const reader = await TableReader.open(path, 20, new BlockCache(0));
    const cursor = reader.cursor(sampleKey(100), sampleKey(900));
    assert.ok(await cursor.next());
    const closing = reader.close();
    reader.ref(); // still open
    reader.unref();
    await cursor.close();
    await cursor.close(); // twice is fine
    await closing;
    assert.throws(
      () => reader.ref(),
      (err) => isRingkvError(err, 'RINGKV_CLOSED'),
    );
    assert.equal(await cursor.next(), undefined);
  });

  it('lets a read in flight finish when the cursor is closed under it', async () => {
    const reader = await TableReader.open(path, 20, new BlockCache(0));
    const cursor = reader.cursor(Buffer.alloc(0));
    const pending = cursor.next();
    await cursor.close();
    await reader.close();
    assert.equal(await pending, undefined, 'a closed cursor hands out nothing more');
    await reader.close();
    assert.throws(
      () => reader.ref(),
      (err) => isRingkvError(err, 'RINGKV_CLOSED'),
    );
  });
});
