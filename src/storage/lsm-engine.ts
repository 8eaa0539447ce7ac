/**
 * The LSM-tree engine: the Engine contract (engine.ts) over the parts in
 * lsm/, which it builds at open and takes apart at close.
 *
 *   lsm/recovery.ts      open: the MANIFEST's tables, the logs replayed, a new log
 *   lsm/write-path.ts    WAL append (group commit) and memtable; rotation onto a spare log
 *   lsm/read-path.ts     point reads (one walk over the levels) and scans
 *   lsm/background.ts    flushes and compactions in worker threads, retried when they fail
 *   lsm/version-set.ts   the current tables and the MANIFEST edits that change them
 *   lsm/cache-warmer.ts  the block cache refilled after open
 *
 * Close has one path: make no new work, let the work under way finish (a
 * compaction is stopped instead, its inputs kept: background.ts), close the
 * logs (each with its close record), the tables and the workers.
 * crashForTest() takes the same path minus what makes data durable: the
 * workers are stopped first, so a flush or compaction under way is cut
 * short, and the logs get no close record, as a killed process leaves them.
 */
import type { Engine, EngineStats, EntryCursor, ScanRange } from './engine.js';
import type { Entry } from './entry/entry.js';
import { Background } from './lsm/background.js';
import { CacheWarmer } from './lsm/cache-warmer.js';
import { OpenState } from './lsm/open-state.js';
import { type LsmOpenOptions, type LsmOptions, lsmOptions } from './lsm/options.js';
import { ReadPath } from './lsm/read-path.js';
import { type Recovered, recover, type WalRecovery } from './lsm/recovery.js';
import { VersionSet } from './lsm/version-set.js';
import { WritePath } from './lsm/write-path.js';
import type { PurgeFilter, PurgeOptions } from './purge.js';
import { type SnapshotInfo, writeSnapshot } from './snapshot.js';
import type { BlockCache } from './sstable/index.js';
import { isFsError, type Vfs } from './vfs/index.js';

/** Tries of a snapshot that compactions keep overtaking (each try is a few ms of links). */
const SNAPSHOT_ATTEMPTS = 5;

export type { LsmOpenOptions, LsmOptions } from './lsm/options.js';
export { type WalRecovery, walRecoveryAdvice } from './lsm/recovery.js';

export class LsmEngine implements Engine {
  readonly #open = new OpenState();
  readonly #cache: BlockCache;
  readonly #versions: VersionSet;
  readonly #writes: WritePath;
  readonly #reads: ReadPath;
  readonly #background: Background;
  readonly #warmer: CacheWarmer;
  readonly #recovery: readonly WalRecovery[];
  readonly #vfs: Vfs;
  readonly #dir: string;
  readonly #nowMs: () => number;

  static async open(openOptions: LsmOpenOptions): Promise<LsmEngine> {
    const options = lsmOptions(openOptions);
    return new LsmEngine(options, await recover(options));
  }

