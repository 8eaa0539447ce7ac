/**
 * Writes one SSTable, start to finish, with synchronous file calls: it runs
 * inside the flush/compaction worker thread, never on the event loop.
 *
 * Contract:
 * - add() takes entries in strictly ascending key order, one per key (the
 *   caller has already kept only the newest version); it asserts the order.
 *   Entries are encoded at once, so the caller may reuse their buffers.
 * - Output is buffered and written in WRITE_CHUNK_BYTES pieces, and the
 *   file is synced every limits.tableSyncBytes on the way, so that the
 *   WAL's syncs meanwhile never wait behind a whole table. Data blocks are
 *   cut once the next entry would take a block past blockBytes, so an
 *   entry larger than blockBytes gets a block of its own.
 * - With a codec (options.compression), each block is compressed once cut
 *   (compression.ts). The first blocks, up to limits.compressionSampleBytes,
 *   are held back raw until the table's dictionary is sampled from them;
 *   it is kept only if it makes them smaller.
 * - finish() writes the last block, index, filter and footer, fsyncs the
 *   file and its directory (so the file's name survives a crash before the
 *   manifest names it), and closes. A table needs at least one entry.
 * - abort() closes and deletes the file, also after a failed or successful
 *   finish() (a compaction that fails after cutting some outputs drops them all).
 *
 * Example:
 *   const w = new TableWriter(path, 7, { blockBytes: 4096, bloomBitsPerKey: 10 }, vfs);
 *   try { for (const e of sorted) w.add(e); meta = w.finish(); } catch (err) { w.abort(); throw err; }
 */
import { dirname } from 'node:path';
import type { BlockCompression } from '../../config/compression.js';
import { limits } from '../../config/limits.js';
import { assert } from '../../util/assert.js';
import { compareRange, copyBytes } from '../../util/bytes.js';
import { encodedEntryBytes } from '../entry/codec.js';
import { droppableFromMs, type Entry } from '../entry/entry.js';
import type { RecordView } from '../entry/record.js';
import { versionPhysicalMs } from '../entry/version.js';
import { isFsError, nodeVfs, type Vfs, type VfsFile, writeFullySync } from '../vfs/index.js';
import { BlockBuilder } from './block.js';
import { bloomHash, buildBloomFilter } from './bloom.js';
import { codecId, sampleDictionary, TableCompression } from './compression.js';
import {
  Codec,
  encodeFooter,
  encodeIndex,
  FOOTER_BYTES,
  INDEX_KEY_BYTES_MAX,
  sealSection,
} from './format.js';

/** Bytes gathered before one write call: 256 KiB makes a 4 MiB table 16 syscalls, not 1,000. */
export const WRITE_CHUNK_BYTES = 256 * 1024;

export interface TableMeta {
  fileNumber: number;
  fileBytes: number;
  entryCount: number;
  smallestKey: Buffer;
  largestKey: Buffer;
  minVersion: bigint;
  maxVersion: bigint;
  /** Absent when the table holds no tombstone and no value with an expiry. */
  droppable?: DroppableStats;
}

/**
 * What a compaction at the bottom of the tree could drop from a table once
 * old enough: its tombstones and its values with an expiry. The engine
 * rewrites a table for them alone when no level is over its size
 * (compaction/picker.ts, pickDroppableCompaction).
 */
export interface DroppableStats {
  /** Tombstones and values with an expiry. */
  readonly entries: number;
  /** The latest of their droppableFromMs (entry.ts): a grace period past it, all of them are obsolete. */
  readonly fromMs: number;
  /** The largest of their versions. */
  readonly versionMax: bigint;
}

export interface TableWriterOptions {
  /** Target data block size (limits.blockBytes). */
  blockBytes: number;
  /** Bloom filter bits per key (limits.bloomBitsPerKey); 0 writes no filter. */
  bloomBitsPerKey: number;
  /** The codec of the table's data blocks (default none: every block stored raw). */
  compression?: BlockCompression;
}

type WriterState = 'open' | 'finished' | 'aborted';

export class TableWriter {
  readonly path: string;
  readonly fileNumber: number;
  readonly #options: Required<TableWriterOptions>;
  readonly #vfs: Vfs;
  #file: VfsFile | undefined;
  #state: WriterState = 'open';

