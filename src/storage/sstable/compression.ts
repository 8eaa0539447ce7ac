/**
 * Block compression (format version 2): the codecs, the per-table
 * dictionary, and the one function that turns a block as stored in a file
 * into its verified Block. Byte layout in format.ts and
 * docs/formats/sstable.md.
 *
 * - The writer (in the flush/compaction worker) compresses each finished
 *   block with the table's codec and keeps the result only if it saves at
 *   least an eighth of the block (LevelDB's rule): a block that does not
 *   compress costs nothing to read. A compressed block is the codec's output
 *   and a u32 crc32 of it.
 * - The reader checks that crc before decompressing, so damage on disk is a
 *   checksum mismatch naming the block's file and offset, as for a raw
 *   block; then the output must be exactly the raw block the index
 *   announces, whose own crc and shape Block.decode checks as in version 1.
 *   An lz4 block read from a file is checked and decompressed in the same
 *   thread-pool task that reads it when the native block reader is built
 *   (readNative, native-reader.ts); otherwise, and for deflate and blocks
 *   read in chunks (warm), openBlock does it on the event loop, synchronously:
 *   a second hop to the pool would cost more than the decompression.
 * - A table may carry a dictionary (in its index section): pieces sampled
 *   from its first blocks, which every block's compression may refer to.
 *   Small blocks of JSON documents share field names and values across
 *   blocks, not only inside one; the dictionary is what makes 4 KiB blocks
 *   compress about as well as 16 KiB ones would.
 *
 * Codecs: lz4 (npm lz4-napi: LZ4 block format, output prefixed with the u32
 * LE raw size, the dictionary as external dictionary) and deflate (node:zlib,
 * raw DEFLATE, RFC 1951, no zlib header, the dictionary as preset dictionary).
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import type { BlockCompression } from '../../config/compression.js';
import { assert } from '../../util/assert.js';
import { CorruptionError } from '../../util/errors.js';
import { Block } from './block.js';
import {
  COMPRESSED_BLOCK_TRAILER_BYTES,
  Codec,
  type CodecId,
  openSection,
  sealSection,
  type TableIndex,
} from './format.js';
import { nativeBlockReader, readLz4Block } from './native-reader.js';

/** The largest block the native reader takes (its own limit). */
const NATIVE_BLOCK_BYTES_MAX = 1 << 30;
/** The deflate level the writer uses: zlib's default, the reader does not need it. */
const DEFLATE_LEVEL = 6;
/** The dictionary is made of pieces this long, spread evenly over the sample. */
export const DICTIONARY_PIECE_BYTES = 256;

interface CodecImpl {
  compress(raw: Buffer, dictionary: Buffer): Buffer;
  /** The raw bytes; throws on malformed input (the caller turns it into corruption). */
  decompress(compressed: Buffer, rawBytes: number, dictionary: Buffer): Buffer;
}

const CODECS: Record<Exclude<CodecId, 0>, CodecImpl> = {
  [Codec.lz4]: {
    compress: (raw, dictionary) => (dictionary.length > 0 ? lz4Compress(raw, dictionary) : lz4Compress(raw)),
    decompress(compressed, rawBytes, dictionary) {
      // The codec's own size prefix must agree with the index before it sizes anything by it.
      if (compressed.length < 4 || compressed.readUInt32LE(0) !== rawBytes) {
        throw new Error(`size prefix ${compressed.length < 4 ? 'missing' : compressed.readUInt32LE(0)}`);
      }
      return dictionary.length > 0 ? lz4Uncompress(compressed, dictionary) : lz4Uncompress(compressed);
    },
  },
  [Codec.deflate]: {
    compress: (raw, dictionary) =>
      deflateRawSync(
        raw,
        dictionary.length > 0 ? { level: DEFLATE_LEVEL, dictionary } : { level: DEFLATE_LEVEL },
      ),
    decompress: (compressed, rawBytes, dictionary) =>
      inflateRawSync(
        compressed,
        dictionary.length > 0 ? { maxOutputLength: rawBytes, dictionary } : { maxOutputLength: rawBytes },
      ),
  },
};

export function codecId(name: BlockCompression): CodecId {
  return Codec[name];
}

export function codecName(id: CodecId): BlockCompression {
  const name = (Object.keys(Codec) as BlockCompression[]).find((n) => Codec[n] === id);
  assert(name !== undefined, 'unknown codec id');
  return name;
}

/** One table's codec and dictionary, for the writer and the readers alike. */
export class TableCompression {
  readonly codec: CodecId;
  readonly dictionary: Buffer;
  readonly #impl: CodecImpl | undefined;

  constructor(codec: CodecId, dictionary: Buffer = Buffer.alloc(0)) {
    assert(codec !== Codec.none || dictionary.length === 0, 'a dictionary needs a codec');
    this.codec = codec;
    this.dictionary = dictionary;
    this.#impl = codec === Codec.none ? undefined : CODECS[codec];
  }

