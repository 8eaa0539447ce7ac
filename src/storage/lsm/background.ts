/**
 * Background work: flushes (a frozen memtable becomes a level-0 table) and
 * compactions (tables merged down a level), each in its own worker thread,
 * at most one of each at a time. A flush starts whenever a memtable is
 * frozen; a compaction whenever the picker (compaction/picker.ts) finds one
 * due, after a flush or compaction or a retry.
 *
 * Tombstones and values with an expiry become droppable as time passes, with
 * no write to start a compaction: when no level is over its size, the picker
 * is also asked for a table worth compacting for them alone (picker.ts, rule
 * 4), and asked again every droppableCheckMs. Those compactions are paced:
 * after one, the next waits as long as it took, so they take at most half of
 * the compaction worker's time; size-based compactions do not wait.
 *
 * A job that fails, on a damaged table or a full disk, changes nothing: it
 * is logged, counted and retried after a backoff (background-retry.ts), while
 * reads and writes go on. Writers that would wait for a failing flush are
 * refused by the write path meanwhile (write-path.ts).
 *
 * Dropping tombstones (and expired values). Versions, not levels, order the
 * versions of a key (read-path.ts): an OLDER version may arrive after the
 * delete (a hint, a read repair) and sit in a memtable, in level 0, or in any
 * table the compaction does not read. A dropped tombstone would let it come
 * back. So, as Cassandra does, a compaction drops an obsolete record (past
 * the grace period, at the bottom: jobs.ts, picker.ts) only if its version
 * is below every version held outside the compaction that could be its key's:
 *
 *   minOutside = the smallest minVersion of the tables not among the inputs
 *   whose key range meets the inputs' (every level), and of the live and
 *   frozen memtables (Memtable.minVersion; no key range kept for those).
 *
 * It is computed when the compaction is planned and given to the job
 * (obsoleteBelowVersion). Writes go on while the job runs: one may bring an
 * older version of a key whose tombstone the job drops. Until the outputs
 * are installed the tombstone is still read from the inputs; after, the
 * older version would win. Hence, when the job dropped anything obsolete,
 * whose largest version it reports (obsoleteVersionMax):
 *
 * 1. Before installing, minOutside is computed again over the tree and
 *    memtables as they are now. Everything written since planning is there
 *    (a memtable, or the level-0 table it was flushed to: only this one
 *    compaction removes tables). If it is not above obsoleteVersionMax, a
 *    late write may be shadowed by a dropped record: the outputs are
 *    deleted, nothing is installed, and the compaction is planned again,
 *    this time seeing that write.
 * 2. From that check until the outputs are installed (the MANIFEST write),
 *    writes of a version at or below obsoleteVersionMax are held out of the
 *    memtable (WritePath.holdOldWrites), then land after the install, like
 *    any write that arrives after a tombstone was collected. Past the grace
 *    period that is the tombstone grace contract: replicas must have
 *    exchanged a write within tombstoneGraceMs of its version.
 *
 * So no version that the engine held, or acknowledged, before the install
 * is ever shadowed by a record the install removes.
 *
 * Close does not wait for a compaction: a full one (compact(), a purge)
 * rewrites the whole store, longer than a node's shutdown may take. The job
 * under way is stopped at its next record (jobs.ts): it deletes its outputs,
 * which no manifest lists (open deletes any a crash leaves), and its inputs
 * stay as they were. A full compaction's caller is rejected with
 * RINGKV_CLOSED; a purge's caller may also abandon it (its AbortSignal),
 * nothing dropped. A flush under way is waited for: it writes one memtable.
 */