  private constructor(options: LsmOptions, recovered: Recovered) {
    const open = this.#open;
    this.#cache = recovered.cache;
    this.#recovery = recovered.logs;
    this.#vfs = options.vfs;
    this.#dir = options.dir;
    this.#nowMs = options.nowMs;
    this.#versions = new VersionSet({
      dir: options.dir,
      vfs: options.vfs,
      cache: recovered.cache,
      state: recovered.state,
      nextFileNumber: recovered.nextFileNumber,
      logNumber: recovered.walNumber,
    });
    // The write path starts flushes and hears of their failures; the background flushes its memtables.
    this.#writes = new WritePath({
      options,
      open,
      versions: this.#versions,
      wal: recovered.wal,
      walNumber: recovered.walNumber,
      onFrozen: () => this.#background.scheduleFlush(),
      flushFailure: () => this.#background.flushFailure,
    });
    this.#background = new Background({
      options,
      open,
      versions: this.#versions,
      writes: this.#writes,
      cache: recovered.cache,
      flushWorker: recovered.flushWorker,
      compactionWorker: recovered.compactionWorker,
    });
    this.#reads = new ReadPath(this.#writes, this.#versions);
    this.#warmer = new CacheWarmer(open);

    this.#writes.prepareSpare();
    this.#background.scheduleCompaction();
    // Newest data first: level 0, then each level down.
    const state = recovered.state;
    this.#warmer.warm(state.version.tables().map((t) => state.reader(t)));
  }

  write(entry: Entry): Promise<void> {
    return this.#writes.write(entry);
  }

  get(key: Buffer): Promise<Entry | undefined> {
    try {
      this.#open.check();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#reads.get(key);
  }

  scan(range: ScanRange): EntryCursor {
    this.#open.check();
    return this.#reads.scan(range);
  }

  async flush(): Promise<void> {
    this.#open.check();
    await this.#writes.freeze();
    await this.#background.flushFrozen();
  }

  /**
   * A snapshot of the tree in `outDir` (storage/snapshot.ts), holding every
   * write acknowledged before the call: the memtable is flushed first, then
   * the current version's tables are linked. A compaction that replaces a
   * table meanwhile makes it start over on the new version.
   */
  async snapshot(outDir: string): Promise<SnapshotInfo> {
    // Taken before the flush: the snapshot holds every write acknowledged before this time.
    const createdMs = this.#nowMs();
    await this.flush();
    for (let attempt = 1; ; attempt++) {
      const state = this.#versions.current.ref();
      try {
        return await writeSnapshot(this.#vfs, this.#dir, outDir, state.version, { createdMs });
      } catch (err) {
        if (!isFsError(err, 'ENOENT') || attempt >= SNAPSHOT_ATTEMPTS) throw err;
      } finally {
        state.release();
      }
    }
  }

  async compact(): Promise<void> {
    await this.flush();
    await this.#background.compactFully();
  }

  /** Flushes, then one full compaction that leaves out what the filter names (engine.ts). */
  async purge(filter: PurgeFilter, options: PurgeOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    await this.flush();
    await this.#background.compactFully(filter, options.signal);
  }

  maxVersion(): bigint {
    let max = 0n;
    for (const table of this.#versions.current.version.tables())
      if (table.maxVersion > max) max = table.maxVersion;
    for (const memtable of [this.#writes.memtable, ...this.#writes.frozen.map((f) => f.memtable)]) {
      if (memtable.maxVersion > max) max = memtable.maxVersion;
    }
    return max;
  }

  stats(): EngineStats {
    const cache = this.#cache.stats();
    const version = this.#versions.current.version;
    const writes = this.#writes.stats();
    return {
      writes: writes.writes,
      reads: this.#reads.reads,
      walSyncs: writes.walSyncs,
      walWrites: writes.walWrites,
      memtableBytes: writes.memtableBytes,
      immutableMemtables: writes.immutableMemtables,
      ...this.#background.stats(),
      tablesPerLevel: version.levels.map((tables) => tables.length),
      tableBytes: version.levels.reduce((sum, _, level) => sum + version.levelBytes(level), 0),
      blockCacheHits: cache.hits,
      blockCacheMisses: cache.misses,
      writeStalls: writes.writeStalls,
    };
  }

  /** The last background compaction failure, while compactions keep failing (for /v0/status). */
  get compactionError(): string | undefined {
    return this.#background.compactionError;
  }

  /** What open found in each write-ahead log it replayed, oldest first. */
  get recovery(): readonly WalRecovery[] {
    return this.#recovery;
  }

  /**
   * Rejects with RINGKV_IO naming the log if a write-ahead log could not be
   * closed with its close record and fsync; the rest is released all the same.
   */
  close(): Promise<void> {
    return this.#close({ crash: false });
  }

  /**
   * Test hook: stops as a killed process would, without flushing memtables
   * or finishing background jobs. Acknowledged writes are in the WAL; tables
   * being written are left half-done for the next open to clean up.
   */
  crashForTest(): Promise<void> {
    return this.#close({ crash: true });
  }

  /** The one close path (module comment). */
  async #close(how: { crash: boolean }): Promise<void> {
    if (!this.#open.close()) return;
    this.#background.stop();
    // Writers waiting for room wake to find the engine closed.
    this.#writes.releaseStalled();
    if (how.crash) await this.#background.terminate();
    await this.#background.settle();
    await this.#versions.settle();
    await this.#writes.settleSpare();
    await this.#warmer.settle();
    try {
      await this.#writes.closeLogs({ closeRecord: !how.crash });
    } finally {
      // A log that failed to close is reported once everything else is released.
      await this.#versions.close();
      await this.#background.terminate();
    }
  }
}
