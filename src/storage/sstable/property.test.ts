import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { drain, plain, tempDir, writeTable } from '../../../test/support/sstable-fixtures.js';
import { BLOCK_COMPRESSIONS } from '../../config/compression.js';
import { compareBytes, compareRange, keyWord } from '../../util/bytes.js';
import { type Entry, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { BlockCache } from './cache.js';
import { TableIndex } from './format.js';
import { TableReader } from './reader.js';
import { scanTableSync } from './scanner.js';

const keyArb = fc.uint8Array({ minLength: 0, maxLength: 24 }).map((bytes) => Buffer.from(bytes));
const entryArb = fc.record({
  tombstone: fc.boolean(),
  version: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  expiresAtMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 47 })),
  value: fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    // Compressible values, so that blocks are stored compressed as well as raw.
    fc
      .tuple(fc.constantFrom('{"name":"', 'abc', '\u0000'), fc.nat(60), fc.nat(99))
      .map(([piece, times, n]) => Buffer.from(`${piece.repeat(times)}${n}`)),
  ),
});

describe('keyWord and TableIndex.findBlock (property)', () => {
  // Short keys over a small alphabet, zeros included, so that equal prefixes and zero-extensions occur.
  const shortKeyArb = fc.uint8Array({ maxLength: 7 }).map((bytes) => Buffer.from(bytes.map((b) => b & 3)));

  it('unequal prefixes order keys as Buffer.compare does', () => {
    fc.assert(
      fc.property(shortKeyArb, shortKeyArb, (a, b) => {
        const pa = keyWord(a, 0, a.length, 0);
        const pb = keyWord(b, 0, b.length, 0);
        if (pa !== pb)
          assert.equal(
            Math.sign(pa - pb),
            Math.sign(Buffer.compare(a, b)),
            `${a.toString('hex')} ${b.toString('hex')}`,
          );
      }),
      propertyParams({ numRuns: 2000 }),
    );
  });

  it('finds the first block whose last key is >= the key, as a linear search does', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(shortKeyArb, { minLength: 1, maxLength: 40, comparator: (a, b) => a.equals(b) }),
        shortKeyArb,
        (keys, probe) => {
          const lastKeys = [...keys].sort(Buffer.compare);
          const index = new TableIndex(lastKeys[0]!, lastKeys, {
            offsets: new Float64Array(lastKeys.length),
            bytes: new Uint32Array(lastKeys.length),
          });
          let expected = lastKeys.findIndex((last) => Buffer.compare(last, probe) >= 0);
          if (expected === -1) expected = lastKeys.length;
          assert.equal(index.findBlock(probe), expected);
          for (const [i, last] of lastKeys.entries()) assert.equal(index.findBlock(last), i);
        },
      ),
      propertyParams({ numRuns: 500 }),
    );
  });
});

describe('compareRange (property)', () => {
  it('orders ranges exactly as Buffer.compare does', () => {
    // Small alphabet and long arrays so that long common prefixes (past the inline 32 bytes) occur.
    const bytesArb = fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes.map((b) => b & 3)));
    fc.assert(
      fc.property(bytesArb, bytesArb, fc.nat(8), fc.nat(8), (a, b, skipA, skipB) => {
        const aStart = Math.min(skipA, a.length);
        const bStart = Math.min(skipB, b.length);
        const expected = Math.sign(Buffer.compare(a.subarray(aStart), b.subarray(bStart)));
        assert.equal(Math.sign(compareRange(a, aStart, a.length, b, bStart, b.length)), expected);
      }),
      propertyParams({ numRuns: 2000 }),
    );
    const long = Buffer.alloc(100, 7);
    const longer = Buffer.concat([long, Buffer.from([1])]);
    assert.ok(compareRange(long, 0, 100, longer, 0, 101) < 0);
    assert.ok(compareRange(longer, 0, 101, long, 0, 100) > 0);
    assert.equal(compareRange(long, 0, 100, Buffer.from(long), 0, 100), 0);
    assert.ok(compareRange(Buffer.concat([long, Buffer.from([9])]), 0, 101, longer, 0, 101) > 0);
  });
});

describe('SSTable round trip (property)', () => {
  const tmp = tempDir();
  after(() => tmp.remove());
  let serial = 0;
  let compressedBlocks = 0;
  let dictionaries = 0;

  it('random sorted unique key sets read back exactly through get, cursors and scanTableSync, with every codec', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.tuple(keyArb, entryArb), {
          minLength: 1,
          maxLength: 200,
          size: 'large',
          selector: ([key]) => key.toString('hex'),
        }),
        fc.array(keyArb, { maxLength: 20 }),
        fc.integer({ min: 32, max: 2048 }),
        fc.tuple(keyArb, keyArb),
        fc.constantFrom(...BLOCK_COMPRESSIONS),
        async (pairs, probes, blockBytes, [rangeA, rangeB], compression) => {
          const entries: Entry[] = pairs
            .map(([key, e]) =>
              e.tombstone
                ? tombstoneEntry(key, e.version)
                : valueEntry(key, e.version, e.value, e.expiresAtMs),
            )
            .sort((a, b) => compareBytes(a.key, b.key));
          const path = join(tmp.dir, `${serial++}.sst`);
          const meta = writeTable(path, entries, { blockBytes, bloomBitsPerKey: 10, compression }, serial);
          assert.equal(meta.entryCount, entries.length);

          assert.deepEqual([...scanTableSync(path)].map(plain), entries.map(plain));
          const reader = await TableReader.open(path, serial, new BlockCache(64 * 1024));
          try {
            const index = reader._index;
            for (let i = 0; i < index.blockCount; i++) if (index.rawBytes(i) > 0) compressedBlocks++;
            if (index.dictionary.length > 0) dictionaries++;
            for (const entry of entries) assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
            const byKey = new Map(entries.map((e) => [e.key.toString('hex'), e]));
            for (const probe of probes) {
              assert.deepEqual(plain(await reader.get(probe)), plain(byKey.get(probe.toString('hex'))));
            }
            const [start, end] = compareBytes(rangeA, rangeB) <= 0 ? [rangeA, rangeB] : [rangeB, rangeA];
            const expected = entries.filter(
              (e) => compareBytes(e.key, start) >= 0 && compareBytes(e.key, end) < 0,
            );
            assert.deepEqual((await drain(reader.cursor(start, end))).map(plain), expected.map(plain));
            assert.deepEqual((await drain(reader.cursor(Buffer.alloc(0)))).map(plain), entries.map(plain));
          } finally {
            await reader.close();
          }
        },
      ),
      propertyParams({ numRuns: 60 }),
    );
    assert.ok(
      compressedBlocks > 0 && dictionaries > 0,
      `${compressedBlocks} blocks, ${dictionaries} dictionaries`,
    );
  });
});