import { assert } from '../../util/assert.js';
import { RingkvError } from '../../util/errors.js';
import { BackgroundRetry } from '../background-retry.js';
import type { JobRunner } from '../compaction/background.js';
import type { FlushJob, JobResult } from '../compaction/jobs.js';
import {
  type Compaction,
  keyRange,
  minVersionOutside,
  pickCompaction,
  pickDroppableCompaction,
  pickFullCompaction,
} from '../compaction/picker.js';
import type { EngineStats } from '../engine.js';
import { filePath } from '../files.js';
import { ManifestInDoubtError } from '../manifest/manifest-file.js';
import type { TableInfo } from '../manifest/version.js';
import type { Memtable } from '../memtable/memtable.js';
import type { PurgeFilter } from '../purge.js';
import type { BlockCache } from '../sstable/index.js';
import { isNoSpace, storageError } from '../vfs/index.js';
import type { OpenState } from './open-state.js';
import { type LsmOptions, retryOptions, tableWriterOptions } from './options.js';
import type { VersionSet } from './version-set.js';
import type { WritePath } from './write-path.js';

export interface BackgroundInit {
  readonly options: LsmOptions;
  readonly open: OpenState;
  readonly versions: VersionSet;
  readonly writes: WritePath;
  readonly cache: BlockCache;
  readonly flushWorker: JobRunner;
  readonly compactionWorker: JobRunner;
}

/** Full compactions (compact(), purge()) that late writes keep setting aside before one fails. */
const FULL_COMPACTION_ATTEMPTS = 5;

export type BackgroundStats = Pick<
  EngineStats,
  'flushes' | 'compactions' | 'flushFailures' | 'compactionFailures' | 'backgroundError'
>;

export class Background {
  readonly #options: LsmOptions;
  readonly #open: OpenState;
  readonly #versions: VersionSet;
  readonly #writes: WritePath;
  readonly #cache: BlockCache;
  readonly #flushWorker: JobRunner;
  readonly #compactionWorker: JobRunner;
  /** The last flush's buffer, shared with the flush worker and reused by the next flush. */
  #flushBuffer: SharedArrayBuffer | undefined;
  #flushing: Promise<void> | undefined;
  #compacting: Promise<void> | undefined;
  /** Stops the compaction job under way (its `stop` flag), if any. */
  #stopJob: (() => void) | undefined;
  /** Failed flushes: while they keep failing, writers that must wait for a flush are refused. */
  readonly #flushRetry: BackgroundRetry;
  readonly #compactionRetry: BackgroundRetry;
  /** Per level, where its last compaction ended: the picker goes on from there (round robin). */
  readonly #pointers: (Buffer | undefined)[] = [];
  /** The next look for droppable entries that time alone may have made due (module comment). */
  #recheck: NodeJS.Timeout | undefined;
  /** performance.now() before which no compaction for droppable entries starts (module comment). */
  #droppableRestUntilMs = 0;
  #flushes = 0;
  #compactions = 0;

  constructor(init: BackgroundInit) {
    this.#options = init.options;
    this.#open = init.open;
    this.#versions = init.versions;
    this.#writes = init.writes;
    this.#cache = init.cache;
    this.#flushWorker = init.flushWorker;
    this.#compactionWorker = init.compactionWorker;
    this.#flushRetry = new BackgroundRetry('Flush', retryOptions(init.options));
    this.#compactionRetry = new BackgroundRetry('Compaction', retryOptions(init.options));
  }

  /** The last flush's failure, while flushes keep failing. */
  get flushFailure(): unknown {
    return this.#flushRetry.error === undefined ? undefined : this.#flushRetry.cause;
  }

  /** Why the last compaction failed, while compactions keep failing. */
  get compactionError(): string | undefined {
    return this.#compactionRetry.error;
  }