  /** The stored form of the raw block `raw` (codec output + crc), or undefined to store it raw. */
  compress(raw: Buffer): Buffer | undefined {
    if (this.#impl === undefined) return undefined;
    const out = this.#impl.compress(raw, this.dictionary);
    if (out.length + COMPRESSED_BLOCK_TRAILER_BYTES > raw.length - (raw.length >>> 3)) return undefined;
    return sealSection(out);
  }

  /**
   * Block `blockIndex` of `index` from its bytes as stored in the file,
   * verified and decoded. A raw block's Block keeps `stored` as its buffer
   * (it must not be mutated, nor be a view that pins more than it); a
   * compressed block's gets a fresh buffer of its own. Throws CorruptionError
   * naming `path` and the block's offset.
   */
  openBlock(stored: Buffer, index: TableIndex, blockIndex: number, path: string): Block {
    const offset = index.blockOffset(blockIndex);
    const rawBytes = index.rawBytes(blockIndex);
    if (rawBytes === 0) return Block.decode(stored, path, offset);
    return Block.decode(this.#decompress(stored, rawBytes, path, offset), path, offset);
  }

  /**
   * Block `blockIndex` of `index`, a compressed one, read from descriptor
   * `fd` and decompressed in one thread-pool task by the native reader, then
   * verified and decoded; undefined when the native reader cannot take it
   * (not built, or not this table's codec): the caller reads the block and
   * calls openBlock(). Refuses damage as openBlock() does.
   */
  readNative(fd: number, index: TableIndex, blockIndex: number, path: string): Promise<Block> | undefined {
    const reader = nativeBlockReader();
    if (this.codec !== Codec.lz4 || reader === undefined) return undefined;
    // The addon refuses sizes past 1 GiB as arguments; such an index is damaged, which openBlock reports.
    if (Math.max(index.rawBytes(blockIndex), index.blockBytes(blockIndex)) > NATIVE_BLOCK_BYTES_MAX) {
      return undefined;
    }
    const offset = index.blockOffset(blockIndex);
    const sizes = {
      storedBytes: index.blockBytes(blockIndex),
      rawBytes: index.rawBytes(blockIndex),
      dictionary: this.dictionary,
    };
    return readLz4Block(reader, fd, path, offset, sizes, (raw) => Block.decode(raw, path, offset));
  }

  #decompress(stored: Buffer, rawBytes: number, path: string, offset: number): Buffer {
    const impl = this.#impl;
    // INVARIANT: decodeIndex refuses compressed blocks in a table without a codec.
    assert(impl !== undefined, 'compressed block in a table without a codec');
    // Framed as a section is (payload + crc32), and checked the same way.
    const compressed = openSection(stored, path, offset, 'compressed data block');
    let raw: Buffer;
    try {
      raw = impl.decompress(compressed, rawBytes, this.dictionary);
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new CorruptionError(
        path,
        offset,
        `data block does not decompress (${codecName(this.codec)}): ${detail}`,
      );
    }
    if (raw.length !== rawBytes) {
      throw new CorruptionError(
        path,
        offset,
        `data block decompresses to ${raw.length} bytes, the index says ${rawBytes}`,
      );
    }
    // zlib hands out views into its 16 KiB output chunks: a cached block must pin only its own bytes.
    if (raw.byteOffset === 0 && raw.buffer.byteLength === raw.length) return raw;
    const own = Buffer.allocUnsafeSlow(raw.length);
    raw.copy(own, 0);
    return own;
  }
}

/**
 * A dictionary sampled from `blocks` (the first raw blocks of a table):
 * pieces of DICTIONARY_PIECE_BYTES spread evenly over them, at most
 * `bytesMax` and at most an eighth of the sample; empty when the sample is
 * too small for one piece.
 */
export function sampleDictionary(blocks: readonly Buffer[], bytesMax: number): Buffer {
  let total = 0;
  for (const block of blocks) total += block.length;
  const pieceCount = Math.floor(Math.min(bytesMax, total / 8) / DICTIONARY_PIECE_BYTES);
  if (pieceCount === 0) return Buffer.alloc(0);
  const pieces: Buffer[] = [];
  let blockIndex = 0;
  let blockStart = 0;
  for (let k = 0; k < pieceCount; k++) {
    const position = Math.floor(((k + 0.5) * total) / pieceCount);
    while (position >= blockStart + blocks[blockIndex]!.length) blockStart += blocks[blockIndex++]!.length;
    const block = blocks[blockIndex]!;
    const start = Math.max(0, Math.min(position - blockStart, block.length - DICTIONARY_PIECE_BYTES));
    pieces.push(block.subarray(start, start + DICTIONARY_PIECE_BYTES));
  }
  return Buffer.concat(pieces);
}
