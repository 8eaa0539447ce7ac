/**
 * The SSTable byte layout: every constant of the file format, and the
 * encoding of the footer and the index section. docs/formats/sstable.md has
 * the same layout as tables. On-disk values: never renumber or reorder.
 *
 * A table is an immutable file of entries (entry/codec.ts), exactly one per
 * key, keys strictly ascending by unsigned byte order. All integers below are
 * little-endian; u64 file offsets and counts stay below 2^53.
 *
 *   offset 0        +-------------------------------+
 *                   | data block 0                  |
 *                   | data block 1                  |
 *                   | ...                           |
 *   indexOffset     +-------------------------------+
 *                   | index section (+ u32 crc)     |
 *   filterOffset    +-------------------------------+
 *                   | filter section (+ u32 crc)    |
 *   fileBytes - 64  +-------------------------------+
 *                   | footer (64 bytes)             |
 *   fileBytes       +-------------------------------+
 *
 * Data block (blocks are contiguous from offset 0 to indexOffset):
 *
 *   +---------+---------+-----+-------------------+-------+---------+
 *   | entry 0 | entry 1 | ... | u32 offset[count] | count | u32 crc |
 *   +---------+---------+-----+-------------------+-------+---------+
 *   offset[i] is entry i's start from the block's first byte (for binary
 *   search); count is a u32; crc is crc32 of every byte before it.
 *
 * Version 2 stores each block either as above (raw) or compressed with the
 * table's codec (footer byte 30), as its index record says:
 *
 *   +-----------------------------------------------+---------+
 *   | codec output (decompresses to the raw block)  | u32 crc |
 *   +-----------------------------------------------+---------+
 *   crc is crc32 of the codec output, checked before decompressing.
 *
 * Index section payload, followed by a u32 crc32 of the payload:
 *
 *   version 1:
 *   u16 smallestKeyBytes | smallestKey
 *   blockCount times:  u16 lastKeyBytes | lastKey | u64 blockOffset | u32 blockBytes
 *   u32 blockCount
 *
 *   version 2: the same, after the table's compression dictionary, and each
 *   record with the block's raw size (0: the block is stored raw):
 *   u32 dictionaryBytes | dictionary
 *   u16 smallestKeyBytes | smallestKey
 *   blockCount times:  u16 lastKeyBytes | lastKey | u64 blockOffset | u32 blockBytes | u32 rawBytes
 *   u32 blockCount
 *
 * Filter section payload (bloom.ts), followed by a u32 crc32 of the payload:
 *
 *   bit array (filterBytes - 5 bytes) | u8 probeCount
 *
 * Footer (FOOTER_BYTES, the last bytes of the file):
 *
 *   0   u64 indexOffset      8  u32 indexBytes (crc included)
 *   12  u64 filterOffset     20 u32 filterBytes (crc included)
 *   24  u64 entryCount       (version 2: u48 entryCount, u8 codec, u8 reserved = 0)
 *   32  u64 minVersion       40 u64 maxVersion
 *   48  u32 formatVersion    52 u32 crc32 of bytes 0..52
 *   56  8 bytes magic "RKVTABLE"
 *
 * A later format version may change anything before byte 48 of the footer;
 * the last 16 bytes (version, crc, magic) keep their place so any reader can
 * tell which version it is looking at.
 */
import { assert } from '../../util/assert.js';
import { compareRange, crc32, keyWord } from '../../util/bytes.js';
import { CorruptionError } from '../../util/errors.js';

/** Written into every new footer. */
export const FORMAT_VERSION = 2;
/** What a reader accepts: 1 (blocks stored raw, no codec) and 2 (codec in the footer, blocks raw or compressed). */
export const FORMAT_VERSIONS_READ: readonly number[] = [1, 2];

/** Block codecs as numbered in a version 2 footer (compression.ts implements them). */
export const Codec = {
  none: 0,
  lz4: 1,
  deflate: 2,
} as const;
export type CodecId = (typeof Codec)[keyof typeof Codec];
const CODEC_IDS: readonly number[] = Object.values(Codec);
/**
 * The most raw bytes one byte of a codec's output can decode to: an index
 * that announces more is damaged, and is refused before anything is sized
 * by it (lz4-napi allocates the announced size before it decodes). LZ4: a
 * match length's extension byte adds at most 255 bytes; DEFLATE: a 258-byte
 * match takes at least two bits (zlib's 1032:1).
 */
