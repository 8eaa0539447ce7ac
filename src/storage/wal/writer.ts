/**
 * Appends entries to a new write-ahead log file, with group commit.
 *
 * Contract:
 * - append() encodes the entry at once, so entries are in the file in the
 *   order of the append() calls. Each batch is one record (format.ts): the
 *   entries follow a reserved record header, which is filled in (length and
 *   checksum of the whole batch) when the batch is taken for writing. Its promise resolves once the batch holding
 *   the record was written (sync off: the write() returned, so the record
 *   survives a kill of the process) and, with sync on, fdatasync'ed (it
 *   survives a power loss).
 * - Any number of callers may append concurrently. At most one write (plus
 *   its sync) is in flight; appends arriving meanwhile fill the next batch,
 *   so one sync serves all of them. Appends made in one event-loop turn share
 *   one write: the first of them schedules the write with setImmediate.
 * - A batch holds at most batchBytesMax bytes, except that a single entry
 *   larger than that goes alone. Batches wait in a queue without bound:
 *   holding writers back is the engine's job (memtable limits), not the log's.
 * - An I/O error fails the batch being written and every batch behind it with
 *   RINGKV_IO (RINGKV_NO_SPACE when the disk is full), and the writer stays
 *   failed: after a failed write or fsync nobody knows what reached the disk,
 *   so nothing may be appended after it. The engine moves on to a new log
 *   when the disk was full (lsm/write-path.ts).
 * - close() writes what is queued, then (sync off: after one fdatasync, so
 *   that the records are durable before it) the close record (format.ts),
 *   fsyncs (whatever the sync mode), closes the file; later appends reject with
 *   RINGKV_CLOSED. The close record is what tells a reader that the log was
 *   closed rather than cut short by a crash, so that damage to any record
 *   in it is corruption, never a torn tail (reader.ts). A writer that failed
 *   writes none: nobody knows what reached its file.
 * - With prefillBytes, create() writes that many zeros after the header
 *   before the file is used, and records then overwrite them. An fdatasync
 *   of an append that grows a file must commit the file system's journal
 *   (the size and block map changed), and on ext4 that commit waits for the
 *   data of every other file in it: a table being flushed holds the log's
 *   sync for tens of ms. Overwriting blocks already allocated and written
 *   changes no metadata, so the sync writes only the log's own pages. Past
 *   the zeros the file grows as before. The reader takes the zeros left
 *   after the last record for a torn tail, which is what they look like.
 *
 * Memory: entries are encoded into the open batch's buffer (grown in whole
 * pages) and written from it with no copy. A batch being written is never
 * touched again: new entries go into another buffer, and written buffers are
 * kept for reuse (two, so steady load swaps between a filling and a writing
 * one). Each batch has one promise, shared by all of its appends.
 *
 * Example:
 *   const wal = await WalWriter.create(join(dir, '000007.wal'), { sync: true });
 *   await wal.append(valueEntry(key, version, value));
 *   await wal.close();
 */
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { limits } from '../../config/limits.js';
import { assert, INVARIANTS } from '../../util/assert.js';
import { RingkvError } from '../../util/errors.js';
import { encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import type { Entry } from '../entry/entry.js';
import { nodeVfs, storageError, type Vfs, type VfsFile, writeFully } from '../vfs/index.js';
import {
  encodeCloseRecord,
  encodeFileHeader,
  PAYLOAD_BYTES_MAX,
  RECORD_HEADER_BYTES,
  readBatch,
  sealRecord,
} from './format.js';

/** Buffers grow in whole pages: what the kernel copies into the page cache anyway. */
const PAGE_BYTES = 4096;
/** A fresh batch buffer: 16 pages hold a few hundred small entries before it must grow. */
const BATCH_BUFFER_BYTES_INITIAL = 16 * PAGE_BYTES;
/** Written buffers kept for reuse: one filling while one is written. */
const SPARE_BUFFERS_MAX = 2;

/**
 * The part of a vfs file the writer uses, so tests can count calls. When
 * `durableWrites` (the file was opened with O_DSYNC), every write() returns
 * only once its data is durable, and the writer needs no fdatasync after it.
 */
export type WalFile = Pick<VfsFile, 'write' | 'datasync' | 'sync' | 'close'> & {
  readonly durableWrites?: boolean;
};

export interface WalWriterOptions {
  /** true: an append resolves after fdatasync. false: after write() returned. */
  readonly sync: boolean;
  /** Most bytes of records in one write (default limits.walBatchBytesMax). */
  readonly batchBytesMax?: number | undefined;
  /** Zeros written after the header at create, for records to overwrite (default 0; module comment). */
  readonly prefillBytes?: number | undefined;
  /** Rest between prefill chunks (default limits.walPrefillRestMs; 0 when no live log competes). */
  readonly prefillRestMs?: number | undefined;
  /**
   * Aborted: the prefill stops where it is (no error) and create() finishes
   * at once; the file is usable, its records simply go past the zeros.
   */
  readonly prefillSignal?: AbortSignal | undefined;
  /** Where the file is (default: the real file system). */
  readonly vfs?: Vfs | undefined;
  /**
   * Creates the file, failing if it exists (default: on the vfs, opened with
   * O_DSYNC when `sync`, so that one write() call per batch both writes and
   * syncs). Tests wrap it.
   */
  readonly openFile?: ((path: string, sync: boolean) => Promise<WalFile>) | undefined;
}

export interface WalWriterStats {
  /** Entries appended, queued ones included (a batch of them is one record in the file). */
  readonly records: number;
  /** write() calls for batches (the close record's is not counted). */
  readonly writes: number;
  /** fdatasync/fsync calls after the header: one per batch with sync on, plus one at close (two with sync off and records). */
  readonly syncs: number;
}

interface Batch {
  buf: Buffer;
  /** Bytes used in `buf`, the reserved record header included. */
  bytes: number;
  entries: number;
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export class WalWriter {
  readonly #path: string;
  readonly #file: WalFile;
  readonly #sync: boolean;
  readonly #batchBytesMax: number;
  /** Batches not yet taken for writing, oldest first, from #queueHead on. */
  readonly #queue: (Batch | undefined)[] = [];
  #queueHead = 0;
  /** The newest queued batch, while it still takes entries. */
  #openBatch: Batch | undefined;
  readonly #spareBuffers: Buffer[] = [];
  /** The write loop runs (module comment: one write in flight); close() waits for it to end. */
  #looping = false;
  /** close() waiting for the loop to end. */
  readonly #loopEndWaiters: (() => void)[] = [];
  /** The batch being written, and how many of its bytes are written so far. */
  #writing: Batch | undefined;
  #writingDone = 0;
  /** End of the records once everything queued is written (a prefilled file is longer). */
  #bytes: number;
  /** End of the records written so far: where the next batch goes. */
  #writtenBytes: number;
  #failed: RingkvError | undefined;
  #closing: Promise<void> | undefined;
  #records = 0;
  #writes = 0;
  #syncs = 0;

  /**
   * Creates `path` (failing if it exists), writes and fsyncs the header, and
   * fsyncs the directory so that the file's existence survives a power loss.
   */
  static async create(path: string, options: WalWriterOptions): Promise<WalWriter> {
    const batchBytesMax = options.batchBytesMax ?? limits.walBatchBytesMax;
    assert(
      Number.isSafeInteger(batchBytesMax) && batchBytesMax > 0 && batchBytesMax <= PAYLOAD_BYTES_MAX,
      'batchBytesMax must be a positive integer no larger than a record may be',
    );
    const prefillBytes = options.prefillBytes ?? 0;
    assert(Number.isSafeInteger(prefillBytes) && prefillBytes >= 0, 'prefillBytes must be a whole number');
    const vfs = options.vfs ?? nodeVfs;
    const openFile = options.openFile ?? ((p: string, sync: boolean) => vfs.open(p, 'wx', { dsync: sync }));
    let file: WalFile;
    try {
      file = await openFile(path, options.sync);
    } catch (err) {
      throw storageError(`Cannot create WAL ${path}`, err);
    }
    const header = encodeFileHeader();
    try {
      await writeFully(file, header, 0, header.length, 0);
      await _prefill(file, header.length, prefillBytes, {
        restMs: options.prefillRestMs ?? limits.walPrefillRestMs,
        signal: options.prefillSignal,
      });
      await file.sync();
      await vfs.syncDir(dirname(path));
    } catch (err) {
      await file.close().catch(() => undefined);
      throw storageError(`Cannot create WAL ${path}`, err);
    }
    return new WalWriter(path, file, { sync: options.sync, batchBytesMax, headerBytes: header.length });
  }

  /** Use WalWriter.create(): this takes a file whose header is already durable. */
  constructor(
    path: string,
    file: WalFile,
    options: { sync: boolean; batchBytesMax: number; headerBytes: number },
  ) {
    this.#path = path;
    this.#file = file;
    this.#sync = options.sync;
    this.#batchBytesMax = options.batchBytesMax;
    this.#bytes = options.headerBytes;
    this.#writtenBytes = options.headerBytes;
  }

  get path(): string {
    return this.#path;
  }

  /** Where the records end once every appended one is written (a prefilled file is longer). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Why the writer failed, once a write or sync failed: it takes no more appends (module comment). */
  get failure(): RingkvError | undefined {
    return this.#failed;
  }

  stats(): WalWriterStats {
    return { records: this.#records, writes: this.#writes, syncs: this.#syncs };
  }

  /** Resolves when the record is written (and synced, with sync on); see the module comment. */
  append(entry: Entry): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new RingkvError('RINGKV_CLOSED', `WAL is closed: ${this.#path}`));
    }
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    // The reader calls longer records corruption, so none may be written.
    assert(entry.key.length <= limits.keyBytesHardMax, 'WAL entry key is over keyBytesHardMax');
    assert(entry.value.length <= limits.valueBytesHardMax, 'WAL entry value is over valueBytesHardMax');
    const size = encodedEntryBytes(entry);
    const batch = this.#batchFor(size);
    const start = batch.bytes;
    const end = encodeEntry(entry, batch.buf, start);
    assert(end === start + size, 'WAL entry size differs from its estimate');
    batch.bytes = end;
    batch.entries++;
    this.#bytes += size;
    this.#records++;
    if (!this.#looping) {
      this.#looping = true;
      // Let every append of this event-loop turn join the first batch.
      setImmediate(this.#writeNext);
    }
    return batch.done;
  }

  /**
   * Writes what is queued and the close record, fsyncs, closes the file. Safe
   * to call twice (the first call's options hold); rejects if the writer
   * failed. With `closeRecord: false` (crash tests) the file is left as a
   * killed process leaves it: its records, no close record.
   */
  close(options: { closeRecord?: boolean } = {}): Promise<void> {
    this.#closing ??= this.#closeOnce(options.closeRecord ?? true);
    return this.#closing;
  }

  async #closeOnce(closeRecord: boolean): Promise<void> {
    // The loop runs until the queue is empty, and no append can queue more now.
    if (this.#looping) await new Promise<void>((resolve) => this.#loopEndWaiters.push(resolve));
    if (this.#failed !== undefined) {
      await this.#file.close().catch(() => undefined);
      throw this.#failed;
    }
    if (closeRecord) {
      // With sync off the records are in the page cache only: make them durable
      // before the close record, so that a power cut can never keep the close
      // record and lose a record before it (that would read as corruption,
      // not as a torn tail).
      if (!this.#sync && this.#writes > 0) {
        await this.#closeStep('fdatasync', () => this.#file.datasync());
        this.#syncs++;
      }
      // Every appended entry is written now: the loop only ends with the queue empty, or failed.
      const record = encodeCloseRecord({
        recordsEnd: this.#writtenBytes,
        batches: this.#writes,
        entries: this.#records,
      });
      await this.#closeStep('write', () =>
        writeFully(this.#file, record, 0, record.length, this.#writtenBytes),
      );
      this.#writtenBytes += record.length;
    }
    await this.#closeStep('fsync', () => this.#file.sync());
    this.#syncs++;
    try {
      await this.#file.close();
    } catch (err) {
      throw this.#ioError('close', err);
    }
  }

  /** One I/O step of close(): if it fails, the writer is failed and its file closed. */
  async #closeStep(operation: string, step: () => Promise<unknown>): Promise<void> {
    try {
      await step();
    } catch (err) {
      this.#failed = this.#ioError(operation, err);
      await this.#file.close().catch(() => undefined);
      throw this.#failed;
    }
  }

  /** The batch that takes an entry of `size` bytes, with room for it. */
  #batchFor(size: number): Batch {
    let batch = this.#openBatch;
    if (batch !== undefined && batch.entries > 0 && batch.bytes + size > this.#batchBytesMax)
      batch = undefined;
    if (batch === undefined) {
      batch = this.#newBatch();
      this.#queue.push(batch);
      this.#openBatch = batch;
      this.#bytes += RECORD_HEADER_BYTES;
    }
    if (batch.bytes + size > batch.buf.length) this.#grow(batch, batch.bytes + size);
    return batch;
  }

  #newBatch(): Batch {
    const buf =
      this.#spareBuffers.pop() ??
      Buffer.allocUnsafeSlow(Math.min(BATCH_BUFFER_BYTES_INITIAL, _roundUpToPage(this.#batchBytesMax)));
    let resolve!: () => void;
    let reject!: (err: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The record header is filled in when the batch closes (#takeBatch).
    return { buf, bytes: RECORD_HEADER_BYTES, entries: 0, done, resolve, reject };
  }

  /** Doubles the buffer (or more, for a large record), keeping the records already in it. */
  #grow(batch: Batch, neededBytes: number): void {
    const doubled = Math.min(2 * batch.buf.length, this.#batchBytesMax);
    const grown = Buffer.allocUnsafeSlow(_roundUpToPage(Math.max(neededBytes, doubled)));
    batch.buf.copy(grown, 0, 0, batch.bytes);
    batch.buf = grown;
  }

  #takeBatch(): Batch | undefined {
    if (this.#queueHead === this.#queue.length) return undefined;
    const batch = this.#queue[this.#queueHead]!;
    this.#queue[this.#queueHead++] = undefined;
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    }
    // INVARIANT: from here on nobody adds to the batch, so its buffer is stable while written.
    if (batch === this.#openBatch) this.#openBatch = undefined;
    sealRecord(batch.buf, 0, batch.bytes);
    if (INVARIANTS) this.#checkBatch(batch);
    return batch;
  }

  /*
   * The write loop: batches one at a time until none is queued; failures go
   * to the batches. Callbacks on the file's promises rather than an async
   * function: with a write per batch and often a batch per append, an async
   * frame and its awaits were most of an append's garbage. The callbacks are
   * made once, here; only the file's own promise and its reaction are per write.
   */

  /** Takes the next batch and starts its write, or ends the loop when none is queued. */
  readonly #writeNext = (): void => {
    let batch: Batch | undefined;
    try {
      batch = this.#takeBatch();
    } catch (err) {
      // A failed internal check (INVARIANTS): thrown on, but close() must not wait for a loop that is gone.
      this.#endLoop();
      throw err;
    }
    if (batch === undefined) {
      this.#endLoop();
      return;
    }
    this.#writing = batch;
    this.#writingDone = 0;
    this.#writeRest();
  };

  #writeRest(): void {
    const batch = this.#writing!;
    const done = this.#writingDone;
    let written: Promise<number>;
    try {
      written = this.#file.write(batch.buf, done, batch.bytes - done, this.#writtenBytes + done);
    } catch (err) {
      this.#loopFailed('write', err);
      return;
    }
    written.then(this.#onWritten, this.#onWriteFailed);
  }

  readonly #onWritten = (written: number): void => {
    const batch = this.#writing!;
    if (written <= 0) {
      this.#loopFailed(
        'write',
        new Error(`write() wrote ${written} bytes of ${batch.bytes - this.#writingDone}`),
      );
      return;
    }
    this.#writingDone += written;
    if (this.#writingDone < batch.bytes) {
      this.#writeRest();
      return;
    }
    this.#writes++;
    this.#writtenBytes += batch.bytes;
    if (this.#sync && this.#file.durableWrites !== true) {
      let synced: Promise<void>;
      try {
        synced = this.#file.datasync();
      } catch (err) {
        this.#loopFailed('fdatasync', err);
        return;
      }
      synced.then(this.#onBatchDurable, this.#onSyncFailed);
      return;
    }
    this.#onBatchDurable();
  };

  readonly #onBatchDurable = (): void => {
    const batch = this.#writing!;
    this.#writing = undefined;
    if (this.#sync) this.#syncs++;
    batch.resolve();
    if (
      this.#spareBuffers.length < SPARE_BUFFERS_MAX &&
      batch.buf.length <= _roundUpToPage(this.#batchBytesMax)
    ) {
      this.#spareBuffers.push(batch.buf);
    }
    this.#writeNext();
  };

  readonly #onWriteFailed = (err: unknown): void => this.#loopFailed('write', err);
  readonly #onSyncFailed = (err: unknown): void => this.#loopFailed('fdatasync', err);

  /** The batch being written failed, and with it every batch behind it; the loop ends. */
  #loopFailed(operation: string, err: unknown): void {
    const batch = this.#writing!;
    this.#writing = undefined;
    this.#fail(batch, this.#ioError(operation, err));
    this.#endLoop();
  }

  #endLoop(): void {
    this.#looping = false;
    for (const resolve of this.#loopEndWaiters.splice(0)) resolve();
  }

  #fail(batch: Batch, error: RingkvError): void {
    this.#failed = error;
    batch.reject(error);
    for (let next = this.#takeBatch(); next !== undefined; next = this.#takeBatch()) next.reject(error);
  }

  /** RINGKV_IO, or RINGKV_NO_SPACE when the disk is full. */
  #ioError(operation: string, cause: unknown): RingkvError {
    return storageError(`WAL ${operation} failed: ${this.#path}`, cause);
  }

  /** The paired check of the reader's: a sealed batch reads back as one intact record of all its entries. */
  #checkBatch(batch: Batch): void {
    const read = readBatch(batch.buf, 0, batch.bytes);
    assert(
      'entries' in read && read.end === batch.bytes && read.entries.length === batch.entries,
      'WAL batch does not read back',
    );
  }
}

/**
 * Writes `bytes` zeros from `position` in chunks, resting between them: the
 * file is a spare, made while the live log syncs, and one long write would
 * hold the disk from those syncs. On the log's own descriptor (O_DSYNC with
 * sync on) each chunk reaches the disk as it is written, rather than all of
 * them in one burst at the final sync. Stops early, quietly, once `signal`
 * is aborted.
 */
async function _prefill(
  file: WalFile,
  position: number,
  bytes: number,
  options: { restMs: number; signal: AbortSignal | undefined },
): Promise<void> {
  if (bytes <= 0) return;
  const { restMs, signal } = options;
  const zeros = Buffer.alloc(Math.min(bytes, limits.walPrefillChunkBytes));
  for (let done = 0; done < bytes && signal?.aborted !== true; done += zeros.length) {
    if (done > 0 && restMs > 0) {
      try {
        await sleep(restMs, undefined, { signal });
      } catch {
        return; // aborted during the rest
      }
    }
    await writeFully(file, zeros, 0, Math.min(zeros.length, bytes - done), position + done);
  }
}

function _roundUpToPage(bytes: number): number {
  return Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;
}
