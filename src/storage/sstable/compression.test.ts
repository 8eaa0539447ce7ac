import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import {
  documentEntries,
  drain,
  isCorruption,
  plain,
  SMALL_TABLE,
  sampleEntries,
  sampleKey,
  tempDir,
  writeTable,
} from '../../../test/support/sstable-fixtures.js';
import { BLOCK_COMPRESSIONS, type BlockCompression } from '../../config/compression.js';
import { crc32 } from '../../util/bytes.js';
import { type Entry, valueEntry } from '../entry/entry.js';
import { BlockCache } from './cache.js';
import { codecId, DICTIONARY_PIECE_BYTES, sampleDictionary, TableCompression } from './compression.js';
import {
  COMPRESSED_BLOCK_TRAILER_BYTES,
  Codec,
  FOOTER_BYTES,
  Footer,
  INDEX_RECORD_FIXED_BYTES,
  sealSection,
} from './format.js';
import { nativeBlockReader, useNativeBlockReader } from './native-reader.js';
import { TableReader } from './reader.js';
import { scanTableSync } from './scanner.js';

/** Written by the version 1 writer (commit cc78379): sampleEntries(60) with SMALL_TABLE. */
const V1_TABLE = fileURLToPath(
  new URL('../../../../src/storage/sstable/testdata/v1-table.sst', import.meta.url),
);

interface Layout {
  readonly blocks: { offset: number; bytes: number; rawBytes: number; lastKey: Buffer }[];
  readonly dictionaryBytes: number;
}

async function layoutOf(path: string): Promise<Layout> {
  const reader = await TableReader.open(path, 99, new BlockCache(0));
  try {
    const index = reader._index;
    const blocks = [];
    for (let i = 0; i < index.blockCount; i++) {
      blocks.push({
        offset: index.blockOffset(i),
        bytes: index.blockBytes(i),
        rawBytes: index.rawBytes(i),
        lastKey: Buffer.from(index.lastKey(i)),
      });
    }
    return { blocks, dictionaryBytes: index.dictionary.length };
  } finally {
    await reader.close();
  }
}

/** Every entry read back by get() (cold and cached), a full cursor, scanTableSync and after warm(). */
async function assertReadsBack(path: string, entries: readonly Entry[]): Promise<void> {
  assert.deepEqual([...scanTableSync(path)].map(plain), entries.map(plain));
  const reader = await TableReader.open(path, 1, new BlockCache(1 << 20));
  try {
    for (const entry of entries) assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
    for (const entry of entries) assert.deepEqual(plain(await reader.get(entry.key)), plain(entry));
    assert.deepEqual((await drain(reader.cursor(Buffer.alloc(0)))).map(plain), entries.map(plain));
  } finally {
    await reader.close();
  }
  const warmed = await TableReader.open(path, 2, new BlockCache(16 << 20));
  try {
    assert.equal(await warmed.warm(4096), true);
    for (const entry of entries) {
      const cached = warmed.getCached(entry.key);
      assert.notEqual(typeof cached, 'symbol', 'warm() left a block out');
      assert.deepEqual(plain(cached as Entry | undefined), plain(entry));
    }
  } finally {
    await warmed.close();
  }
}

/**
 * lz4 blocks are read by the native block reader when it is built, else
 * decompressed on the event loop: every test runs through each path there is.
 */
const READ_PATHS = [
  ...(nativeBlockReader() !== undefined ? [{ name: 'native block reader', native: true }] : []),
  { name: 'decompressed on the event loop', native: false },
];

