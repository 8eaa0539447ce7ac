/**
 * A bounded, deterministic sweep of damaged tables: a real table written by
 * the engine (raw, lz4, deflate), damaged in one place, read back through
 * every read path there is (get() on the native block reader and on the
 * event loop, cursors, warm(), scanTableSync). corruption.test.ts and
 * compression.test.ts damage chosen bytes; this damages many places chosen
 * by a seeded generator, so that a length or offset read from the file and
 * trusted before it is checked shows up as a crash, a hang, a stray error
 * type or a wrong answer.
 *
 * - damage a checksum must catch (one burst of at most 32 bits, or a file
 *   shortened before or after open): every read returns exactly what was
 *   written, or fails with a CorruptionError naming the file;
 * - damage made by a hostile writer (a section or block changed and its
 *   checksum recomputed): a read may return anything, but it returns, or
 *   fails with a CorruptionError naming the file; nothing else is thrown.
 *
 * The seed is fixed (RINGKV_PROPERTY_SEED replaces it) and every failure
 * names the seed, the case and the damage.
 */
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROPERTY_SEED_ENV } from '../../../test/support/property.js';
import { documentEntries, plain, tempDir, writeTable } from '../../../test/support/sstable-fixtures.js';
import { Random } from '../../../test/torture/random.js';
import type { BlockCompression } from '../../config/compression.js';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError } from '../../util/errors.js';
import type { Entry } from '../entry/entry.js';
import { BlockCache } from './cache.js';
import { FOOTER_BYTES, Footer, SECTION_CRC_BYTES } from './format.js';
import { nativeBlockReader, nativeBlocksRead, useNativeBlockReader } from './native-reader.js';
import { BLOCK_NOT_CACHED, TableReader } from './reader.js';
import { scanTableSync } from './scanner.js';

const SEED = Number(process.env[PROPERTY_SEED_ENV]?.trim() || 0x5eed5);
/** Damaged copies per table and kind of damage. */
const CASES = { burst: 40, truncated: 12, shrunkWhileOpen: 12, hostile: 60 };

/** Integers in [0, n) from the torture run's seeded generator: the same cases on every run. */
function generator(seed: number): (n: number) => number {
  const random = new Random(seed);
  return (n) => random.int(0, n - 1);
}

interface Region {
  readonly name: string;
  readonly start: number;
  readonly end: number;
  /** Where the region's crc32 (of [start, crcAt)) is stored. */
  readonly crcAt: number;
  /** Its length, count and offset fields: [position in the file, width in bytes]. */
  readonly fields: readonly (readonly [number, number])[];
}

/**
 * The table's checksummed regions: each data block, the index, the filter,
 * the footer; with the fields of each that a reader sizes or positions
 * anything by.
 */
async function regionsOf(path: string): Promise<Region[]> {
  const bytes = readFileSync(path);
  const reader = await TableReader.open(path, 1, new BlockCache(0));
  const regions: Region[] = [];
  try {
    const index = reader._index;
    for (let i = 0; i < index.blockCount; i++) {
      const start = index.blockOffset(i);
      const end = start + index.blockBytes(i);
      const fields: [number, number][] = [];
      if (index.rawBytes(i) > 0) {
        // lz4's size prefix (deflate's first bytes).
        fields.push([start, 4]);
      } else {
        // The entry count, each entry's offset, and each entry's key length (its first varint byte).
        const count = bytes.readUInt32LE(end - 8);
        fields.push([end - 8, 4]);
        for (let e = 0; e < count; e++) {
          const at = end - 8 - 4 * (count - e);
          fields.push([at, 4], [start + bytes.readUInt32LE(at) + 15, 1]);
        }
      }
      const name = `block ${i}${index.rawBytes(i) > 0 ? ' (compressed)' : ''}`;
      regions.push({ name, start, end, crcAt: end - 4, fields });
    }
  } finally {
    await reader.close();
  }
  const footerAt = bytes.length - FOOTER_BYTES;
  const footer = bytes.subarray(footerAt);
  const indexOffset = footer.readUInt32LE(Footer.indexOffset);
  const filterOffset = footer.readUInt32LE(Footer.filterOffset);
  // Index (version 2): u32 dictionary length, u16 smallest key length, records, u32 count.
  const indexFields: [number, number][] = [[indexOffset, 4]];
  let at = indexOffset + 4 + bytes.readUInt32LE(indexOffset);
  indexFields.push([at, 2]);
  at += 2 + bytes.readUInt16LE(at);
  const countAt = filterOffset - SECTION_CRC_BYTES - 4;
  while (at < countAt) {
    const keyBytes = bytes.readUInt16LE(at);
    indexFields.push([at, 2], [at + 2 + keyBytes, 8], [at + 10 + keyBytes, 4], [at + 14 + keyBytes, 4]);
    at += 18 + keyBytes;
  }
  indexFields.push([countAt, 4]);
  regions.push({
    name: 'index',
    start: indexOffset,
    end: filterOffset,
    crcAt: filterOffset - SECTION_CRC_BYTES,
    fields: indexFields,
  });
  regions.push({
    name: 'filter',
    start: filterOffset,
    end: footerAt,
    crcAt: footerAt - SECTION_CRC_BYTES,
    fields: [[footerAt - SECTION_CRC_BYTES - 1, 1]],
  });
  const footerFields: [number, number][] = [
    [Footer.indexOffset, 8],
    [Footer.indexBytes, 4],
    [Footer.filterOffset, 8],
    [Footer.filterBytes, 4],
    [Footer.entryCount, 4],
    [Footer.codec, 1],
    [Footer.reserved, 1],
    [Footer.minVersion, 8],
    [Footer.formatVersion, 4],
  ];
  regions.push({
    name: 'footer',
    start: footerAt,
    end: bytes.length,
    crcAt: footerAt + Footer.crc,
    fields: footerFields.map(([field, width]) => [footerAt + field, width] as const),
  });
  return regions;
}

