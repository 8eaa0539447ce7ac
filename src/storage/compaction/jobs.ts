/**
 * The two background jobs that write SSTables, run inside the worker thread
 * (worker.ts) with synchronous file I/O, which is fine off the event loop.
 *
 * - flush: a frozen memtable's entries, already sorted and encoded into one
 *   buffer shared with the event loop (read in place, and reused by the
 *   next flush once this one answered), become one level-0 table.
 * - compaction: input tables are merged (newest version per key); shadowed
 *   versions disappear, and at the bottom of the tree tombstones and expired
 *   values older than the grace period are dropped, provided their version
 *   is below `obsoleteBelowVersion`: the smallest version that anything
 *   outside the compaction may hold for its keys (lsm/background.ts says why
 *   and how it is checked again at install); so are, when the job carries a
 *   purge filter (../purge.ts), the entries it names. Output is cut into
 *   tables near `tableBytesTarget`, each under a file number reserved for the
 *   job; the last reserved number takes whatever remains, however large, so
 *   that a job never runs out of them (the reservation is an estimate: a
 *   table's stored size depends on its codec, which may have changed).
 *
 * Every output table is fsynced before the job reports it; the caller makes
 * it live by writing the manifest.
 *
 * A compaction can be stopped from the engine's thread (its `stop` flag, read
 * at every record): it then fails with RINGKV_CLOSED like any failed job,
 * its outputs deleted and its inputs as they were. A full compaction rewrites
 * the whole store, which the engine's close must not wait for.
 *
 * Files go through a vfs: the worker's own nodeVfs, or, when jobs run
 * in-process (background.ts), the engine's.
 */
import { assert } from '../../util/assert.js';
import { CorruptionError, isRingkvError, RingkvError } from '../../util/errors.js';
import { droppableFromMs } from '../entry/entry.js';
import { RecordView } from '../entry/record.js';
import { filePath } from '../files.js';
import { RecordMerge } from '../iterator/record-merge.js';
import { type PurgeFilter, purged } from '../purge.js';
import { type TableMeta, TableRecordScan, TableWriter, type TableWriterOptions } from '../sstable/index.js';
import { isNoSpace, nodeVfs, type Vfs } from '../vfs/index.js';

export interface FlushJob {
  readonly kind: 'flush';
  readonly dir: string;
  readonly fileNumber: number;
  /** encodeEntry() records back to back, in key order. */
  readonly entries: Uint8Array;
  readonly writer: TableWriterOptions;
}

export interface CompactionJob {
  readonly kind: 'compaction';
  readonly dir: string;
  readonly inputs: readonly number[];
  /** File numbers reserved for outputs, used in order. */
  readonly outputFileNumbers: readonly number[];
  readonly tableBytesTarget: number;
  /** The output is the bottom for its key range: obsolete tombstones may go. */
  readonly bottom: boolean;
  /**
   * Obsolete records go only when their version is below this one: the
   * smallest version held, outside the inputs, for keys in their range
   * (memtables included), or 2^64 when nothing is.
   */
  readonly obsoleteBelowVersion: bigint;
  readonly nowMs: number;
  readonly tombstoneGraceMs: number;
  readonly writer: TableWriterOptions;
  /** Entries to drop for good (a full compaction of every table: no older version can resurface). */
  readonly purge?: PurgeFilter;
  /** On a SharedArrayBuffer the engine keeps: nonzero stops the job at its next record (module comment). */
  readonly stop?: Int32Array;
}

export type Job = FlushJob | CompactionJob;

export interface JobResult {
  readonly tables: TableMeta[];
  readonly entriesIn: number;
  readonly entriesDropped: number;
  /** The largest version among the obsolete records a compaction dropped; absent when it dropped none. */
  readonly obsoleteVersionMax?: bigint;
}

/** A tombstone or expired value that no replica can still need: older than the grace period. */
export function isObsolete(record: RecordView, nowMs: number, graceMs: number): boolean {
  const fromMs = droppableFromMs(record.kind, record.versionPhysicalMs, record.expiresAtMs);
  return fromMs >= 0 && fromMs + graceMs <= nowMs;
}

export function runFlush(job: FlushJob, vfs: Vfs = nodeVfs): JobResult {
  const buf = Buffer.from(job.entries.buffer, job.entries.byteOffset, job.entries.byteLength);
  const writer = new TableWriter(filePath(job.dir, job.fileNumber, 'sst'), job.fileNumber, job.writer, vfs);
  const record = new RecordView();
  let count = 0;
  try {
    for (let offset = 0; offset < buf.length; offset = record.end) {
      const bad = record.parse(buf, offset, buf.length);
      assert(bad === undefined, `Flush buffer is malformed at ${offset}: ${bad}`);
      writer.addRecord(record);
      count++;
    }
    if (count === 0) {
      writer.abort();
      return { tables: [], entriesIn: 0, entriesDropped: 0 };
    }
    return { tables: [writer.finish()], entriesIn: count, entriesDropped: 0 };
  } catch (err) {
    // A failed flush is retried with a new file number: this one's half-written file must not stay behind.
    try {
      writer.abort();
    } catch {
      // Left for the next open, which deletes tables the manifest does not list.
    }
    throw err;
  }
}

