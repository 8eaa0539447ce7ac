import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import {
  documentEntries,
  isCorruption,
  tempDir,
  writeTable,
} from '../../../test/support/sstable-fixtures.js';
import { BlockCache } from './cache.js';
import { sealSection } from './format.js';
import {
  nativeBlockReader,
  nativeBlockReaderStatus,
  nativeBlocksRead,
  readLz4Block,
  useNativeBlockReader,
} from './native-reader.js';
import { TableReader } from './reader.js';

const reader = nativeBlockReader();

describe('native block reader', () => {
  it('is built where the install requires it (RINGKV_REQUIRE_NATIVE=1, as in CI)', (t) => {
    if (process.env.RINGKV_REQUIRE_NATIVE !== '1') {
      t.skip(`RINGKV_REQUIRE_NATIVE is not set; the reader is ${nativeBlockReaderStatus}`);
      return;
    }
    assert.equal(nativeBlockReaderStatus, 'loaded');
  });

  describe('with the addon', {
    skip: reader === undefined && `the addon is ${nativeBlockReaderStatus}`,
  }, () => {
    const native = reader!;
    const tmp = tempDir();
    after(() => tmp.remove());

    /** Text with the repeats of JSON documents: short and long matches, some overlapping, some far back. */
    const jsonish = fc
      .array(
        fc.oneof(
          fc.constantFrom(
            '{"id":',
            '"status":"paid"',
            ',"items":[',
            '    ',
            'aaaaaaaaaaaaaaaaaaaaaaaaaaaa',
            '}',
          ),
          fc.string({ maxLength: 40 }),
          fc.integer().map(String),
        ),
        { maxLength: 400 },
      )
      .map((parts) => Buffer.from(parts.join('')));

    it('decodes what lz4-napi encodes, with and without a dictionary', () => {
      fc.assert(
        fc.property(jsonish, fc.oneof(jsonish, fc.uint8Array({ maxLength: 2048 })), (raw, dict) => {
          const dictionary = Buffer.from(dict);
          assert.deepEqual(native.decodeLz4(lz4Compress(raw), Buffer.alloc(0)), raw);
          if (dictionary.length > 0) {
            assert.deepEqual(native.decodeLz4(lz4Compress(raw, dictionary), dictionary), raw);
          }
        }),
        { numRuns: 300 },
      );
      // A block that is mostly matches into the dictionary, some running on into the output.
      const dictionary = Buffer.from('{"customer":"ada","status":"shipped","total":12.5}'.repeat(40));
      const raw = Buffer.from('{"customer":"ada","status":"shipped","total":12.5}'.repeat(80));
      const compressed = lz4Compress(raw, dictionary);
      assert.ok(compressed.length < raw.length / 20);
      assert.deepEqual(native.decodeLz4(compressed, dictionary), raw);
    });

    it('refuses damaged input with a reason, or decodes exactly the announced size', () => {
      const raw = Buffer.from(JSON.stringify(documentEntries(30).map((e) => e.value.toString())));
      const dictionary = raw.subarray(0, 512);
      const good = lz4Compress(raw, dictionary);
      let refused = 0;
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(good.length - 5), fc.integer({ min: 1, max: 255 })), {
            minLength: 1,
            maxLength: 4,
          }),
          fc.nat(good.length - 4),
          (flips, cut) => {
            const bad = Buffer.from(good);
            for (const [at, bits] of flips) bad[4 + at]! ^= bits;
            for (const input of [bad, bad.subarray(0, 4 + cut)]) {
              try {
                const out = native.decodeLz4(input, dictionary);
                // Damage an LZ4 block cannot notice still yields exactly the announced size.
                assert.equal(out.length, raw.length);
              } catch (err) {
                assert.match((err as Error).message, /input|literals|match|decodes to fewer|prefix/);
                refused++;
              }
            }
          },
        ),
        { numRuns: 500 },
      );
      assert.ok(refused > 100, `only ${refused} damaged inputs were refused`);
      assert.throws(() => native.decodeLz4(Buffer.from([1, 0]), Buffer.alloc(0)), /size prefix missing/);
    });

    it('accepts and refuses exactly the inputs the event-loop decoder does, with the same bytes', () => {
      // The event-loop path (compression.ts) takes lz4-napi's output when it is as long as the size
      // prefix, and refuses anything else: the native decoder must agree on damaged input too.
      const viaLoop = (input: Buffer, dictionary: Buffer): Buffer | undefined => {
        try {
          const out = dictionary.length > 0 ? lz4Uncompress(input, dictionary) : lz4Uncompress(input);
          return out.length === input.readUInt32LE(0) ? out : undefined;
        } catch {
          return undefined;
        }
      };
      const viaNative = (input: Buffer, dictionary: Buffer): Buffer | undefined => {
        try {
          return native.decodeLz4(input, dictionary);
        } catch {
          return undefined;
        }
      };
      let accepted = 0;
      let refused = 0;
      fc.assert(
        fc.property(
          jsonish,
          fc.uint8Array({ maxLength: 300 }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
          fc.option(fc.nat()),
          (raw, dict, flips, cut) => {
            const dictionary = Buffer.from(dict);
            const input = Buffer.from(
              dictionary.length > 0 ? lz4Compress(raw, dictionary) : lz4Compress(raw),
            );
            // Damage after the size prefix only: a damaged prefix is refused before either decoder runs.
            if (input.length > 4)
              for (const [at, bits] of flips) input[4 + (at % (input.length - 4))]! ^= bits;
            const damaged = cut === null ? input : input.subarray(0, 4 + (cut % (input.length - 3)));
            const loop = viaLoop(damaged, dictionary);
            const nat = viaNative(damaged, dictionary);
            assert.deepEqual(nat, loop);
            if (loop === undefined) refused++;
            else accepted++;
          },
        ),
        { numRuns: 1000 },
      );
      assert.ok(accepted > 100 && refused > 100, `${accepted} accepted, ${refused} refused`);
    });

    it('checks the crc zlib computes', () => {
      for (const n of [0, 1, 7, 8, 9, 1000, 4096]) {
        const data = randomBytes(n);
        assert.equal(native.crc32(data), zlibCrc32(data));
      }
    });

    it('reads a table through one thread-pool task per block, as the event-loop path reads it', async () => {
      const entries = documentEntries(1500);
      const path = join(tmp.dir, 'both.sst');
      writeTable(path, entries, { blockBytes: 4096, bloomBitsPerKey: 10, compression: 'lz4' });
      let blockCount = 0;
      const readAll = async (useNative: boolean) => {
        useNativeBlockReader(useNative);
        // No cache: every get() reads its block (concurrent ones on one block share the read).
        const table = await TableReader.open(path, 1, new BlockCache(0));
        try {
          blockCount = table._index.blockCount;
          return await Promise.all(entries.map(async (e) => (await table.get(e.key))?.value));
        } finally {
          await table.close();
          useNativeBlockReader(true);
        }
      };
      const before = nativeBlocksRead();
      const viaNative = await readAll(true);
      assert.ok(blockCount > 20);
      assert.ok(nativeBlocksRead() - before >= blockCount, 'the reads did not go through the addon');
      const afterNative = nativeBlocksRead();
      const viaLoop = await readAll(false);
      assert.equal(nativeBlocksRead(), afterNative, 'set aside, the addon still read blocks');
      assert.deepEqual(viaNative, viaLoop);
      assert.deepEqual(
        viaNative,
        entries.map((e) => e.value),
      );
    });

    it('names the file and offset of a truncated or damaged block, and a failed read by its system error', async () => {
      const path = join(tmp.dir, 'blocks.bin');
      const raw = Buffer.from('{"a":1,"b":"two"}'.repeat(100));
      const stored = sealSection(lz4Compress(raw));
      writeFileSync(path, Buffer.concat([Buffer.alloc(100), stored]));
      const fd = openSync(path, 'r');
      try {
        const read = (storedBytes: number, rawBytes: number) =>
          readLz4Block(
            native,
            fd,
            path,
            100,
            { storedBytes, rawBytes, dictionary: Buffer.alloc(0) },
            (b) => b,
          );
        assert.deepEqual(await read(stored.length, raw.length), raw);
        await assert.rejects(read(stored.length + 10, raw.length), isCorruption(path, 100, /truncated/));
        await assert.rejects(read(stored.length, raw.length + 1), isCorruption(path, 100, /size prefix/));
        const damaged = Buffer.concat([Buffer.alloc(100), stored]);
        damaged[120]! ^= 0x40;
        writeFileSync(path, damaged);
        await assert.rejects(read(stored.length, raw.length), isCorruption(path, 100, /checksum mismatch/));
      } finally {
        closeSync(fd);
      }
      // A descriptor no process can have open (far past any limit): EBADF, with the path.
      await assert.rejects(
        readLz4Block(
          native,
          1 << 30,
          path,
          100,
          { storedBytes: stored.length, rawBytes: raw.length, dictionary: Buffer.alloc(0) },
          (b) => b,
        ),
        (err: NodeJS.ErrnoException) =>
          err.code === 'EBADF' && err.syscall === 'read' && err.message.includes(path),
      );
      assert.throws(() => native.readCompressedBlock(-1, 0, 10, 10, Buffer.alloc(0)), RangeError);
      assert.throws(
        () => native.readCompressedBlock(0, 0, 10, 10, 'x' as unknown as Buffer),
        /dictionary must be a Buffer/,
      );
      assert.equal(readFileSync(path).length, 100 + stored.length);
    });

    it('names the file and offset of a read the addon refused before queueing it, as a rejection', async () => {
      const refusing = {
        ...native,
        readCompressedBlock: () => {
          throw new Error('cannot allocate the block');
        },
      };
      const read = readLz4Block(
        refusing,
        3,
        '/data/000007.sst',
        4096,
        { storedBytes: 10, rawBytes: 20, dictionary: Buffer.alloc(0) },
        (b) => b,
      );
      await assert.rejects(
        read,
        /^Error: cannot allocate the block, block at offset 4096 of '\/data\/000007\.sst'$/,
      );
    });
  });
});