  /** Starts flushing the oldest frozen memtable unless a flush runs or waits out its backoff. */
  scheduleFlush(): void {
    if (this.#flushing !== undefined || this.#flushRetry.waiting) return;
    if (this.#writes.frozen.length === 0 || this.#open.closed) return;
    this.#flushing = this.#flushOldest()
      .then(
        () => this.#flushRetry.succeeded(),
        (err: unknown) => {
          if (this.#open.closed) return;
          this.#flushRetry.failed(err, () => this.scheduleFlush());
          // Stalled writers are refused now rather than held until a retry succeeds.
          this.#writes.releaseStalled();
        },
      )
      .finally(() => {
        this.#flushing = undefined;
        this.scheduleFlush();
      });
  }

  /** Starts the compaction the picker finds due, if any, unless one runs or waits out its backoff. */
  scheduleCompaction(): void {
    if (this.#compacting !== undefined || this.#compactionRetry.waiting || this.#open.closed) return;
    const compaction = this.#pick();
    if (compaction === undefined) return;
    const startedMs = performance.now();
    this.#compacting = this.#runCompaction(compaction)
      .then(
        () => this.#compactionRetry.succeeded(),
        (err: unknown) => {
          // A damaged or unreadable table, a full disk: keep serving, try again later, say why.
          if (!this.#open.closed) this.#compactionRetry.failed(err, () => this.scheduleCompaction());
        },
      )
      .finally(() => {
        this.#compacting = undefined;
        if (compaction.droppable) {
          const now = performance.now();
          this.#droppableRestUntilMs = now + (now - startedMs);
        }
        this.scheduleCompaction();
      });
  }

  /**
   * A compaction due by size; else, unless pacing rests, one for a table's
   * droppable entries. Either way, time alone may make some due later: a
   * look is booked (module comment).
   */
  #pick(): Compaction | undefined {
    const version = this.#versions.current.version;
    const due = pickCompaction(version, this.#options, this.#pointers);
    if (due !== undefined) return due;
    const restMs = this.#droppableRestUntilMs - performance.now();
    this.#lookAgainIn(restMs > 0 ? restMs : this.#options.droppableCheckMs);
    if (restMs > 0) return undefined;
    return pickDroppableCompaction(version, this.#options, {
      nowMs: this.#options.nowMs(),
      tombstoneGraceMs: this.#options.tombstoneGraceMs,
      memtableMinVersion: this.#memtableMinVersion(),
    });
  }

  #lookAgainIn(delayMs: number): void {
    clearTimeout(this.#recheck);
    this.#recheck = setTimeout(() => {
      this.#recheck = undefined;
      this.scheduleCompaction();
    }, delayMs);
    // A store at rest must not keep the process alive for it.
    this.#recheck.unref();
  }

  /** Flushes every frozen memtable (flush()); rejects if a flush fails. */
  async flushFrozen(): Promise<void> {
    while (this.#writes.frozen.length > 0) {
      // Asked for now: a retry waiting out its backoff runs at once.
      this.#flushRetry.cancel();
      this.scheduleFlush();
      await this.#flushing;
      this.#writes.checkWritable();
      const failure = this.flushFailure;
      if (failure !== undefined) throw storageError(`Flush failed in ${this.#options.dir}`, failure);
    }
  }

  /**
   * Merges every table into the bottom level once the compaction under way
   * is done (compact()); with a purge filter, drops the entries it names.
   * Rejects with RINGKV_CLOSED if the engine closes first, or with the
   * signal's reason once it aborts; nothing is changed then (module comment).
   */
  async compactFully(purge?: PurgeFilter, signal?: AbortSignal): Promise<void> {
    while (this.#compacting !== undefined) {
      signal?.throwIfAborted();
      await settledOrAborted(this.#compacting, signal);
    }
    signal?.throwIfAborted();
    this.#open.check();
    const run = this.#runFullCompaction(purge, signal);
    this.#compacting = run
      .catch(() => {})
      .finally(() => {
        this.#compacting = undefined;
        // A background retry that came due meanwhile found this one running: it runs now.
        this.scheduleCompaction();
      });
    // A failure reaches the caller, who asked for this compaction; background compactions go on.
    await run.catch((err: unknown) => {
      signal?.throwIfAborted();
      if (this.#open.closed) {
        const message = 'Engine closed before the full compaction finished: nothing changed';
        throw new RingkvError('RINGKV_CLOSED', message, { cause: err });
      }
      throw err instanceof RingkvError && !isNoSpace(err)
        ? err
        : storageError(`Compaction failed in ${this.#options.dir}`, err);
    });
  }

  stats(): BackgroundStats {
    const flushError = this.#flushRetry.error;
    const compactionError = this.#compactionRetry.error;
    return {
      flushes: this.#flushes,
      compactions: this.#compactions,
      flushFailures: this.#flushRetry.failures,
      compactionFailures: this.#compactionRetry.failures,
      ...(flushError === undefined && compactionError === undefined
        ? {}
        : { backgroundError: flushError ?? compactionError }),
    };
  }

  /**
   * At close: no retry runs from now on (nothing new starts either: the
   * engine is marked closed), and the compaction under way is stopped.
   */
  stop(): void {
    clearTimeout(this.#recheck);
    this.#recheck = undefined;
    this.#flushRetry.cancel();
    this.#compactionRetry.cancel();
    this.#stopJob?.();
  }

  /** Resolves once the flush and the compaction under way, if any, are done, failed or stopped. */
  async settle(): Promise<void> {
    await this.#flushing?.catch(() => {});
    await this.#compacting?.catch(() => {});
  }

  /** Stops the workers; a job still running is cut short and its caller rejected. */
  async terminate(): Promise<void> {
    await this.#flushWorker.terminate();
    await this.#compactionWorker.terminate();
  }

  async #flushOldest(): Promise<void> {
    const writes = this.#writes;
    const frozen = writes.frozen[0]!;
    const fileNumber = this.#versions.newFileNumber();
    const startedMs = performance.now();
    const payload = await encodeMemtable(frozen.memtable, this.#flushBuffer);
    this.#flushBuffer = payload.buffer as SharedArrayBuffer;
    // Shared, not transferred: the worker is done with it when it answers, and the next flush reuses it.
    const result = await this.#flushWorker.run(flushJob(this.#options, { fileNumber, entries: payload }));
    await this.#versions
      .apply(
        { removed: [], added: result.tables.map((table) => ({ level: 0, table })) },
        {
          // Its WAL is no longer needed once the table is live: the next one is.
          logNumber: writes.logNumberAfterOldest(),
          // The flushed memtable leaves the read path in the same step the table joins it.
          install: () => writes.retireOldest(frozen),
        },
      )
      .catch(async (err: unknown) => {
        await this.#removeUnlisted(result.tables, err);
        throw err;
      });
    this.#flushes++;
    this.#options.summary(
      `Flushed a memtable to level 0: ${describeTables(result.tables)} in ${Math.round(performance.now() - startedMs)} ms`,
    );
    writes.releaseStalled();
    this.scheduleCompaction();
    await writes.removeLog(frozen);
  }

  /** A full compaction, planned again while late writes set it aside (module comment). */
  async #runFullCompaction(purge: PurgeFilter | undefined, signal: AbortSignal | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.#open.check();
      signal?.throwIfAborted();
      const compaction = pickFullCompaction(this.#versions.current.version);
      if (compaction === undefined) return;
      if (await this.#runCompaction(compaction, purge, signal)) return;
      if (attempt >= FULL_COMPACTION_ATTEMPTS) {
        throw new RingkvError(
          'RINGKV_IO',
          `Compaction was set aside ${attempt} times by writes older than the tombstones or expired values it dropped`,
        );
      }
    }
  }

  /**
   * The smallest version held outside `inputs` for keys in their range:
   * tables of any level not among them, and the memtables (module comment).
   * Synchronous, so that it sees one state of the tree and the memtables.
   */
  #minVersionOutside(inputs: readonly TableInfo[]): bigint {
    return minVersionOutside(this.#versions.current.version, inputs, this.#memtableMinVersion());
  }

  /** The smallest version in the live and frozen memtables; undefined when they are empty. */
  #memtableMinVersion(): bigint | undefined {
    let min: bigint | undefined;
    for (const memtable of [this.#writes.memtable, ...this.#writes.frozen.map((f) => f.memtable)]) {
      const memtableMin = memtable.minVersion;
      if (memtableMin !== undefined && (min === undefined || memtableMin < min)) min = memtableMin;
    }
    return min;
  }

  /**
   * Runs one compaction and installs its result; rejects, with nothing
   * changed, if either fails. Resolves false, with nothing changed either,
   * when a write that came in meanwhile forbids installing it (module
   * comment): the caller plans it again. Close, or `signal`, stops the job.
   */
  async #runCompaction(compaction: Compaction, purge?: PurgeFilter, signal?: AbortSignal): Promise<boolean> {
    // Planned now, before any wait: the inputs are in the current tree, as is everything they are checked against.
    const state = this.#versions.current;
    const inputBytes = compaction.inputs.reduce((sum, t) => sum + t.fileBytes, 0);
    // Outputs are cut by their own stored size, and their codec may not be the inputs' (it may have changed
    // since, or the level may write raw): size the reservation as if stored raw. The job never runs out anyway
    // (its last table takes the rest); this keeps its tables near the target.
    const rawInputBytes = compaction.inputs.reduce(
      (sum, t) => sum + Math.max(t.fileBytes, state.readers.get(t.fileNumber)?.rawFileBytes ?? 0),
      0,
    );
    const obsoleteBelowVersion = this.#minVersionOutside(compaction.inputs);
    const startedMs = performance.now();
    const reserved = Math.ceil(rawInputBytes / this.#options.tableBytesTarget) * 2 + 2;
    const outputFileNumbers = this.#versions.newFileNumbers(reserved);
    // Shared with the worker, which reads it at every record.
    const stop = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    const stopJob = (): void => {
      Atomics.store(stop, 0, 1);
    };
    this.#stopJob = stopJob;
    signal?.addEventListener('abort', stopJob);
    let result: JobResult;
    try {
      // The job deletes its outputs itself when it fails or is stopped.
      result = await this.#compactionWorker.run({
        kind: 'compaction',
        dir: this.#options.dir,
        inputs: compaction.inputs.map((t) => t.fileNumber),
        outputFileNumbers,
        tableBytesTarget: this.#options.tableBytesTarget,
        bottom: compaction.bottom,
        obsoleteBelowVersion,
        nowMs: this.#options.nowMs(),
        tombstoneGraceMs: this.#options.tombstoneGraceMs,
        writer: tableWriterOptions(this.#options, compaction.outputLevel),
        ...(purge === undefined ? {} : { purge }),
        stop,
      });
    } finally {
      this.#stopJob = undefined;
      signal?.removeEventListener('abort', stopJob);
    }
    const removed = compaction.inputs.map((t) => t.fileNumber);
    const dropped = result.obsoleteVersionMax;
    let releaseWrites: (() => void) | undefined;
    if (dropped !== undefined) {
      if (this.#minVersionOutside(compaction.inputs) <= dropped) {
        // A write older than a record the job dropped came in meanwhile (module comment, 1).
        await this.#removeTables(result.tables);
        this.#options.summary(
          `Set aside a compaction of levels ${compaction.inputLevel}-${compaction.outputLevel}: a write older than a tombstone or expired value it dropped came in meanwhile; planning it again`,
        );
        return false;
      }
      // Until installed, no write may bring what the dropped records shadow (module comment, 2).
      releaseWrites = this.#writes.holdOldWrites(dropped);
    }
    try {
      await this.#versions
        .apply({
          removed,
          added: result.tables.map((table) => ({ level: compaction.outputLevel, table })),
        })
        .catch(async (err: unknown) => {
          await this.#removeUnlisted(result.tables, err);
          throw err;
        });
    } finally {
      releaseWrites?.();
    }
    // The round robin by size goes on where it was.
    if (!compaction.droppable) this.#pointers[compaction.inputLevel] = keyRange(compaction.picked)[1];
    this.#compactions++;
    const why =
      purge !== undefined ? ', purging' : compaction.droppable ? ', for tombstones and expired values' : '';
    this.#options.summary(
      `Compacted ${compaction.inputs.length} tables (${inputBytes} bytes) of levels ${compaction.inputLevel}-${compaction.outputLevel} into ${describeTables(result.tables)} at level ${compaction.outputLevel} in ${Math.round(performance.now() - startedMs)} ms${why}`,
    );
    for (const fileNumber of removed) {
      this.#cache.evictFile(fileNumber);
      await this.#options.vfs.remove(filePath(this.#options.dir, fileNumber, 'sst')).catch(() => {});
    }
    return true;
  }

