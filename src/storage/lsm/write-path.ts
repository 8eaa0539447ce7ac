/**
 * The write path: each write is appended to the write-ahead log (group
 * commit) and put in the live memtable. A full memtable is frozen and a
 * fresh one takes writes at once, on a log created ahead of time (the
 * spare), so that a rotation never waits on the disk. A frozen memtable
 * stays on the read path until its flush (background.ts) installs its table;
 * then its log is deleted.
 *
 * Too many frozen memtables stall writers until a flush finishes. While
 * flushes fail, such writers are refused with RINGKV_IO instead of being
 * held without end. A spare log that cannot be created stops writes for good
 * (RINGKV_IO): the engine could not rotate again.
 *
 * A full disk (ENOSPC, EDQUOT) is not for good: writes fail with
 * RINGKV_NO_SPACE until space returns. A log whose write failed for lack of
 * space takes no more appends (wal/writer.ts), so the next write moves to
 * the spare, freezing the memtable with the log; the failed write's entry
 * may thus be kept, as a failed write may always be. A spare that cannot be
 * created for lack of space refuses writes until a retry (after a backoff,
 * as background work) creates one.
 */
import { assert } from '../../util/assert.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import { BackgroundRetry } from '../background-retry.js';
import type { EngineStats } from '../engine.js';
import type { Entry } from '../entry/entry.js';
import { filePath } from '../files.js';
import { Memtable } from '../memtable/memtable.js';
import { isNoSpace, storageError } from '../vfs/index.js';
import { WalWriter } from '../wal/index.js';
import type { OpenState } from './open-state.js';
import { type LsmOptions, memtableRotateBytes, retryOptions, walOptions } from './options.js';
import type { VersionSet } from './version-set.js';

/** What a write that is not logged (an index's) resolves to: one promise for all of them. */
const RESOLVED: Promise<void> = Promise.resolve();

/** A memtable that takes no more writes, and the log that holds its writes until its table is installed. */
export interface Frozen {
  readonly memtable: Memtable;
  readonly wal: WalWriter;
}

interface Spare {
  readonly fileNumber: number;
  readonly wal: WalWriter;
}

export interface WritePathInit {
  readonly options: LsmOptions;
  readonly open: OpenState;
  readonly versions: VersionSet;
  /** The log recovery created, and its file number. */
  readonly wal: WalWriter;
  readonly walNumber: number;
  /** A memtable was frozen: its flush is due. */
  readonly onFrozen: () => void;
  /** The last flush's failure, while flushes keep failing. */
  readonly flushFailure: () => unknown;
}

export type WriteStats = Pick<
  EngineStats,
  'writes' | 'walSyncs' | 'walWrites' | 'memtableBytes' | 'immutableMemtables' | 'writeStalls'
>;

export class WritePath {
  readonly #options: LsmOptions;
  readonly #open: OpenState;
  readonly #versions: VersionSet;
  readonly #onFrozen: () => void;
  readonly #flushFailure: () => unknown;

  #memtable: Memtable;
  /** The size at which this memtable is frozen (memtableRotateBytes). */
  #rotateAtBytes: number;
  #wal: WalWriter;
  /** Frozen memtables, oldest first, waiting for (or in) flush. */
  #frozen: Frozen[] = [];
  #spare: Spare | undefined;
  #sparePending: Promise<void> | undefined;
  /** Cuts the pending spare's prefill short: when a rotation needs it, or at close. */
  #spareHurry: AbortController | undefined;
  /** Why writes stopped for good: a spare log could not be created. */
  #fatal: Error | undefined;
  /** A spare that could not be created for lack of space: writes are refused until a retry makes one. */
  readonly #spareRetry: BackgroundRetry;
  /** Writers waiting for a flush to make room. */
  #stalled: (() => void)[] = [];
  /** While a compaction installs: writes of a version at or below `versionMax` wait for `opened` (holdOldWrites). */
  #gate: { readonly versionMax: bigint; readonly opened: Promise<void> } | undefined;

  #writes = 0;
  #writeStalls = 0;
  /** Counts of the logs already deleted, so that stats() keeps counting them. */
  #retiredWalWrites = 0;
  #retiredWalSyncs = 0;
  /** Logs of flushed memtables being closed and deleted: stats() counts them until they are retired. */
  readonly #retiring = new Set<WalWriter>();

  constructor(init: WritePathInit) {
    this.#options = init.options;
    this.#open = init.open;
    this.#versions = init.versions;
    this.#onFrozen = init.onFrozen;
    this.#flushFailure = init.flushFailure;
    this.#wal = init.wal;
    this.#memtable = new Memtable(init.walNumber);
    this.#rotateAtBytes = memtableRotateBytes(init.options);
    this.#spareRetry = new BackgroundRetry('Creating a write-ahead log', retryOptions(init.options));
  }

  /** The memtable taking writes. */
  get memtable(): Memtable {
    return this.#memtable;
  }

  /** Frozen memtables, oldest first. */
  get frozen(): readonly Frozen[] {
    return this.#frozen;
  }