  readonly #block: BlockBuilder;
  readonly #out = Buffer.allocUnsafe(WRITE_CHUNK_BYTES);
  #outBytes = 0;
  #writtenBytes = 0;
  /** Written since the last sync (limits.tableSyncBytes). */
  #unsyncedBytes = 0;

  #entryCount = 0;
  #smallestKey: Buffer | undefined;
  // Version bounds as 32-bit halves: a BigInt per entry would be an allocation per entry.
  #minVersionHigh = 0;
  #minVersionLow = 0;
  #maxVersionHigh = 0;
  #maxVersionLow = 0;
  #droppable = 0;
  #droppableFromMs = -1;
  #droppableVersionHigh = 0;
  #droppableVersionLow = 0;
  #hashes = new Uint32Array(1024);
  readonly #lastKeys: Buffer[] = [];
  readonly #blockOffsets: number[] = [];
  readonly #blockBytes: number[] = [];
  readonly #rawBytes: number[] = [];
  /** The table's codec and dictionary; undefined while the first blocks are held back to sample it. */
  #compression: TableCompression | undefined;
  /** Raw blocks cut but not yet written (copies), while #compression is undefined. */
  #heldBlocks: Buffer[] = [];
  #heldBytes = 0;

  constructor(path: string, fileNumber: number, options: TableWriterOptions, vfs: Vfs = nodeVfs) {
    assert(Number.isSafeInteger(options.blockBytes) && options.blockBytes > 0, 'blockBytes must be positive');
    assert(options.bloomBitsPerKey >= 0, 'bloomBitsPerKey must not be negative');
    this.path = path;
    this.fileNumber = fileNumber;
    this.#options = {
      blockBytes: options.blockBytes,
      bloomBitsPerKey: options.bloomBitsPerKey,
      compression: options.compression ?? 'none',
    };
    if (this.#options.compression === 'none') this.#compression = new TableCompression(Codec.none);
    this.#block = new BlockBuilder(2 * options.blockBytes);
    this.#vfs = vfs;
    this.#file = vfs.openSync(path, 'wx');
  }

  get entryCount(): number {
    return this.#entryCount;
  }

  /** Bytes written so far plus what is buffered, so compaction can cut outputs near a target. */
  get estimatedBytes(): number {
    return (
      this.#writtenBytes +
      this.#outBytes +
      this.#heldBytes +
      (this.#block.entryCount > 0 ? this.#block.finishedBytes : 0)
    );
  }

  add(entry: Entry): void {
    const key = entry.key;
    this.#checkNext(key, 0, key.length);
    const entryBytes = encodedEntryBytes(entry);
    this.#makeRoom(entryBytes);
    this.#block.add(entry, entryBytes);
    const version = entry.version;
    const high = Number(version >> 32n);
    const low = Number(version & 0xffffffffn);
    this.#added(key, 0, key.length, high, low);
    this.#countDroppable(
      droppableFromMs(entry.kind, versionPhysicalMs(version), entry.expiresAtMs),
      high,
      low,
    );
  }