  /**
   * After a failed MANIFEST edit: deletes the tables it was to add, unless
   * the MANIFEST on disk may name them (ManifestInDoubtError), in which case
   * they stay for the next open, which deletes them if the MANIFEST it reads
   * does not list them.
   */
  async #removeUnlisted(tables: readonly { fileNumber: number }[], err: unknown): Promise<void> {
    if (err instanceof ManifestInDoubtError) return;
    await this.#removeTables(tables);
  }

  /** Deletes tables a failed job wrote but no manifest lists. */
  async #removeTables(tables: readonly { fileNumber: number }[]): Promise<void> {
    for (const { fileNumber } of tables) {
      await this.#options.vfs.remove(filePath(this.#options.dir, fileNumber, 'sst')).catch(() => {});
    }
  }
}

/** Resolves once `promise` settles or `signal` aborts, whichever is first. */
function settledOrAborted(promise: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  const settled = promise.then(
    () => {},
    () => {},
  );
  if (signal === undefined) return settled;
  return new Promise((resolve) => {
    const done = (): void => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done);
    void settled.then(done);
  });
}

/** "2 tables, 1,024 entries, 65,536 bytes" */
function describeTables(tables: readonly { entryCount: number; fileBytes: number }[]): string {
  const entries = tables.reduce((sum, t) => sum + t.entryCount, 0);
  const bytes = tables.reduce((sum, t) => sum + t.fileBytes, 0);
  return `${tables.length} table${tables.length === 1 ? '' : 's'}, ${entries} entries, ${bytes} bytes`;
}