export const CODEC_EXPANSION_MAX: Readonly<Record<CodecId, number>> = {
  [Codec.none]: 0,
  [Codec.lz4]: 255,
  [Codec.deflate]: 1032,
};
/** The file's last 8 bytes. */
export const MAGIC = Buffer.from('RKVTABLE', 'latin1');

export const FOOTER_BYTES = 64;
/** Byte positions of the footer's fields. */
export const Footer = {
  indexOffset: 0,
  indexBytes: 8,
  filterOffset: 12,
  filterBytes: 20,
  entryCount: 24,
  /** Version 2: entryCount is a u48, followed by the codec (u8) and a reserved u8, 0. */
  codec: 30,
  reserved: 31,
  minVersion: 32,
  maxVersion: 40,
  formatVersion: 48,
  crc: 52,
  magic: 56,
} as const;

/** Each entry's u32 offset in a block's offset array. */
export const BLOCK_OFFSET_BYTES = 4;
/** After a block's offset array: u32 entry count, u32 crc. */
export const BLOCK_TRAILER_BYTES = 8;
/** Every section (index, filter) ends with a u32 crc32 of its payload. */
export const SECTION_CRC_BYTES = 4;
/** After a compressed block's codec output: u32 crc of that output (framed as a section is). */
export const COMPRESSED_BLOCK_TRAILER_BYTES = SECTION_CRC_BYTES;
/** An index record besides its key: u16 key length, u64 block offset, u32 block length (version 1). */
export const INDEX_RECORD_FIXED_BYTES_V1 = 2 + 8 + 4;
/** ...and, in version 2, u32 raw length. */
export const INDEX_RECORD_FIXED_BYTES = INDEX_RECORD_FIXED_BYTES_V1 + 4;
/** Keys are stored with u16 lengths in the index (limits.keyBytesHardMax). */
export const INDEX_KEY_BYTES_MAX = 0xffff;
/** The filter payload ends with its u8 probe count. */
export const FILTER_TRAILER_BYTES = 1;

const U32 = 2 ** 32;
/** Version 2's entry count is a u48. */
const ENTRY_COUNT_MAX = 2 ** 48 - 1;

export interface FooterFields {
  readonly indexOffset: number;
  readonly indexBytes: number;
  readonly filterOffset: number;
  readonly filterBytes: number;
  readonly entryCount: number;
  readonly minVersion: bigint;
  readonly maxVersion: bigint;
  /** The codec of the table's compressed blocks; Codec.none in version 1. */
  readonly codec: CodecId;
}

/** A decoded footer also says which version wrote it. */
export interface DecodedFooter extends FooterFields {
  readonly formatVersion: number;
}

export function writeU64(buf: Buffer, offset: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'u64 field must be a safe non-negative integer');
  buf.writeUInt32LE(value % U32, offset);
  buf.writeUInt32LE(Math.floor(value / U32), offset + 4);
}

/** Reads a u64 as a number; undefined when it is not a safe integer (a corrupt field). */
export function readU64(buf: Buffer, offset: number): number | undefined {
  const value = buf.readUInt32LE(offset) + buf.readUInt32LE(offset + 4) * U32;
  return Number.isSafeInteger(value) ? value : undefined;
}

export function encodeFooter(fields: FooterFields): Buffer {
  const buf = Buffer.alloc(FOOTER_BYTES);
  writeU64(buf, Footer.indexOffset, fields.indexOffset);
  buf.writeUInt32LE(fields.indexBytes, Footer.indexBytes);
  writeU64(buf, Footer.filterOffset, fields.filterOffset);
  buf.writeUInt32LE(fields.filterBytes, Footer.filterBytes);
  assert(fields.entryCount <= ENTRY_COUNT_MAX, 'entry count must fit a u48');
  buf.writeUIntLE(fields.entryCount, Footer.entryCount, 6);
  buf.writeUInt8(fields.codec, Footer.codec);
  buf.writeBigUInt64LE(fields.minVersion, Footer.minVersion);
  buf.writeBigUInt64LE(fields.maxVersion, Footer.maxVersion);
  buf.writeUInt32LE(FORMAT_VERSION, Footer.formatVersion);
  buf.writeUInt32LE(crc32(buf.subarray(0, Footer.crc)), Footer.crc);
  MAGIC.copy(buf, Footer.magic);
  return buf;
}