  /** add() for a record that is already encoded: its bytes are copied as they are (record.ts). */
  addRecord(record: RecordView): void {
    this.#checkNext(record.buf, record.keyStart, record.keyEnd);
    this.#makeRoom(record.byteLength);
    this.#block.addRecord(record);
    this.#added(record.buf, record.keyStart, record.keyEnd, record.versionHigh, record.versionLow);
    this.#countDroppable(
      droppableFromMs(record.kind, record.versionPhysicalMs, record.expiresAtMs),
      record.versionHigh,
      record.versionLow,
    );
  }

  /** Counts the entry just added if a compaction may drop it once old enough (DroppableStats). */
  #countDroppable(fromMs: number, versionHigh: number, versionLow: number): void {
    if (fromMs < 0) return;
    this.#droppable++;
    if (fromMs > this.#droppableFromMs) this.#droppableFromMs = fromMs;
    if (
      versionHigh > this.#droppableVersionHigh ||
      (versionHigh === this.#droppableVersionHigh && versionLow > this.#droppableVersionLow)
    ) {
      this.#droppableVersionHigh = versionHigh;
      this.#droppableVersionLow = versionLow;
    }
  }

  #checkNext(key: Buffer, start: number, end: number): void {
    assert(this.#state === 'open', 'add() after finish() or abort()');
    assert(end - start <= limits.keyBytesHardMax, 'key longer than the table format allows');
    if (this.#block.entryCount > 0) {
      assert(this.#block.compareLastKey(key, start, end) < 0, 'table keys must be strictly ascending');
    } else if (this.#lastKeys.length > 0) {
      const last = this.#lastKeys[this.#lastKeys.length - 1]!;
      assert(
        compareRange(last, 0, last.length, key, start, end) < 0,
        'table keys must be strictly ascending',
      );
    }
  }

  /** Cuts the block first if an entry of `entryBytes` would take it past blockBytes. */
  #makeRoom(entryBytes: number): void {
    if (this.#block.entryCount > 0 && this.#block.bytesWith(entryBytes) > this.#options.blockBytes) {
      this.#cutBlock();
    }
  }

  /** Notes the entry just added to the block: key range, version bounds, filter hash. */
  #added(key: Buffer, start: number, end: number, versionHigh: number, versionLow: number): void {
    if (this.#entryCount === 0) {
      this.#smallestKey = copyBytes(key.subarray(start, end));
      this.#minVersionHigh = this.#maxVersionHigh = versionHigh;
      this.#minVersionLow = this.#maxVersionLow = versionLow;
    } else {
      if (
        versionHigh < this.#minVersionHigh ||
        (versionHigh === this.#minVersionHigh && versionLow < this.#minVersionLow)
      ) {
        this.#minVersionHigh = versionHigh;
        this.#minVersionLow = versionLow;
      }
      if (
        versionHigh > this.#maxVersionHigh ||
        (versionHigh === this.#maxVersionHigh && versionLow > this.#maxVersionLow)
      ) {
        this.#maxVersionHigh = versionHigh;
        this.#maxVersionLow = versionLow;
      }
    }
    if (this.#entryCount === this.#hashes.length) {
      const grown = new Uint32Array(2 * this.#hashes.length);
      grown.set(this.#hashes);
      this.#hashes = grown;
    }
    this.#hashes[this.#entryCount] = bloomHash(key, start, end);
    this.#entryCount++;
  }

  finish(): TableMeta {
    assert(this.#state === 'open', 'finish() after finish() or abort()');
    assert(this.#entryCount > 0, 'a table needs at least one entry: abort() an empty one');
    this.#state = 'finished';
    this.#cutBlock();
    if (this.#compression === undefined) this.#startCompressing();
    const compression = this.#compression!;
    const minVersion = joinVersion(this.#minVersionHigh, this.#minVersionLow);
    const maxVersion = joinVersion(this.#maxVersionHigh, this.#maxVersionLow);

    const indexOffset = this.#position();
    const index = sealSection(
      encodeIndex({
        dictionary: compression.dictionary,
        smallestKey: this.#smallestKey!,
        lastKeys: this.#lastKeys,
        blockOffsets: this.#blockOffsets,
        blockBytes: this.#blockBytes,
        rawBytes: this.#rawBytes,
      }),
    );
    this.#append(index);
    const filterOffset = this.#position();
    const filter = sealSection(
      buildBloomFilter(this.#hashes, this.#entryCount, this.#options.bloomBitsPerKey),
    );
    this.#append(filter);
    this.#append(
      encodeFooter({
        indexOffset,
        indexBytes: index.length,
        filterOffset,
        filterBytes: filter.length,
        entryCount: this.#entryCount,
        minVersion,
        maxVersion,
        codec: compression.codec,
      }),
    );
    this.#flushOut();
    const fileBytes = this.#writtenBytes;
    assert(fileBytes === filterOffset + filter.length + FOOTER_BYTES, 'table size miscomputed');

    const file = this.#file!;
    // (Unless the last write just synced it.)
    if (this.#unsyncedBytes > 0) file.syncSync();
    this.#file = undefined;
    file.closeSync();
    this.#vfs.syncDirSync(dirname(this.path));
    return {
      fileNumber: this.fileNumber,
      fileBytes,
      entryCount: this.#entryCount,
      smallestKey: copyBytes(this.#smallestKey!),
      largestKey: copyBytes(this.#lastKeys[this.#lastKeys.length - 1]!),
      minVersion,
      maxVersion,
      ...(this.#droppable === 0
        ? {}
        : {
            droppable: {
              entries: this.#droppable,
              fromMs: this.#droppableFromMs,
              versionMax: joinVersion(this.#droppableVersionHigh, this.#droppableVersionLow),
            },
          }),
    };
  }

  abort(): void {
    this.#state = 'aborted';
    const file = this.#file;
    this.#file = undefined;
    if (file !== undefined) {
      try {
        file.closeSync();
      } catch {
        // The file is being deleted: a failed close loses nothing.
      }
    }
    try {
      this.#vfs.removeSync(this.path);
    } catch (err) {
      if (!isFsError(err, 'ENOENT')) throw err;
    }
  }

  /** Ends the current block: records its last key, and stores it (or holds it back while sampling). */
  #cutBlock(): void {
    if (this.#block.entryCount === 0) return;
    assert(this.#block.lastKey().length <= INDEX_KEY_BYTES_MAX, 'index keys have u16 lengths');
    this.#lastKeys.push(copyBytes(this.#block.lastKey()));
    const raw = this.#block.finish();
    if (this.#compression !== undefined) this.#storeBlock(raw, this.#compression.compress(raw));
    else {
      this.#heldBlocks.push(copyBytes(raw));
      this.#heldBytes += raw.length;
      if (this.#heldBytes >= limits.compressionSampleBytes) this.#startCompressing();
    }
    this.#block.reset();
  }

  /**
   * Samples the dictionary from every other held-back block and judges it on
   * the rest (on the blocks it came from, it would save its own pieces): kept
   * if those take less space with it than without. Then stores the held blocks.
   */
  #startCompressing(): void {
    const codec = codecId(this.#options.compression);
    const held = this.#heldBlocks;
    let chosen = new TableCompression(codec);
    const sampled = held.filter((_, i) => i % 2 === 0);
    const judged = held.filter((_, i) => i % 2 === 1);
    const dictionary = sampleDictionary(sampled, limits.compressionDictionaryBytesMax);
    if (dictionary.length > 0 && judged.length > 0) {
      const withDictionary = new TableCompression(codec, dictionary);
      if (storedSize(judged, withDictionary) < storedSize(judged, chosen)) chosen = withDictionary;
    }
    this.#compression = chosen;
    this.#heldBlocks = [];
    this.#heldBytes = 0;
    for (const raw of held) this.#storeBlock(raw, chosen.compress(raw));
  }

  /** Appends a block, compressed when `compressed` is given, and records its index entry. */
  #storeBlock(raw: Buffer, compressed: Buffer | undefined): void {
    this.#blockOffsets.push(this.#position());
    const bytes = compressed ?? raw;
    this.#blockBytes.push(bytes.length);
    this.#rawBytes.push(compressed === undefined ? 0 : raw.length);
    this.#append(bytes);
  }

  /** The file offset the next appended byte lands at. */
  #position(): number {
    return this.#writtenBytes + this.#outBytes;
  }

  #append(bytes: Buffer): void {
    if (this.#outBytes + bytes.length > this.#out.length) this.#flushOut();
    if (bytes.length >= this.#out.length) {
      this.#write(bytes);
      return;
    }
    bytes.copy(this.#out, this.#outBytes);
    this.#outBytes += bytes.length;
  }

  #flushOut(): void {
    if (this.#outBytes === 0) return;
    this.#write(this.#out.subarray(0, this.#outBytes));
    this.#outBytes = 0;
  }

  #write(bytes: Buffer): void {
    const file = this.#file;
    assert(file !== undefined, 'write after close');
    writeFullySync(file, bytes, 0, bytes.length, this.#writtenBytes);
    this.#writtenBytes += bytes.length;
    this.#unsyncedBytes += bytes.length;
    if (this.#unsyncedBytes >= limits.tableSyncBytes) {
      file.syncSync();
      this.#unsyncedBytes = 0;
    }
  }
}

/** The bytes `blocks` would take in the file with `compression` (each compressed or raw). */
function storedSize(blocks: readonly Buffer[], compression: TableCompression): number {
  let total = 0;
  for (const raw of blocks) total += (compression.compress(raw) ?? raw).length;
  return total;
}

function joinVersion(high: number, low: number): bigint {
  return (BigInt(high) << 32n) | BigInt(low);
}