export function runCompaction(job: CompactionJob, vfs: Vfs = nodeVfs): JobResult {
  const sources: TableRecordScan[] = [];
  const tables: TableMeta[] = [];
  let writer: TableWriter | undefined;
  let outputIndex = 0;
  let entriesIn = 0;
  let entriesDropped = 0;
  let obsoleteVersionMax: bigint | undefined;
  const outputsMax = job.outputFileNumbers.length;
  assert(outputsMax > 0, 'A compaction needs at least one output file number');
  try {
    for (const n of job.inputs) sources.push(new TableRecordScan(filePath(job.dir, n, 'sst'), vfs));
    const merge = new RecordMerge(sources);
    for (let record = merge.next(); record !== undefined; record = merge.next()) {
      if (job.stop !== undefined && Atomics.load(job.stop, 0) !== 0) {
        throw new RingkvError('RINGKV_CLOSED', 'Compaction stopped');
      }
      entriesIn++;
      if (job.bottom && isObsolete(record, job.nowMs, job.tombstoneGraceMs)) {
        // An older version of the key may sit outside the inputs (a late write, read-path.ts):
        // the record then still shadows it, and stays.
        const version = record.version;
        if (version < job.obsoleteBelowVersion) {
          if (obsoleteVersionMax === undefined || version > obsoleteVersionMax) obsoleteVersionMax = version;
          entriesDropped++;
          continue;
        }
      }
      if (
        job.purge !== undefined &&
        purged(job.purge, record.buf, record.keyStart, record.keyEnd, record.version)
      ) {
        entriesDropped++;
        continue;
      }
      if (writer === undefined) {
        const fileNumber = job.outputFileNumbers[outputIndex++];
        assert(fileNumber !== undefined, 'Compaction ran out of reserved file numbers');
        writer = new TableWriter(filePath(job.dir, fileNumber, 'sst'), fileNumber, job.writer, vfs);
      }
      writer.addRecord(record);
      // The last reserved file number is never cut: its table takes the rest (module comment).
      if (writer.estimatedBytes >= job.tableBytesTarget && outputIndex < outputsMax) {
        tables.push(writer.finish());
        writer = undefined;
      }
    }
    if (writer !== undefined) {
      tables.push(writer.finish());
      writer = undefined;
    }
    return {
      tables,
      entriesIn,
      entriesDropped,
      ...(obsoleteVersionMax === undefined ? {} : { obsoleteVersionMax }),
    };
  } catch (err) {
    writer?.abort();
    for (const t of tables) vfs.removeSync(filePath(job.dir, t.fileNumber, 'sst'));
    throw err;
  } finally {
    for (const source of sources) source.close();
  }
}

export function runJob(job: Job, vfs: Vfs = nodeVfs): JobResult {
  return job.kind === 'flush' ? runFlush(job, vfs) : runCompaction(job, vfs);
}

/** Errors cross the thread boundary as plain data; corruption keeps its file and offset. */
/** A job's failure as it crosses from the worker: what the engine branches on survives the copy. */
export interface JobError {
  readonly message: string;
  readonly corruption?: { readonly file: string; readonly offset: number; readonly detail: string };
  /** The disk was full (ENOSPC, EDQUOT). */
  readonly noSpace?: boolean;
  /** The job was stopped (its `stop` flag). */
  readonly stopped?: boolean;
}

export function toJobError(err: unknown): JobError {
  if (err instanceof CorruptionError) {
    const detail = err.message.slice(err.message.indexOf(': ') + 2);
    return { message: err.message, corruption: { file: err.file, offset: err.offset, detail } };
  }
  const message = err instanceof Error ? err.message : String(err);
  if (isRingkvError(err, 'RINGKV_CLOSED')) return { message, stopped: true };
  return isNoSpace(err) ? { message, noSpace: true } : { message };
}

export function fromJobError(error: JobError): Error {
  if (error.corruption)
    return new CorruptionError(error.corruption.file, error.corruption.offset, error.corruption.detail);
  if (error.noSpace) return new RingkvError('RINGKV_NO_SPACE', error.message);
  if (error.stopped) return new RingkvError('RINGKV_CLOSED', error.message);
  return new Error(error.message);
}