for (const readPath of READ_PATHS)
  describe(`block compression (${readPath.name})`, () => {
    const tmp = tempDir();
    before(() => useNativeBlockReader(readPath.native));
    after(() => {
      useNativeBlockReader(true);
      tmp.remove();
    });
    let serial = 0;
    const next = () => join(tmp.dir, `${serial++}.sst`);

    for (const compression of BLOCK_COMPRESSIONS) {
      it(`round-trips a table of documents with ${compression}`, async () => {
        const entries = documentEntries(3000);
        const path = next();
        const meta = writeTable(path, entries, { blockBytes: 4096, bloomBitsPerKey: 10, compression });
        const raw = writeTable(next(), entries, { blockBytes: 4096, bloomBitsPerKey: 10 });
        const footer = readFileSync(path).subarray(meta.fileBytes - FOOTER_BYTES);
        assert.equal(footer.readUInt32LE(Footer.formatVersion), 2);
        assert.equal(footer.readUInt8(Footer.codec), codecId(compression));
        const layout = await layoutOf(path);
        const compressed = layout.blocks.filter((b) => b.rawBytes > 0).length;
        if (compression === 'none') {
          assert.equal(compressed, 0);
          assert.equal(layout.dictionaryBytes, 0);
          assert.equal(meta.fileBytes, raw.fileBytes);
        } else {
          assert.equal(compressed, layout.blocks.length, 'every block of documents compresses');
          assert.ok(layout.dictionaryBytes > 0, 'a table of documents gets a dictionary');
          assert.ok(meta.fileBytes < raw.fileBytes / 2, `${meta.fileBytes} of ${raw.fileBytes} bytes`);
        }
        await assertReadsBack(path, entries);
      });
    }

    it('stores blocks that do not shrink by an eighth raw, beside compressed ones', async () => {
      // Runs of documents (compressible) and of random values (not), a few blocks each.
      const documents = documentEntries(2000);
      const entries = documents.map((entry, n) =>
        Math.floor(n / 40) % 2 === 1 && entry.value.length > 0
          ? valueEntry(entry.key, entry.version, randomBytes(entry.value.length))
          : entry,
      );
      for (const compression of ['lz4', 'deflate'] as const) {
        const path = next();
        writeTable(path, entries, { blockBytes: 1024, bloomBitsPerKey: 10, compression });
        const { blocks } = await layoutOf(path);
        const raw = blocks.filter((b) => b.rawBytes === 0).length;
        assert.ok(raw > 5 && raw < blocks.length - 5, `${raw} of ${blocks.length} blocks stored raw`);
        for (const b of blocks) if (b.rawBytes > 0) assert.ok(b.bytes <= b.rawBytes - (b.rawBytes >>> 3));
        await assertReadsBack(path, entries);
      }
    });

    it('writes no dictionary when it does not pay for itself (random values)', async () => {
      const entries = sampleEntries(400).map((e) =>
        e.value.length > 0 ? valueEntry(e.key, e.version, randomBytes(200)) : e,
      );
      const path = next();
      writeTable(path, entries, { blockBytes: 1024, bloomBitsPerKey: 10, compression: 'lz4' });
      const layout = await layoutOf(path);
      assert.equal(layout.dictionaryBytes, 0);
      await assertReadsBack(path, entries);
    });

    it('compresses a table larger than the dictionary sample (held-back blocks, then block by block)', async () => {
      const entries = documentEntries(6000);
      const path = next();
      writeTable(path, entries, { blockBytes: 4096, bloomBitsPerKey: 10, compression: 'lz4' });
      const layout = await layoutOf(path);
      const rawTotal = layout.blocks.reduce((sum, b) => sum + (b.rawBytes || b.bytes), 0);
      assert.ok(rawTotal > 256 * 1024, `only ${rawTotal} raw bytes`);
      await assertReadsBack(path, entries);
    });

    describe('damage', () => {
      /** A table of documents with `codec`, and its first compressed block past block 0. */
      async function damagedCopy(
        compression: BlockCompression,
        change: (block: Buffer, rawBytes: number) => Buffer,
      ) {
        const entries = documentEntries(800);
        const good = next();
        writeTable(good, entries, { blockBytes: 1024, bloomBitsPerKey: 10, compression });
        const { blocks } = await layoutOf(good);
        const blockIndex = blocks.findIndex((b, i) => i > 0 && b.rawBytes > 0);
        const block = blocks[blockIndex]!;
        const bytes = readFileSync(good);
        const replaced = change(
          Buffer.from(bytes.subarray(block.offset, block.offset + block.bytes)),
          block.rawBytes,
        );
        assert.equal(replaced.length, block.bytes, 'the change keeps the block size');
        replaced.copy(bytes, block.offset);
        const path = next();
        writeFileSync(path, bytes);
        return { path, block, other: blocks[0]!.lastKey };
      }

      async function assertRefused(
        path: string,
        offset: number,
        lastKey: Buffer,
        other: Buffer,
        detail: RegExp,
      ) {
        const reader = await TableReader.open(path, 5, new BlockCache(1 << 20));
        try {
          await assert.rejects(reader.get(lastKey), isCorruption(path, offset, detail));
          assert.ok(await reader.get(other), 'other blocks still read');
          await assert.rejects(drain(reader.cursor(Buffer.alloc(0))), isCorruption(path, offset, detail));
        } finally {
          await reader.close();
        }
        const warmed = await TableReader.open(path, 6, new BlockCache(1 << 20));
        try {
          await warmed.warm(1 << 20);
          assert.equal(typeof warmed.getCached(lastKey), 'symbol', 'warm() kept a damaged block');
          await assert.rejects(warmed.get(lastKey), isCorruption(path, offset, detail));
        } finally {
          await warmed.close();
        }
        assert.throws(() => [...scanTableSync(path)], isCorruption(path, offset, detail));
      }

      for (const compression of ['lz4', 'deflate'] as const) {
        it(`${compression}: a flipped byte in a compressed block is a checksum mismatch naming the block`, async () => {
          for (const at of [0, 7, -5, -1]) {
            const { path, block, other } = await damagedCopy(compression, (b) => {
              b[at < 0 ? b.length + at : at]! ^= 0x10;
              return b;
            });
            await assertRefused(path, block.offset, block.lastKey, other, /checksum mismatch/);
          }
        });

        it(`${compression}: a well-checksummed block that does not decompress is refused naming the block`, async () => {
          const { path, block, other } = await damagedCopy(compression, (b) => {
            const output = Buffer.alloc(b.length - COMPRESSED_BLOCK_TRAILER_BYTES, 0xff);
            // lz4: keep the size prefix, so that the decoder itself meets the garbage.
            if (compression === 'lz4') b.copy(output, 0, 0, 4);
            return sealSection(output);
          });
          await assertRefused(path, block.offset, block.lastKey, other, /does not decompress/);
        });
      }

      for (const compression of ['lz4', 'deflate'] as const) {
        it(`${compression}: a block that decompresses to fewer bytes than the index says is refused`, async () => {
          const { path, block, other } = await damagedCopy(compression, (b) => {
            const output = Buffer.alloc(b.length - COMPRESSED_BLOCK_TRAILER_BYTES);
            if (compression === 'lz4') {
              // The size prefix as written (the index's size), then one LZ4 block of literals only that
              // fills the rest exactly and decodes to fewer bytes.
              b.copy(output, 0, 0, 4);
              output.set(literalsOnlyBlock(output.length - 4), 4);
            } else {
              // Valid deflate output of a shorter text; the zeros after it are never read.
              const short = deflateRawSync(Buffer.alloc(output.length, 0x61));
              assert.ok(short.length <= output.length);
              short.copy(output);
            }
            return sealSection(output);
          });
          await assertRefused(
            path,
            block.offset,
            block.lastKey,
            other,
            /decompresses to \d+ bytes, the index says/,
          );
        });
      }

      for (const compression of ['lz4', 'deflate'] as const) {
        it(`${compression}: an index announcing more raw bytes than the codec can make of a block fails open()`, async () => {
          const path = next();
          const meta = writeTable(path, documentEntries(800), {
            blockBytes: 1024,
            bloomBitsPerKey: 10,
            compression,
          });
          const { blocks } = await layoutOf(path);
          const blockIndex = blocks.findIndex((b) => b.rawBytes > 0);
          const block = blocks[blockIndex]!;
          // Past what any codec output of this size decodes to (1032 bytes per byte at most), with every
          // checksum and the lz4 size prefix agreeing: a decoder would size its output by it.
          const claimed = block.bytes * 2000;
          const bytes = readFileSync(path);
          const footer = bytes.subarray(meta.fileBytes - FOOTER_BYTES);
          const indexOffset = footer.readUInt32LE(Footer.indexOffset);
          const crcAt = footer.readUInt32LE(Footer.filterOffset) - COMPRESSED_BLOCK_TRAILER_BYTES;
          bytes.writeUInt32LE(
            claimed,
            rawBytesField(bytes.subarray(indexOffset, crcAt), blockIndex) + indexOffset,
          );
          bytes.writeUInt32LE(crc32(bytes.subarray(indexOffset, crcAt)), crcAt);
          if (compression === 'lz4') {
            const output = bytes.subarray(
              block.offset,
              block.offset + block.bytes - COMPRESSED_BLOCK_TRAILER_BYTES,
            );
            output.writeUInt32LE(claimed, 0);
            bytes.writeUInt32LE(crc32(output), block.offset + output.length);
          }
          writeFileSync(path, bytes);
          const refused = isCorruption(
            path,
            indexOffset,
            new RegExp(`block ${blockIndex} decompresses to ${claimed}`),
          );
          await assert.rejects(TableReader.open(path, 8, new BlockCache(0)), refused);
          assert.throws(() => [...scanTableSync(path)], refused);
        });
      }

      it('a footer naming an unknown codec fails open()', async () => {
        const path = next();
        const meta = writeTable(path, documentEntries(50), { ...SMALL_TABLE, compression: 'lz4' });
        const bytes = readFileSync(path);
        const footer = bytes.subarray(meta.fileBytes - FOOTER_BYTES);
        footer.writeUInt8(9, Footer.codec);
        footer.writeUInt32LE(crc32(footer.subarray(0, Footer.crc)), Footer.crc);
        writeFileSync(path, bytes);
        const at = meta.fileBytes - FOOTER_BYTES;
        await assert.rejects(
          TableReader.open(path, 7, new BlockCache(0)),
          isCorruption(path, at, /unknown block codec 9/),
        );
        assert.throws(() => [...scanTableSync(path)], isCorruption(path, at, /unknown block codec 9/));
      });
    });

    it('reads a version 1 table (written before compression existed)', async () => {
      const footer = readFileSync(V1_TABLE).subarray(-FOOTER_BYTES);
      assert.equal(footer.readUInt32LE(Footer.formatVersion), 1);
      const layout = await layoutOf(V1_TABLE);
      assert.ok(layout.blocks.length > 5);
      assert.ok(layout.blocks.every((b) => b.rawBytes === 0));
      await assertReadsBack(V1_TABLE, sampleEntries(60));
      const reader = await TableReader.open(V1_TABLE, 3, new BlockCache(0));
      try {
        assert.equal(reader.entryCount, 60);
        assert.equal(reader.minVersion, 1000n);
        assert.equal(reader.maxVersion, 1059n);
        // Its bloom filter is read as a filter: no key of the table ruled out, nearly every other one is.
        for (const entry of sampleEntries(60)) assert.ok(reader.mayContain(entry.key));
        let ruledOut = 0;
        for (let i = 0; i < 1000; i++) if (!reader.mayContain(sampleKey(2 * i + 1))) ruledOut++;
        assert.ok(ruledOut >= 950, `only ${ruledOut} of 1000 absent keys ruled out`);
      } finally {
        await reader.close();
      }
    });

    it('samples a dictionary of pieces spread over the sample, at most an eighth of it', () => {
      const blocks = Array.from({ length: 10 }, (_, i) => Buffer.alloc(4096, i));
      const dictionary = sampleDictionary(blocks, 2048);
      assert.equal(dictionary.length, 2048);
      // Eight pieces over ten blocks: from the first, the middle and the last of them.
      const firstBytes = Array.from({ length: 8 }, (_, k) => dictionary[k * DICTIONARY_PIECE_BYTES]);
      assert.deepEqual(firstBytes, [0, 1, 3, 4, 5, 6, 8, 9]);
      assert.equal(sampleDictionary(blocks, 1 << 20).length, Math.floor(40960 / 8 / 256) * 256);
      assert.equal(sampleDictionary([Buffer.alloc(1000)], 1 << 20).length, 0);
      assert.equal(sampleDictionary([Buffer.alloc(300), Buffer.alloc(1800)], 1 << 20).length, 256);
    });

    it('keeps only blocks that save an eighth', () => {
      const lz4 = new TableCompression(Codec.lz4);
      assert.equal(lz4.compress(randomBytes(4096)), undefined);
      const stored = lz4.compress(Buffer.alloc(4096, 0x20));
      assert.ok(stored !== undefined && stored.length < 100);
      assert.equal(new TableCompression(Codec.none).compress(Buffer.alloc(4096)), undefined);
    });
  });

/** Where record `blockIndex`'s rawBytes lies in a version 2 index payload. */
function rawBytesField(payload: Buffer, blockIndex: number): number {
  let at = 4 + payload.readUInt32LE(0);
  at += 2 + payload.readUInt16LE(at);
  for (let i = 0; i < blockIndex; i++) at += INDEX_RECORD_FIXED_BYTES + payload.readUInt16LE(at);
  return at + 2 + payload.readUInt16LE(at) + 12;
}

/** An LZ4 block of exactly `bytes` bytes: one sequence of literals ('a's), decoding to a little fewer. */
function literalsOnlyBlock(bytes: number): Buffer {
  // Token 0xF0 (15 + more literal length), the length's extension bytes, then the literals.
  for (let literals = bytes - 2; literals >= 15; literals--) {
    const extension = Math.floor((literals - 15) / 255) + 1;
    if (1 + extension + literals !== bytes) continue;
    const out = Buffer.alloc(bytes, 0x61);
    out[0] = 0xf0;
    let rest = literals - 15;
    for (let k = 1; k <= extension; k++) {
      out[k] = Math.min(rest, 255);
      rest -= out[k]!;
    }
    return out;
  }
  throw new Error(`no literals-only block of ${bytes} bytes`);
}