/** The flush job that writes `table.entries` (encodeMemtable()) as table `table.fileNumber`. */
export function flushJob(options: LsmOptions, table: { fileNumber: number; entries: Uint8Array }): FlushJob {
  const { fileNumber, entries } = table;
  return { kind: 'flush', dir: options.dir, fileNumber, entries, writer: tableWriterOptions(options, 0) };
}

/** Entries copied per event-loop turn when a memtable is handed to the flush worker. */
const ENCODE_ENTRIES_PER_TURN = 4096;
/** A new flush buffer has this much room over the memtable that needed it, so that the next one likely fits. */
const FLUSH_BUFFER_SLACK = 1.25;

/**
 * A frozen memtable's entries, encoded back to back in key order, for the
 * flush worker. They are already encoded in the memtable's arena, so this is
 * a copy; it yields to the event loop every few thousand entries so that
 * requests are not held up by a 4 MiB copy. The copy goes into `reuse` when
 * it is large enough: memory the process already touched. Fresh pages cost a
 * fault each, which on a virtual machine came to about 5 ms per MiB (80 times
 * the copy itself), and three nodes fed the same writes flush at the same
 * moment.
 */
export async function encodeMemtable(memtable: Memtable, reuse?: SharedArrayBuffer): Promise<Uint8Array> {
  const total = memtable.encodedBytes();
  const shared =
    reuse !== undefined && reuse.byteLength >= total
      ? reuse
      : new SharedArrayBuffer(Math.ceil(total * FLUSH_BUFFER_SLACK));
  const buf = Buffer.from(shared, 0, total);
  const cursor = { node: 0 };
  let offset = 0;
  for (;;) {
    offset = memtable.encodeInto(buf, offset, cursor, ENCODE_ENTRIES_PER_TURN);
    if (cursor.node === 0) break;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  assert(offset === total, 'Memtable changed while encoding');
  return buf;
}