/**
 * Checks the footer (the last FOOTER_BYTES of a file of `fileBytes` bytes) in
 * the order a reader can trust it: magic, format version, crc, then that the
 * sections it points at tile the file. Throws CorruptionError at the footer's offset.
 */
export function decodeFooter(buf: Buffer, path: string, fileBytes: number): DecodedFooter {
  assert(buf.length === FOOTER_BYTES, 'decodeFooter takes exactly the footer bytes');
  const at = fileBytes - FOOTER_BYTES;
  if (!buf.subarray(Footer.magic).equals(MAGIC)) {
    throw new CorruptionError(path, at, 'bad table magic: not an SSTable, or truncated');
  }
  const version = buf.readUInt32LE(Footer.formatVersion);
  if (!FORMAT_VERSIONS_READ.includes(version)) {
    throw new CorruptionError(
      path,
      at,
      `unsupported table format version ${version}, expected one of ${FORMAT_VERSIONS_READ.join(', ')}`,
    );
  }
  const stored = buf.readUInt32LE(Footer.crc);
  const computed = crc32(buf.subarray(0, Footer.crc));
  if (stored !== computed) {
    throw new CorruptionError(path, at, `footer checksum mismatch: stored ${stored}, computed ${computed}`);
  }
  const indexOffset = readU64(buf, Footer.indexOffset);
  const filterOffset = readU64(buf, Footer.filterOffset);
  const entryCount = version === 1 ? readU64(buf, Footer.entryCount) : buf.readUIntLE(Footer.entryCount, 6);
  const codec = version === 1 ? Codec.none : buf.readUInt8(Footer.codec);
  if (version > 1 && (!CODEC_IDS.includes(codec) || buf.readUInt8(Footer.reserved) !== 0)) {
    throw new CorruptionError(
      path,
      at,
      `unknown block codec ${codec} (reserved byte ${buf.readUInt8(Footer.reserved)})`,
    );
  }
  const indexBytes = buf.readUInt32LE(Footer.indexBytes);
  const filterBytes = buf.readUInt32LE(Footer.filterBytes);
  if (
    indexOffset === undefined ||
    filterOffset === undefined ||
    entryCount === undefined ||
    indexOffset + indexBytes !== filterOffset ||
    filterOffset + filterBytes !== at ||
    indexBytes < SECTION_CRC_BYTES + 2 + 4 ||
    filterBytes < SECTION_CRC_BYTES + FILTER_TRAILER_BYTES
  ) {
    throw new CorruptionError(path, at, 'footer section offsets do not tile the file');
  }
  const minVersion = buf.readBigUInt64LE(Footer.minVersion);
  const maxVersion = buf.readBigUInt64LE(Footer.maxVersion);
  return {
    indexOffset,
    indexBytes,
    filterOffset,
    filterBytes,
    entryCount,
    minVersion,
    maxVersion,
    codec: codec as CodecId,
    formatVersion: version,
  };
}

/** Appends the section crc to `payload`. */
export function sealSection(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length + SECTION_CRC_BYTES);
  payload.copy(out, 0);
  out.writeUInt32LE(crc32(payload), payload.length);
  return out;
}

/** Verifies a section's crc and returns its payload (a view). `offset` is where the section starts in the file. */
export function openSection(section: Buffer, path: string, offset: number, name: string): Buffer {
  if (section.length < SECTION_CRC_BYTES)
    throw new CorruptionError(path, offset, `${name} section too short`);
  const payloadBytes = section.length - SECTION_CRC_BYTES;
  const payload = section.subarray(0, payloadBytes);
  const stored = section.readUInt32LE(payloadBytes);
  const computed = crc32(payload);
  if (stored !== computed) {
    throw new CorruptionError(
      path,
      offset,
      `${name} checksum mismatch: stored ${stored}, computed ${computed}`,
    );
  }
  return payload;
}

/** What the writer records for each data block, and the table's compression dictionary. */
export interface IndexInput {
  readonly dictionary: Buffer;
  readonly smallestKey: Buffer;
  readonly lastKeys: readonly Buffer[];
  readonly blockOffsets: readonly number[];
  readonly blockBytes: readonly number[];
  /** Each block's raw size when it is stored compressed, 0 when it is stored raw. */
  readonly rawBytes: readonly number[];
}