  /**
   * Resolves once the entry is durable per the sync mode (engine.ts). Not an
   * async function: a write that need not wait (the usual one) makes no
   * promise of its own beyond the log's, since each is garbage on the busiest path.
   */
  write(entry: Entry): Promise<void> {
    try {
      this.checkWritable();
      if (this.#mustWait(entry)) return this.#writeAfterWaiting(entry);
      return this.#put(entry) ?? RESOLVED;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #mustWait(entry: Entry): boolean {
    return (
      this.#frozen.length >= this.#options.immutableMemtablesMax ||
      (this.#gate !== undefined && entry.version <= this.#gate.versionMax)
    );
  }

  async #writeAfterWaiting(entry: Entry): Promise<void> {
    while (this.#frozen.length >= this.#options.immutableMemtablesMax) {
      this.#checkFlushing();
      this.#writeStalls++;
      await new Promise<void>((resolve) => this.#stalled.push(resolve));
      this.checkWritable();
    }
    while (this.#gate !== undefined && entry.version <= this.#gate.versionMax) {
      await this.#gate.opened;
      this.checkWritable();
    }
    return this.#put(entry);
  }

  /** Into the memtable and the log; the log's promise when writes are logged. */
  #put(entry: Entry): Promise<void> | undefined {
    if (this.#wal.failure !== undefined) this.#leaveFailedLog(this.#wal.failure);
    // No copy here: the memtable encodes the entry into its arena and the WAL
    // into its batch, so views into larger buffers are not kept.
    const memtable = this.#memtable;
    memtable.put(entry);
    const durable = this.#options.logWrites ? this.#wal.append(entry) : undefined;
    this.#writes++;
    if (memtable.bytes >= this.#rotateAtBytes) this.#rotate();
    return durable;
  }

  /**
   * Throws RINGKV_CLOSED once the engine is closed, RINGKV_IO once writes
   * stopped for good, RINGKV_NO_SPACE while no spare log can be created.
   */
  checkWritable(): void {
    this.#open.check();
    if (this.#fatal !== undefined) {
      throw new RingkvError('RINGKV_IO', `Engine stopped taking writes: ${this.#fatal.message}`, {
        cause: this.#fatal,
      });
    }
    if (this.#spareRetry.error !== undefined) {
      throw storageError(
        `Writes are refused until a new write-ahead log can be created in ${this.#options.dir}`,
        this.#spareRetry.cause,
      );
    }
  }

  /** Freezes the live memtable if it holds anything, waiting for a spare log if none is ready (flush()). */
  async freeze(): Promise<void> {
    if (this.#memtable.count === 0) return;
    while (this.#spare === undefined) {
      this.prepareSpare();
      this.#spareHurry?.abort();
      await this.#sparePending;
      this.checkWritable();
    }
    this.#rotate();
  }

  /** The oldest log the tree needs once the oldest frozen memtable's table is installed: the next one's. */
  logNumberAfterOldest(): number {
    return this.#frozen[1]?.memtable.walNumber ?? this.#memtable.walNumber;
  }

  /** Takes `frozen`, the oldest, off the read path: its table joins it in the same step (flush). */
  retireOldest(frozen: Frozen): void {
    assert(this.#frozen[0] === frozen, 'Flushes complete in order');
    this.#frozen.shift();
    this.#retiring.add(frozen.wal);
  }

  /**
   * Closes and deletes the log of a flushed memtable. Its table is installed,
   * so a log that cannot be closed or removed is only a leftover, which the
   * next open deletes: logged, not thrown.
   */
  async removeLog(frozen: Frozen): Promise<void> {
    const walFile = filePath(this.#options.dir, frozen.memtable.walNumber, 'log');
    // A log that failed cannot be closed cleanly, and its writers were told why: it only goes.
    const failedBefore = frozen.wal.failure !== undefined;
    try {
      await frozen.wal.close().catch((err: unknown) => {
        if (!failedBefore) throw err;
      });
      await this.#options.vfs.remove(walFile);
    } catch (err) {
      this.#options.log(`Cannot remove the flushed log ${walFile}: ${errorMessage(err)}`);
    } finally {
      // Counted after its close, whose fsync is one of its syncs.
      const stats = frozen.wal.stats();
      this.#retiredWalWrites += stats.writes;
      this.#retiredWalSyncs += stats.syncs;
      this.#retiring.delete(frozen.wal);
    }
  }

  /**
   * Holds writes of a version at or below `versionMax` out of the memtable
   * until the returned function is called: while a compaction that dropped
   * tombstones up to that version installs its tables (background.ts). Such
   * a write then lands after them, as if it had come a moment later. Newer
   * writes go on meanwhile.
   */
  holdOldWrites(versionMax: bigint): () => void {
    assert(this.#gate === undefined, 'One compaction installs at a time');
    let open!: () => void;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gate = { versionMax, opened };
    this.#gate = gate;
    return () => {
      if (this.#gate === gate) this.#gate = undefined;
      open();
    };
  }

  /** Wakes the writers waiting for room: a flush made some, failed, or the engine closes. */
  releaseStalled(): void {
    const stalled = this.#stalled;
    this.#stalled = [];
    for (const resolve of stalled) resolve();
  }

  /** Creates the next WAL ahead of time so that rotation never waits on the disk. */
  prepareSpare(): void {
    if (this.#spare !== undefined || this.#sparePending !== undefined || this.#open.closed) return;
    // After a full disk, the next attempt waits out its backoff.
    if (this.#spareRetry.waiting) return;
    const fileNumber = this.#versions.newFileNumber();
    const path = filePath(this.#options.dir, fileNumber, 'log');
    const hurry = new AbortController();
    this.#spareHurry = hurry;
    this.#sparePending = WalWriter.create(path, walOptions(this.#options, { signal: hurry.signal }))
      .then(
        (wal) => {
          // Made while the engine closes: closeLogs() closes it with the others.
          this.#spare = { fileNumber, wal };
          this.#spareRetry.succeeded();
        },
        async (err: unknown) => {
          // What it wrote of its file is of no use, and would be replayed at the next open.
          await this.#options.vfs.remove(path).catch(() => {});
          if (isNoSpace(err)) {
            if (!this.#open.closed) this.#spareRetry.failed(err, () => this.prepareSpare());
            return;
          }
          this.#fatal ??= new RingkvError('RINGKV_IO', `Cannot create a WAL file: ${errorMessage(err)}`, {
            cause: err,
          });
        },
      )
      .finally(() => {
        this.#sparePending = undefined;
        this.#spareHurry = undefined;
      });
  }

  stats(): WriteStats {
    // Every log not yet retired: the live one, the frozen memtables', those being deleted (counters never go down).
    let walWrites = this.#retiredWalWrites;
    let walSyncs = this.#retiredWalSyncs;
    for (const wal of [this.#wal, ...this.#frozen.map((f) => f.wal), ...this.#retiring]) {
      const stats = wal.stats();
      walWrites += stats.writes;
      walSyncs += stats.syncs;
    }
    return {
      writes: this.#writes,
      walSyncs,
      walWrites,
      memtableBytes: this.#memtable.bytes,
      immutableMemtables: this.#frozen.length,
      writeStalls: this.#writeStalls,
    };
  }

  /** At close, once the engine is marked closed: the spare being made is finished (and closed) at once. */
  async settleSpare(): Promise<void> {
    this.#spareRetry.cancel();
    this.#spareHurry?.abort();
    await this.#sparePending?.catch(() => {});
  }

  /**
   * Closes every log: the live one, the frozen memtables', the spare; each
   * gets its close record and an fsync. Rejects with RINGKV_IO naming the
   * first log that could not be closed so (its write or fsync failed, then
   * or before): the next open replays it as after a crash, and whoever
   * closes the engine must hear of it. With `closeRecord: false`
   * (crashForTest) the logs are left as a killed process leaves them, and
   * nothing is reported.
   */
  async closeLogs(options: { closeRecord: boolean }): Promise<void> {
    const wals = [this.#wal, ...this.#frozen.map((f) => f.wal)];
    if (this.#spare) wals.push(this.#spare.wal);
    const closing = await Promise.allSettled(wals.map((w) => w.close(options)));
    if (!options.closeRecord) return;
    const index = closing.findIndex((c) => c.status === 'rejected');
    if (index < 0) return;
    const cause = (closing[index] as PromiseRejectedResult).reason;
    throw new RingkvError(
      'RINGKV_IO',
      `Cannot close the write-ahead log ${wals[index]!.path} cleanly (the next open replays it as after a crash): ${errorMessage(cause)}`,
      { cause },
    );
  }

  /** A writer that would wait for a flush while flushes fail is refused rather than held without end. */
  #checkFlushing(): void {
    const failure = this.#flushFailure();
    if (failure === undefined) return;
    throw storageError(`Writes are held up: memtables cannot be flushed to ${this.#options.dir}`, failure);
  }

  /**
   * The live log failed: after a full disk, writes move to the spare (module
   * comment), or are refused until one is ready. After any other failure
   * nobody knows what the disk kept: the log's appends keep failing with it.
   */
  #leaveFailedLog(failure: RingkvError): void {
    if (!isNoSpace(failure)) return;
    if (this.#spare === undefined) {
      this.prepareSpare();
      this.#spareHurry?.abort();
      throw failure;
    }
    this.#options.log(`${failure.message}; writes go on in a new log`);
    this.#rotate();
  }

  /**
   * Freezes the memtable and switches to the spare WAL; a no-op until the
   * spare is ready. A spare still being prefilled is told to finish now, so
   * a fast writer does not grow the memtable far past its limit meanwhile.
   */
  #rotate(): void {
    const spare = this.#spare;
    if (spare === undefined) {
      this.prepareSpare();
      this.#spareHurry?.abort();
      return;
    }
    this.#spare = undefined;
    this.#memtable.freeze();
    this.#frozen.push({ memtable: this.#memtable, wal: this.#wal });
    this.#memtable = new Memtable(spare.fileNumber);
    this.#rotateAtBytes = memtableRotateBytes(this.#options);
    this.#wal = spare.wal;
    this.prepareSpare();
    this.#onFrozen();
  }
}