/** Values a hostile writer would put in a length or offset field. */
function hostileValue(random: (n: number) => number, width: number, original: number): number {
  const max = 2 ** (8 * width) - 1;
  const picks = [
    0,
    1,
    4,
    7,
    8,
    max,
    max - 1,
    2 ** (8 * width - 1),
    original + 1,
    original - 1,
    random(max + 1),
  ];
  const value = picks[random(picks.length)]!;
  return Math.min(max, Math.max(0, value));
}

/** Every read an engine makes of the table at `path`: what each returned, or the CorruptionError. */
async function readEverything(
  path: string,
  entries: readonly Entry[],
  strict: boolean,
  what: string,
  afterOpen?: () => void,
): Promise<void> {
  const expectCorruption = (err: unknown, how: string): void => {
    if (!(err instanceof CorruptionError) || err.file !== path || !err.message.includes(path)) {
      assert.fail(`${what}: ${how} threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
    assert.ok(Number.isSafeInteger(err.offset) && err.offset >= 0, `${what}: ${how}: offset ${err.offset}`);
  };
  const expectEntry = (got: Entry | undefined, expected: Entry | undefined, how: string): void => {
    if (strict) assert.deepEqual(plain(got), plain(expected), `${what}: ${how} returned a wrong entry`);
  };

  let reader: TableReader;
  try {
    reader = await TableReader.open(path, 1, new BlockCache(1 << 20));
  } catch (err) {
    expectCorruption(err, 'open()');
    // scanTableSync does not read the filter: it may still read every entry.
    scanEverything(path, entries, strict, what, expectCorruption);
    return;
  }
  try {
    afterOpen?.();
    // Every key, and a key between two of them (absent), each twice: the second from the cache.
    for (let round = 0; round < 2; round++) {
      for (const entry of entries) {
        for (const [key, expected] of [
          [entry.key, entry],
          [Buffer.concat([entry.key, Buffer.from([0])]), undefined],
        ] as const) {
          try {
            expectEntry(await reader.get(key), expected, `get(${key})`);
          } catch (err) {
            expectCorruption(err, `get(${key})`);
          }
        }
      }
    }
    try {
      const all: Entry[] = [];
      const cursor = reader.cursor(Buffer.alloc(0));
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next())
        all.push(...batch);
      if (strict)
        assert.deepEqual(all.map(plain), entries.map(plain), `${what}: a cursor returned wrong entries`);
    } catch (err) {
      expectCorruption(err, 'cursor');
    }
  } finally {
    await reader.close();
  }

  const warmed = await TableReader.open(path, 2, new BlockCache(16 << 20)).catch((err: unknown) => {
    // A file shrunk after the first open fails this one.
    expectCorruption(err, 'second open()');
    return undefined;
  });
  if (warmed !== undefined) {
    try {
      await warmed.warm(4096);
      for (const entry of entries) {
        let cached: ReturnType<TableReader['getCached']>;
        try {
          cached = warmed.getCached(entry.key);
        } catch (err) {
          // A cached block's entries are checked as they are read.
          expectCorruption(err, 'getCached()');
          continue;
        }
        if (cached !== BLOCK_NOT_CACHED) expectEntry(cached, entry, 'warm() then getCached()');
      }
    } finally {
      await warmed.close();
    }
  }

  scanEverything(path, entries, strict, what, expectCorruption);
}

function scanEverything(
  path: string,
  entries: readonly Entry[],
  strict: boolean,
  what: string,
  expectCorruption: (err: unknown, how: string) => void,
): void {
  try {
    const scanned = [...scanTableSync(path)];
    if (strict) assert.deepEqual(scanned.map(plain), entries.map(plain), `${what}: scanTableSync`);
  } catch (err) {
    expectCorruption(err, 'scanTableSync');
  }
}

const READ_PATHS = [
  ...(nativeBlockReader() !== undefined ? [{ name: 'native block reader', native: true }] : []),
  { name: 'event loop', native: false },
];
const TABLES: { compression: BlockCompression; readPaths: typeof READ_PATHS }[] = [
  { compression: 'lz4', readPaths: READ_PATHS },
  { compression: 'deflate', readPaths: [{ name: 'event loop', native: false }] },
  { compression: 'none', readPaths: [{ name: 'event loop', native: false }] },
];

describe(`damaged tables, swept (seed ${SEED}, ${PROPERTY_SEED_ENV} replaces it)`, () => {
  const tmp = tempDir();
  after(() => {
    useNativeBlockReader(true);
    tmp.remove();
  });
  let serial = 0;

  for (const { compression, readPaths } of TABLES)
    for (const readPath of readPaths)
      describe(`${compression}, ${readPath.name}`, () => {
        // Documents compress: with lz4 and deflate every block but the odd one is stored compressed.
        const entries = documentEntries(240);
        const good = join(tmp.dir, `${compression}-${readPath.name}.sst`);
        let original: Buffer;
        let regions: Region[];
        let nativeBefore = 0;

        before(async () => {
          useNativeBlockReader(readPath.native);
          writeTable(good, entries, { blockBytes: 1024, bloomBitsPerKey: 10, compression });
          original = readFileSync(good);
          regions = await regionsOf(good);
          nativeBefore = nativeBlocksRead();
        });
        after(() => {
          useNativeBlockReader(true);
          if (readPath.native)
            assert.ok(nativeBlocksRead() > nativeBefore, 'the native reader read no block');
        });

        const copy = (bytes: Buffer): string => {
          const path = join(tmp.dir, `damaged-${serial++}.sst`);
          writeFileSync(path, bytes);
          return path;
        };

        it('reads the undamaged table back', async () => {
          await readEverything(copy(original), entries, true, 'undamaged');
        });

        it('a burst of damage (up to 32 bits) in any region: the right entry, or corruption naming the file', async () => {
          const random = generator(SEED ^ 0x1);
          for (let n = 0; n < CASES.burst; n++) {
            const region = regions[random(regions.length)]!;
            const at = region.start + random(region.end - region.start);
            const length = Math.min(1 + random(4), region.end - at);
            const bytes = Buffer.from(original);
            for (let k = 0; k < length; k++) bytes[at + k]! ^= 1 + random(255);
            const what = `seed ${SEED}, burst case ${n}: ${length} bytes at ${at} (${region.name})`;
            await readEverything(copy(bytes), entries, true, what);
          }
        });

        it('a table cut short before open: corruption naming the file', async () => {
          const random = generator(SEED ^ 0x2);
          for (let n = 0; n < CASES.truncated; n++) {
            const keep = random(original.length);
            const what = `seed ${SEED}, truncated case ${n}: ${keep} of ${original.length} bytes`;
            await readEverything(copy(original.subarray(0, keep)), entries, true, what);
          }
        });

        it('a table shrunk (or shrunk and regrown with zeros) while open: the right entry, or corruption naming the file', async () => {
          const random = generator(SEED ^ 0x3);
          for (let n = 0; n < CASES.shrunkWhileOpen; n++) {
            const keep = random(original.length);
            const regrow = random(2) === 1;
            const what = `seed ${SEED}, shrunk case ${n}: to ${keep} bytes${regrow ? ', regrown' : ''}`;
            const path = copy(original);
            await readEverything(path, entries, true, what, () => {
              truncateSync(path, keep);
              if (regrow) truncateSync(path, original.length);
            });
          }
        });

        it('a hostile writer (a field or bytes changed, checksum recomputed): a value, or corruption naming the file', async () => {
          const random = generator(SEED ^ 0x4);
          for (let n = 0; n < CASES.hostile; n++) {
            // A block, the index, the filter or the footer, each about as often: they are one place each.
            const kind = random(4);
            const region =
              kind === 0 ? regions[random(regions.length - 3)]! : regions[regions.length - 4 + kind]!;
            const bytes = Buffer.from(original);
            let at: number;
            let width: number;
            if (region.fields.length > 0 && random(3) > 0) {
              [at, width] = region.fields[random(region.fields.length)]!;
            } else {
              width = [1, 2, 4, 8][random(4)]!;
              const room = region.crcAt - region.start - width;
              if (room < 0) continue;
              at = region.start + random(room + 1);
            }
            let change: string;
            if (width === 8) {
              const value = [0, 2 ** 53 - 1, 2 ** 32, original.length, random(2 ** 32)][random(5)]!;
              bytes.writeUInt32LE(value % 2 ** 32, at);
              bytes.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
              change = `u64 ${value}`;
            } else {
              const value = hostileValue(random, width, bytes.readUIntLE(at, width));
              bytes.writeUIntLE(value, at, width);
              change = `u${8 * width} ${value}`;
            }
            bytes.writeUInt32LE(crc32(bytes.subarray(region.start, region.crcAt)), region.crcAt);
            const what = `seed ${SEED}, hostile case ${n}: ${change} at ${at} (${region.name}), crc recomputed`;
            await readEverything(copy(bytes), entries, false, what);
          }
        });
      });
});