/** The index payload (without its crc), in the current format version. */
export function encodeIndex(input: IndexInput): Buffer {
  const count = input.lastKeys.length;
  assert(count > 0, 'an index needs at least one block');
  assert(
    input.blockOffsets.length === count &&
      input.blockBytes.length === count &&
      input.rawBytes.length === count,
    'index arrays differ in length',
  );
  let size = 4 + input.dictionary.length + 2 + input.smallestKey.length + 4;
  for (const key of input.lastKeys) size += INDEX_RECORD_FIXED_BYTES + key.length;
  const buf = Buffer.allocUnsafe(size);
  let at = buf.writeUInt32LE(input.dictionary.length, 0);
  at += input.dictionary.copy(buf, at);
  at = buf.writeUInt16LE(input.smallestKey.length, at);
  at += input.smallestKey.copy(buf, at);
  for (let i = 0; i < count; i++) {
    const key = input.lastKeys[i]!;
    at = buf.writeUInt16LE(key.length, at);
    at += key.copy(buf, at);
    writeU64(buf, at, input.blockOffsets[i]!);
    at = buf.writeUInt32LE(input.blockBytes[i]!, at + 8);
    at = buf.writeUInt32LE(input.rawBytes[i]!, at);
  }
  at = buf.writeUInt32LE(count, at);
  assert(at === size, 'index size miscomputed');
  return buf;
}

/**
 * The decoded sparse index, kept in memory while a table is open. Keys and
 * the dictionary are views into the index payload, which is never mutated.
 */
export class TableIndex {
  readonly smallestKey: Buffer;
  readonly blockCount: number;
  /** The table's compression dictionary; empty when it has none (and in version 1). */
  readonly dictionary: Buffer;
  readonly #lastKeys: Buffer[];
  /** The first keyWord of each last key: most steps of findBlock compare these numbers, not the keys. */
  readonly #lastPrefixes: Uint32Array;
  readonly #offsets: Float64Array;
  readonly #bytes: Uint32Array;
  readonly #rawBytes: Uint32Array;

  constructor(
    smallestKey: Buffer,
    lastKeys: Buffer[],
    blocks: { offsets: Float64Array; bytes: Uint32Array; rawBytes?: Uint32Array; dictionary?: Buffer },
  ) {
    this.smallestKey = smallestKey;
    this.blockCount = lastKeys.length;
    this.#lastKeys = lastKeys;
    this.#lastPrefixes = new Uint32Array(lastKeys.length);
    for (let i = 0; i < lastKeys.length; i++) {
      const last = lastKeys[i]!;
      this.#lastPrefixes[i] = keyWord(last, 0, last.length, 0);
    }
    this.#offsets = blocks.offsets;
    this.#bytes = blocks.bytes;
    this.#rawBytes = blocks.rawBytes ?? new Uint32Array(lastKeys.length);
    this.dictionary = blocks.dictionary ?? Buffer.alloc(0);
  }

  get largestKey(): Buffer {
    return this.#lastKeys[this.blockCount - 1]!;
  }

  lastKey(blockIndex: number): Buffer {
    return this.#lastKeys[blockIndex]!;
  }

  blockOffset(blockIndex: number): number {
    return this.#offsets[blockIndex]!;
  }

  /** The block's size in the file. */
  blockBytes(blockIndex: number): number {
    return this.#bytes[blockIndex]!;
  }

  /** The block's size once decompressed; 0 when it is stored raw. */
  rawBytes(blockIndex: number): number {
    return this.#rawBytes[blockIndex]!;
  }

  /** The block's size in memory, decoded: what the block cache is charged for it (besides overhead). */
  decodedBytes(blockIndex: number): number {
    return this.#rawBytes[blockIndex]! || this.#bytes[blockIndex]!;
  }

