/**
 * A synchronous front-to-back read of a whole table, for the compaction
 * worker thread (never the event loop). Footer, index and every data block
 * are checksum-verified; the filter is not read. Blocks are read in chunks
 * of about SCAN_CHUNK_BYTES, each into a fresh buffer, and compressed blocks
 * are decompressed into buffers of their own, so the entries yielded (views
 * into those buffers) stay valid after the generator moves on.
 *
 * TableRecordScan is the read itself, one record view at a time (what
 * compaction merges); scanTableSync yields it as Entry objects. The file is
 * closed when the scan ends or fails, or when the generator is returned
 * early (for...of with break).
 */
import { CorruptionError } from '../../util/errors.js';
import type { Entry } from '../entry/entry.js';
import { RecordView } from '../entry/record.js';
import { nodeVfs, type Vfs, type VfsFile } from '../vfs/index.js';
import type { Block } from './block.js';
import { TableCompression } from './compression.js';
import { decodeFooter, decodeIndex, FOOTER_BYTES, openSection, type TableIndex } from './format.js';

/** One read call's worth: 1 MiB is a quarter of a default-size table. */
export const SCAN_CHUNK_BYTES = 1024 * 1024;

export function* scanTableSync(path: string, vfs: Vfs = nodeVfs): Generator<Entry> {
  const scan = new TableRecordScan(path, vfs);
  try {
    while (scan.next()) yield scan.record.toEntry();
  } finally {
    scan.close();
  }
}

/**
 * The same read, record by record in place (record.ts): `record` moves to
 * the next entry on each next(), and nothing is allocated per entry. The
 * record's bytes stay valid after the scan moves on (each chunk is a fresh
 * buffer), so a merge may hold one while it advances other scans.
 */
export class TableRecordScan {
  readonly path: string;
  readonly record = new RecordView();
  #file: VfsFile | undefined;
  readonly #index: TableIndex;
  readonly #compression: TableCompression;
  /** The next block to decode, and the first block past the chunk in memory. */
  #blockIndex = 0;
  #chunkEndBlock = 0;
  #chunk: Buffer | undefined;
  #chunkStart = 0;
  #block: Block | undefined;
  #entryIndex = 0;

  /** Opens the file and reads its footer and index; throws CorruptionError (and closes) if they are bad. */
  constructor(path: string, vfs: Vfs = nodeVfs) {
    this.path = path;
    const file = vfs.openSync(path, 'r');
    try {
      const size = file.sizeSync();
      if (size < FOOTER_BYTES) {
        throw new CorruptionError(
          path,
          0,
          `truncated: ${size} bytes, less than the ${FOOTER_BYTES}-byte footer`,
        );
      }
      const footer = decodeFooter(readAtSync(file, path, size - FOOTER_BYTES, FOOTER_BYTES), path, size);
      const indexSection = readAtSync(file, path, footer.indexOffset, footer.indexBytes);
      const indexPayload = openSection(indexSection, path, footer.indexOffset, 'index');
      this.#index = decodeIndex(indexPayload, path, footer);
      this.#compression = new TableCompression(footer.codec, this.#index.dictionary);
    } catch (err) {
      file.closeSync();
      throw err;
    }
    this.#file = file;
  }

  /** Moves `record` to the next entry; false (and the file closed) after the last one. */
  next(): boolean {
    while (this.#block === undefined || this.#entryIndex === this.#block.entryCount) {
      if (!this.#nextBlock()) {
        this.close();
        return false;
      }
    }
    this.#block.recordAt(this.#entryIndex++, this.record);
    return true;
  }

  close(): void {
    const file = this.#file;
    this.#file = undefined;
    this.#block = undefined;
    file?.closeSync();
  }

  #nextBlock(): boolean {
    const index = this.#index;
    if (this.#file === undefined || this.#blockIndex === index.blockCount) return false;
    if (this.#blockIndex === this.#chunkEndBlock) this.#readChunk();
    const start = index.blockOffset(this.#blockIndex) - this.#chunkStart;
    const stored = this.#chunk!.subarray(start, start + index.blockBytes(this.#blockIndex));
    this.#block = this.#compression.openBlock(stored, index, this.#blockIndex, this.path);
    this.#blockIndex++;
    this.#entryIndex = 0;
    return true;
  }

  /** Reads whole blocks from #blockIndex on, at most SCAN_CHUNK_BYTES (or one bigger block alone). */
  #readChunk(): void {
    const index = this.#index;
    const chunkStart = index.blockOffset(this.#blockIndex);
    let chunkEnd = chunkStart + index.blockBytes(this.#blockIndex);
    let lastBlock = this.#blockIndex + 1;
    while (
      lastBlock < index.blockCount &&
      chunkEnd + index.blockBytes(lastBlock) - chunkStart <= SCAN_CHUNK_BYTES
    ) {
      chunkEnd += index.blockBytes(lastBlock);
      lastBlock++;
    }
    this.#chunk = readAtSync(this.#file!, this.path, chunkStart, chunkEnd - chunkStart);
    this.#chunkStart = chunkStart;
    this.#chunkEndBlock = lastBlock;
  }
}

function readAtSync(file: VfsFile, path: string, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    const bytesRead = file.readSync(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new CorruptionError(path, position, `truncated: wanted ${length} bytes, file ends after ${done}`);
    }
    done += bytesRead;
  }
  return buf;
}
