/**
 * Reads one SSTable on the event loop: asynchronous positional reads only.
 *
 * open() reads and verifies the footer, then the index and filter, which
 * stay in memory; data blocks come through the shared BlockCache, read on a
 * miss into a fresh buffer that is never mutated, so entries handed out
 * (views into blocks) stay valid for as long as the caller keeps them.
 * Callers must not mutate them either. A compressed block is decompressed
 * right after its read: in the same thread-pool task by the native reader
 * when it is built (native-reader.ts), else on the event loop
 * (compression.ts); either way the cache
 * keeps it decompressed: a cached block is searched by many reads, and
 * decompressing it for each would cost more than the whole cached lookup
 * (the page cache keeps the compressed bytes anyway). The cache's capacity
 * therefore bounds decompressed bytes.
 *
 * Lifetime: the reader counts references. Every cursor holds one until it
 * is closed or exhausted, and every block read in flight holds one, so the
 * file handle is released only when close() has been called and the count
 * drops to 0. ref()/unref() let an owner (a version of the table set) keep
 * the reader usable past someone else's close(): until the handle is
 * released, get(), cursor() and cursors opened earlier keep working; after
 * it, get() rejects and cursor() and ref() throw RINGKV_CLOSED.
 *
 * Concurrent get() calls and cursors are fine; two misses on one block share
 * one read.
 */
import { assert } from '../../util/assert.js';
import { compareBytes, compareRange } from '../../util/bytes.js';
import { CorruptionError, RingkvError } from '../../util/errors.js';
import type { Entry } from '../entry/entry.js';
import { nodeVfs, type Vfs, type VfsFile } from '../vfs/index.js';
import type { Block } from './block.js';
import { BloomFilter } from './bloom.js';
import type { BlockCache } from './cache.js';
import { TableCompression } from './compression.js';
import { decodeFooter, decodeIndex, FOOTER_BYTES, openSection, type TableIndex } from './format.js';

/** Batches of entries in key order, each at most one block's worth and never empty. */
export interface TableCursor {
  /** The next batch, or undefined once the range is exhausted (or the cursor closed). */
  next(): Promise<Entry[] | undefined>;
  /** Releases the cursor's reference on its reader; safe to call twice. */
  close(): Promise<void>;
}

export class TableReader {
  readonly path: string;
  readonly fileNumber: number;
  readonly fileBytes: number;
  readonly entryCount: number;
  readonly smallestKey: Buffer;
  readonly largestKey: Buffer;
  readonly minVersion: bigint;
  readonly maxVersion: bigint;

  readonly #handle: VfsFile;
  readonly #cache: BlockCache;
  readonly #index: TableIndex;
  readonly #filter: BloomFilter;
  readonly #compression: TableCompression;
  readonly #inflight = new Map<number, Promise<Block>>();
  #refs = 0;
  #rawFileBytes: number | undefined;
  #closed = false;
  #released: Promise<void> | undefined;

  private constructor(
    path: string,
    fileNumber: number,
    parts: {
      handle: VfsFile;
      cache: BlockCache;
      fileBytes: number;
      entryCount: number;
      minVersion: bigint;
      maxVersion: bigint;
      index: TableIndex;
      filter: BloomFilter;
      compression: TableCompression;
    },
  ) {
    this.path = path;
    this.fileNumber = fileNumber;
    this.fileBytes = parts.fileBytes;
    this.entryCount = parts.entryCount;
    this.minVersion = parts.minVersion;
    this.maxVersion = parts.maxVersion;
    this.smallestKey = parts.index.smallestKey;
    this.largestKey = parts.index.largestKey;
    this.#handle = parts.handle;
    this.#cache = parts.cache;
    this.#index = parts.index;
    this.#filter = parts.filter;
    this.#compression = parts.compression;
  }