  /** The first block whose last key is >= `key` (the only block that can hold it), or blockCount. */
  findBlock(key: Buffer): number {
    const prefix = keyWord(key, 0, key.length, 0);
    const prefixes = this.#lastPrefixes;
    let lo = 0;
    let hi = this.blockCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const lastPrefix = prefixes[mid]!;
      let below: boolean;
      if (lastPrefix !== prefix) below = lastPrefix < prefix;
      else {
        const last = this.#lastKeys[mid]!;
        below = compareRange(last, 0, last.length, key, 0, key.length) < 0;
      }
      if (below) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * Parses an index payload (crc already verified) of a table whose footer is
 * `footer`. Errors name the section (footer.indexOffset); the blocks must
 * tile [0, indexOffset) exactly, and a table without a codec may hold no
 * compressed block and no dictionary.
 */
export function decodeIndex(payload: Buffer, path: string, footer: DecodedFooter): TableIndex {
  const fail = (detail: string): never => {
    throw new CorruptionError(path, footer.indexOffset, `index: ${detail}`);
  };
  const v1 = footer.formatVersion === 1;
  const recordFixedBytes = v1 ? INDEX_RECORD_FIXED_BYTES_V1 : INDEX_RECORD_FIXED_BYTES;
  if (payload.length < (v1 ? 6 : 10)) fail('too short');
  const count = payload.readUInt32LE(payload.length - 4);
  const end = payload.length - 4;
  if (count === 0) fail('no blocks');
  let at = 0;
  let dictionary: Buffer | undefined;
  if (!v1) {
    const dictionaryBytes = payload.readUInt32LE(0);
    at = 4 + dictionaryBytes;
    if (at + 2 > end) fail('dictionary runs past the end');
    if (dictionaryBytes > 0 && footer.codec === Codec.none) fail('a dictionary in a table without a codec');
    dictionary = payload.subarray(4, at);
  }
  const smallestBytes = payload.readUInt16LE(at);
  const smallestStart = at + 2;
  at = smallestStart + smallestBytes;
  if (at > end) fail('smallest key runs past the end');
  const smallestKey = payload.subarray(smallestStart, at);
  // Each record takes at least its fixed bytes: a count past that is damage, refused before it sizes the arrays.
  if (count > (end - at) / recordFixedBytes) {
    fail(`${count} blocks cannot fit the ${end - at} bytes of records`);
  }
  const lastKeys: Buffer[] = new Array(count);
  const offsets = new Float64Array(count);
  const bytes = new Uint32Array(count);
  const rawBytes = new Uint32Array(count);
  let expectedOffset = 0;
  for (let i = 0; i < count; i++) {
    if (at + recordFixedBytes > end) fail(`record ${i} runs past the end`);
    const keyBytes = payload.readUInt16LE(at);
    const keyStart = at + 2;
    at = keyStart + keyBytes + recordFixedBytes - 2;
    if (at > end) fail(`record ${i} runs past the end`);
    lastKeys[i] = payload.subarray(keyStart, keyStart + keyBytes);
    const offset = readU64(payload, keyStart + keyBytes);
    const length = payload.readUInt32LE(keyStart + keyBytes + 8);
    const raw = v1 ? 0 : payload.readUInt32LE(keyStart + keyBytes + 12);
    if (offset !== expectedOffset) fail(`block ${i} at ${offset}, expected ${expectedOffset}`);
    if (raw === 0 && length < BLOCK_TRAILER_BYTES) {
      fail(`block ${i} is ${length} bytes, shorter than its trailer`);
    }
    if (raw !== 0) {
      if (footer.codec === Codec.none) fail(`block ${i} is compressed in a table without a codec`);
      if (raw < BLOCK_TRAILER_BYTES) fail(`block ${i} decompresses to ${raw} bytes, fewer than its trailer`);
      if (length <= COMPRESSED_BLOCK_TRAILER_BYTES) {
        fail(`compressed block ${i} is ${length} bytes, no more than its trailer`);
      }
      if (raw > (length - COMPRESSED_BLOCK_TRAILER_BYTES) * CODEC_EXPANSION_MAX[footer.codec]) {
        fail(`block ${i} decompresses to ${raw} bytes, more than its codec makes of ${length} stored bytes`);
      }
    }
    offsets[i] = expectedOffset;
    bytes[i] = length;
    rawBytes[i] = raw;
    expectedOffset += length;
  }
  if (at !== end) fail(`${end - at} stray bytes after the records`);
  if (expectedOffset !== footer.indexOffset) {
    fail(`blocks end at ${expectedOffset}, index starts at ${footer.indexOffset}`);
  }
  return new TableIndex(smallestKey, lastKeys, {
    offsets,
    bytes,
    rawBytes,
    ...(dictionary === undefined ? {} : { dictionary }),
  });
}