  /** Opens and verifies a table; CorruptionError if its footer, index or filter is damaged or it is truncated. */
  static async open(
    path: string,
    fileNumber: number,
    cache: BlockCache,
    vfs: Vfs = nodeVfs,
  ): Promise<TableReader> {
    const handle = await vfs.open(path, 'r');
    try {
      const size = await handle.size();
      if (size < FOOTER_BYTES) {
        throw new CorruptionError(
          path,
          0,
          `truncated: ${size} bytes, less than the ${FOOTER_BYTES}-byte footer`,
        );
      }
      const footer = decodeFooter(await readAt(handle, path, size - FOOTER_BYTES, FOOTER_BYTES), path, size);
      const meta = await readAt(handle, path, footer.indexOffset, footer.indexBytes + footer.filterBytes);
      const indexPayload = openSection(
        meta.subarray(0, footer.indexBytes),
        path,
        footer.indexOffset,
        'index',
      );
      const index = decodeIndex(indexPayload, path, footer);
      const filterPayload = openSection(
        meta.subarray(footer.indexBytes),
        path,
        footer.filterOffset,
        'filter',
      );
      const filter = BloomFilter.decode(filterPayload);
      if (typeof filter === 'string') throw new CorruptionError(path, footer.filterOffset, filter);
      if (compareBytes(index.smallestKey, index.lastKey(0)) > 0) {
        throw new CorruptionError(path, footer.indexOffset, 'index: smallest key after the first block');
      }
      return new TableReader(path, fileNumber, {
        handle,
        cache,
        fileBytes: size,
        entryCount: footer.entryCount,
        minVersion: footer.minVersion,
        maxVersion: footer.maxVersion,
        index,
        filter,
        compression: new TableCompression(footer.codec, index.dictionary),
      });
    } catch (err) {
      // The open failure is what the caller needs to see, not a failure to close.
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /** false: the table certainly does not hold `key`. */
  mayContain(key: Buffer): boolean {
    return this.#filter.mayContain(key);
  }

  /**
   * The file's size were its data blocks stored raw: what its entries take
   * in a table written without a codec (compaction sizes its outputs by it).
   */
  get rawFileBytes(): number {
    if (this.#rawFileBytes === undefined) {
      let bytes = this.fileBytes;
      const index = this.#index;
      for (let i = 0; i < index.blockCount; i++) bytes += index.decodedBytes(i) - index.blockBytes(i);
      this.#rawFileBytes = Math.max(bytes, this.fileBytes);
    }
    return this.#rawFileBytes;
  }

  /** mayContain() with the key's bloomHash() computed once by the caller for every table it probes. */
  mayContainHash(hash: number): boolean {
    return this.#filter.mayContainHash(hash);
  }

  /**
   * The lookup without a wait, for a key the caller has checked against the
   * table's range and filter: the entry or undefined when the block that may
   * hold the key is cached, BLOCK_NOT_CACHED when it must be read (get()).
   * Point reads of a warm store then cost no promise per table.
   */
  getCached(key: Buffer): Entry | undefined | typeof BLOCK_NOT_CACHED {
    this.#checkOpen();
    const blockIndex = this.#index.findBlock(key);
    if (blockIndex >= this.#index.blockCount) return undefined;
    const block = this.#cache.lookup(this.fileNumber, this.#index.blockOffset(blockIndex));
    return block === undefined ? BLOCK_NOT_CACHED : block.find(key);
  }

  /** The table's entry for `key` (value, tombstone or expired alike), or undefined. */
  async get(key: Buffer): Promise<Entry | undefined> {
    this.#checkOpen();
    const smallest = this.smallestKey;
    const largest = this.largestKey;
    if (compareRange(key, 0, key.length, smallest, 0, smallest.length) < 0) return undefined;
    if (compareRange(key, 0, key.length, largest, 0, largest.length) > 0) return undefined;
    if (!this.#filter.mayContain(key)) return undefined;
    const blockIndex = this.#index.findBlock(key);
    // INVARIANT: smallestKey <= key <= largestKey, so some block's last key is >= key.
    assert(blockIndex < this.#index.blockCount, 'key within bounds but past the last block');
    const block = this.#cache.lookup(this.fileNumber, this.#index.blockOffset(blockIndex));
    return (block ?? (await this._readBlock(blockIndex))).find(key);
  }

  /**
   * get() for a key whose block getCached() has just found not cached: reads
   * the block (sharing a read in flight) without looking it up again, which
   * would count that one miss twice in the cache's stats.
   */
  async getUncached(key: Buffer): Promise<Entry | undefined> {
    this.#checkOpen();
    const blockIndex = this.#index.findBlock(key);
    if (blockIndex >= this.#index.blockCount) return undefined;
    return (await this._readBlock(blockIndex)).find(key);
  }

  /**
   * Loads the table's data blocks into the cache ahead of need, reading them
   * in large sequential chunks (far cheaper than one pread per block), while
   * the cache has room; stops early when it is full or the table is closed.
   * Returns false when the cache filled up. A damaged block is left out: the
   * read that needs it reports the corruption.
   */
  async warm(chunkBytesMax: number): Promise<boolean> {
    if (this.#released !== undefined) return true;
    this.ref();
    try {
      const index = this.#index;
      let blockIndex = 0;
      while (blockIndex < index.blockCount && !this.#closed) {
        // One read covers consecutive uncached blocks up to chunkBytesMax of decoded bytes (for
        // compressed blocks the decompression, on the event loop, is the larger part of the work).
        while (
          blockIndex < index.blockCount &&
          this.#cache.has(this.fileNumber, index.blockOffset(blockIndex))
        ) {
          blockIndex++;
        }
        if (blockIndex >= index.blockCount) break;
        const first = blockIndex;
        const chunkStart = index.blockOffset(first);
        let chunkEnd = chunkStart + index.blockBytes(first);
        let decodedBytes = index.decodedBytes(first);
        blockIndex++;
        while (
          blockIndex < index.blockCount &&
          index.blockOffset(blockIndex) === chunkEnd &&
          decodedBytes + index.decodedBytes(blockIndex) <= chunkBytesMax
        ) {
          chunkEnd += index.blockBytes(blockIndex);
          decodedBytes += index.decodedBytes(blockIndex);
          blockIndex++;
        }
        if (this.#cache.stats().bytes + decodedBytes > this.#cache.capacityBytes) return false;
        const chunk = await readAt(this.#handle, this.path, chunkStart, chunkEnd - chunkStart);
        for (let i = first; i < blockIndex; i++) {
          const at = index.blockOffset(i) - chunkStart;
          let stored = chunk.subarray(at, at + index.blockBytes(i));
          // A raw block gets a copy, so that evicting it frees its memory rather than pinning the
          // chunk; a compressed one decompresses into a buffer of its own.
          if (index.rawBytes(i) === 0) {
            stored = Buffer.allocUnsafeSlow(stored.length);
            chunk.copy(stored, 0, at, at + stored.length);
          }
          let block: Block;
          try {
            block = this.#compression.openBlock(stored, index, i, this.path);
          } catch {
            continue;
          }
          if (this.#closed) return true;
          if (!this.#cache.insertCold(this.fileNumber, block)) return false;
        }
      }
      return true;
    } finally {
      this.unref();
    }
  }

  /** Entries with start <= key < end (no end: to the last key), in key order. */
  cursor(start: Buffer, end?: Buffer): TableCursor {
    this.#checkOpen();
    return new Cursor(this, start, end);
  }

  ref(): void {
    if (this.#released !== undefined) throw this.#closedError();
    this.#refs++;
  }

  unref(): void {
    assert(this.#refs > 0, 'unref() without a matching ref()');
    this.#refs--;
    if (this.#refs === 0 && this.#closed) this.#release();
  }

  /** Marks the reader closed; resolves once the handle is released, or at once while references remain. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      if (this.#refs === 0) this.#release();
    }
    if (this.#released !== undefined) await this.#released;
  }

  /** For Cursor: the decoded index. */
  get _index(): TableIndex {
    return this.#index;
  }

  /** For Cursor: block `blockIndex`, from the cache or the file. */
  _block(blockIndex: number): Block | Promise<Block> {
    return (
      this.#cache.lookup(this.fileNumber, this.#index.blockOffset(blockIndex)) ?? this._readBlock(blockIndex)
    );
  }

  /** Reads a block after a cache miss; concurrent misses on one block share the read. */
  _readBlock(blockIndex: number): Promise<Block> {
    const offset = this.#index.blockOffset(blockIndex);
    let pending = this.#inflight.get(offset);
    if (pending === undefined) {
      pending = this.#readBlockUncached(blockIndex);
      this.#inflight.set(offset, pending);
    }
    return pending;
  }

  async #readBlockUncached(blockIndex: number): Promise<Block> {
    const index = this.#index;
    const offset = index.blockOffset(blockIndex);
    // The read holds a reference so that close() cannot pull the handle from under it.
    this.ref();
    try {
      // A compressed block's stored bytes live only until they are decompressed: a slice of
      // Buffer's shared pool costs a fraction of a buffer of its own (a fifth, on 4 KiB blocks).
      const compressed = index.rawBytes(blockIndex) > 0;
      const fd = this.#handle.fd;
      const native =
        compressed && fd !== undefined
          ? this.#compression.readNative(fd, index, blockIndex, this.path)
          : undefined;
      const block =
        native !== undefined
          ? await native
          : this.#compression.openBlock(
              await readAt(this.#handle, this.path, offset, index.blockBytes(blockIndex), compressed),
              index,
              blockIndex,
              this.path,
            );
      if (!this.#closed) this.#cache.insert(this.fileNumber, block);
      return block;
    } finally {
      this.#inflight.delete(offset);
      this.unref();
    }
  }

  #release(): void {
    assert(this.#released === undefined, 'reader released twice');
    this.#cache.evictFile(this.fileNumber);
    // Closing a read-only handle cannot lose data; a failure here has nothing to report to.
    this.#released = this.#handle.close().catch(() => undefined);
  }

  /** A closed reader still serves whoever holds a reference; only a released one refuses. */
  #checkOpen(): void {
    if (this.#released !== undefined) throw this.#closedError();
  }

  #closedError(): RingkvError {
    return new RingkvError('RINGKV_CLOSED', `Table is closed: ${this.path}`);
  }
}

/**
 * A range cursor: starts at the block that may hold `start`, then walks the
 * blocks in order, one block per batch, until a key >= end or the last block.
 */
class Cursor implements TableCursor {
  readonly #reader: TableReader;
  readonly #start: Buffer;
  readonly #end: Buffer | undefined;
  #blockIndex: number;
  #first = true;
  #done = false;
  #busy = false;

  constructor(reader: TableReader, start: Buffer, end: Buffer | undefined) {
    this.#reader = reader;
    this.#start = start;
    this.#end = end;
    reader.ref();
    this.#blockIndex = reader._index.findBlock(start);
    if (end !== undefined && compareBytes(start, end) >= 0) this.#finish();
  }

  async next(): Promise<Entry[] | undefined> {
    if (this.#done) return undefined;
    assert(!this.#busy, 'TableCursor.next() called again before the previous call settled');
    this.#busy = true;
    try {
      return await this.#nextBatch();
    } finally {
      this.#busy = false;
    }
  }

  async close(): Promise<void> {
    this.#finish();
  }

  async #nextBatch(): Promise<Entry[] | undefined> {
    const index = this.#reader._index;
    while (!this.#done && this.#blockIndex < index.blockCount) {
      const blockIndex = this.#blockIndex++;
      const block = await this.#reader._block(blockIndex);
      if (this.#done) return undefined;
      const from = this.#first ? block.lowerBound(this.#start) : 0;
      this.#first = false;
      const endsHere = this.#end !== undefined && compareBytes(index.lastKey(blockIndex), this.#end) >= 0;
      const to = endsHere ? block.lowerBound(this.#end!) : block.entryCount;
      if (endsHere || this.#blockIndex === index.blockCount) this.#finish();
      if (from < to) return block.entries(from, to);
    }
    this.#finish();
    return undefined;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#reader.unref();
  }
}

/** getCached()'s answer when the block is not in the cache. */
export const BLOCK_NOT_CACHED: unique symbol = Symbol('block not cached');

/**
 * Reads exactly `length` bytes at `position` into a fresh buffer; a short
 * file is corruption. The buffer has memory of its own, not a slice of the
 * shared pool, so that a cached block pins only itself; a `transient` read
 * (kept only for the moment) may take a pool slice.
 */
async function readAt(
  file: VfsFile,
  path: string,
  position: number,
  length: number,
  transient = false,
): Promise<Buffer> {
  const buf = transient ? Buffer.allocUnsafe(length) : Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    // One positional read on the descriptor per call (node-vfs.ts): block reads are the hot path of every uncached lookup.
    const bytesRead = await file.read(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new CorruptionError(path, position, `truncated: wanted ${length} bytes, file ends after ${done}`);
    }
    done += bytesRead;
  }
  return buf;
}
