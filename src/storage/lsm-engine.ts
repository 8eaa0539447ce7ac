/**
 * The LSM-tree engine: wires the WAL, memtables, SSTables, manifest and
 * compaction into the Engine contract (engine.ts).
 *
 * Write path: WAL append (group commit) and memtable insert; a full memtable
 * is frozen and a fresh one, with a WAL made ready in advance, takes writes
 * at once; the frozen one is flushed to a level-0 table by a worker thread.
 * Too many frozen memtables stall writers until a flush finishes.
 *
 * Read path: the newest version among the memtables and the tables whose key
 * range and bloom filter admit the key. Versions are compared, not levels
 * trusted, because a replica may receive an old version late: a table is
 * skipped only when its largest version is older than the best found so far.
 *
 * Recovery (open): read the MANIFEST, open its tables, delete files it does
 * not list (left by a crash mid-flush or mid-compaction), replay the WAL
 * files it still needs, flush what they held to a table, and start a new
 * WAL. A log that close() ended with its close record is read whole; in a
 * log a crash left, a torn last record is cut off and reported (log option,
 * `recovery`). Other damage stops the open with the file, the offset and
 * what an operator can do (walRecoveryAdvice).
 *
 * Background work (flushes and compactions, in worker threads) that fails,
 * on a damaged table or a full disk, is logged, counted in stats() and
 * retried after a backoff (limits.backgroundRetryMinMs, doubling up to
 * backgroundRetryMaxMs), while reads and writes go on. Writers that would
 * have to wait for a failing flush (too many frozen memtables) are refused
 * with RINGKV_IO instead, until a retry succeeds.
 */
import { join } from 'node:path';
import { type BlockCompression, DEFAULT_BLOCK_COMPRESSION } from '../config/compression.js';
import { limits } from '../config/limits.js';
import { assert } from '../util/assert.js';
import { compareBytes } from '../util/bytes.js';
import { CorruptionError, errorMessage, RingkvError } from '../util/errors.js';
import { BackgroundRetry } from './background-retry.js';
import { type JobRunner, jobRunner } from './compaction/background.js';
import type { JobResult } from './compaction/jobs.js';
import { type Compaction, keyRange, pickCompaction, pickFullCompaction } from './compaction/picker.js';
import type { Engine, EngineStats, EntryCursor, ScanRange } from './engine.js';
import { type Entry, newer } from './entry/entry.js';
import { filePath, parseFileName } from './files.js';
import { mergeCursors } from './iterator/merging.js';
import { MANIFEST_NAME, readManifest, writeManifest } from './manifest/manifest-file.js';
import { type TableInfo, Version, type VersionEdit } from './manifest/version.js';
import { Memtable } from './memtable/memtable.js';
import { BLOCK_NOT_CACHED, BlockCache, bloomHash, TableReader } from './sstable/index.js';
import { TreeState } from './tree-state.js';
import { nodeVfs, type Vfs } from './vfs/index.js';
import { readWal, WalWriter } from './wal/index.js';

export interface LsmOptions {
  readonly dir: string;
  readonly sync: boolean;
  readonly memtableBytesMax: number;
  readonly immutableMemtablesMax: number;
  readonly blockBytes: number;
  readonly bloomBitsPerKey: number;
  /** The codec new tables' data blocks are written with; tables already written keep theirs. */
  readonly compression: BlockCompression;
  readonly blockCacheBytes: number;
  readonly l0CompactionTrigger: number;
  readonly levelBytesBase: number;
  readonly levelBytesMultiplier: number;
  readonly levelCount: number;
  readonly tableBytesTarget: number;
  readonly tombstoneGraceMs: number;
  /** Wall clock for tombstone and expiry ageing in compaction. */
  readonly nowMs: () => number;
  /** First delay before a failed flush or compaction is tried again; it doubles per failure in a row. */
  readonly backgroundRetryMinMs: number;
  readonly backgroundRetryMaxMs: number;
  /**
   * Where the engine reports what an operator should know, one line each
   * without a trailing newline: a torn log tail cut at open, a failed flush or
   * compaction. Default: process.emitWarning.
   */
  readonly log: (line: string) => void;
  /**
   * The file system (default: the real one). On any other (in-memory,
   * fault-injecting), flushes and compactions run in-process rather than in
   * worker threads (compaction/background.ts).
   */
  readonly vfs: Vfs;
}

export type LsmOpenOptions = Pick<LsmOptions, 'dir' | 'sync'> & Partial<LsmOptions>;

export function lsmOptions(options: LsmOpenOptions): LsmOptions {
  return Object.freeze({
    memtableBytesMax: limits.memtableBytesMax,
    immutableMemtablesMax: limits.immutableMemtablesMax,
    blockBytes: limits.blockBytes,
    bloomBitsPerKey: limits.bloomBitsPerKey,
    compression: DEFAULT_BLOCK_COMPRESSION,
    blockCacheBytes: limits.blockCacheBytes,
    l0CompactionTrigger: limits.l0CompactionTrigger,
    levelBytesBase: limits.levelBytesBase,
    levelBytesMultiplier: limits.levelBytesMultiplier,
    levelCount: limits.levelCount,
    tableBytesTarget: limits.tableBytesTarget,
    tombstoneGraceMs: limits.tombstoneGraceMs,
    nowMs: Date.now,
    backgroundRetryMinMs: limits.backgroundRetryMinMs,
    backgroundRetryMaxMs: limits.backgroundRetryMaxMs,
    log: warn,
    vfs: nodeVfs,
    ...options,
  });
}

function warn(line: string): void {
  process.emitWarning(`ringkv: ${line}`);
}

/** What open found in one write-ahead log it replayed. */
export interface WalRecovery {
  readonly file: string;
  /** Entries replayed from it. */
  readonly entries: number;
  /** It ended with its close record: the engine that wrote it closed it, and nothing was cut. */
  readonly closed: boolean;
  /** A torn last record cut off (1) or none (0): only in a log a crash left. */
  readonly cutRecords: number;
  /** Bytes of that record (its length, or as far as it reached the disk when its header is torn too). */
  readonly cutBytes: number;
  /** Where the cut was made: the end of the intact records. */
  readonly cutOffset: number;
}

/**
 * The second half of the message that refuses to open on a damaged log:
 * what to do. The writes in a log are also on the other replicas of their
 * keys, and the tables hold everything flushed before it, so the node may
 * start without the log (or its damaged end) and be repaired by its peers.
 */
export function walRecoveryAdvice(file: string, offset: number): string {
  return (
    `to recover, truncate ${file} to ${offset} bytes (the writes before the damage are kept) ` +
    `or move it out of the data directory, and restart: the node then lacks the writes from that point, ` +
    `and anti-entropy and read repair copy them back from the other replicas (a one-node cluster has no other copy)`
  );
}

interface Frozen {
  readonly memtable: Memtable;
  readonly wal: WalWriter;
}

interface Spare {
  readonly fileNumber: number;
  readonly wal: WalWriter;
}

export class LsmEngine implements Engine {
  readonly #options: LsmOptions;
  readonly #cache: BlockCache;
  readonly #flushWorker: JobRunner;
  /** The last flush's buffer, shared with the flush worker and reused by the next flush. */
  #flushBuffer: SharedArrayBuffer | undefined;
  readonly #compactionWorker: JobRunner;

  #memtable: Memtable;
  #wal: WalWriter;
  /** Frozen memtables, oldest first, waiting for (or in) flush. */
  #frozen: Frozen[] = [];
  #spare: Spare | undefined;
  #sparePending: Promise<void> | undefined;
  /** Cuts the pending spare's prefill short: when a rotation needs it, or at close. */
  #spareHurry: AbortController | undefined;
  #state: TreeState;
  #nextFileNumber: number;
  #logNumber: number;
  #pointers: (Buffer | undefined)[] = [];

  #editChain: Promise<void> = Promise.resolve();
  /** Tables whose blocks are loaded into the cache in the background, one at a time. */
  #warmQueue: TableReader[] = [];
  #warming: Promise<void> | undefined;
  #flushing: Promise<void> | undefined;
  #compacting: Promise<void> | undefined;
  #flushWaiters: (() => void)[] = [];
  #fatal: Error | undefined;
  /** Failed flushes: while they keep failing, writers that must wait for a flush are refused. */
  readonly #flushRetry: BackgroundRetry;
  readonly #compactionRetry: BackgroundRetry;
  #recovery: readonly WalRecovery[] = [];
  #closed = false;

  #writes = 0;
  #reads = 0;
  #flushes = 0;
  #compactions = 0;
  #writeStalls = 0;
  #retiredWalWrites = 0;
  #retiredWalSyncs = 0;

  private constructor(init: {
    options: LsmOptions;
    cache: BlockCache;
    state: TreeState;
    nextFileNumber: number;
    logNumber: number;
    wal: WalWriter;
    walNumber: number;
    flushWorker: JobRunner;
    compactionWorker: JobRunner;
  }) {
    this.#options = init.options;
    const retry = {
      minMs: init.options.backgroundRetryMinMs,
      maxMs: init.options.backgroundRetryMaxMs,
      log: init.options.log,
    };
    this.#flushRetry = new BackgroundRetry('Flush', retry);
    this.#compactionRetry = new BackgroundRetry('Compaction', retry);
    this.#cache = init.cache;
    this.#state = init.state;
    this.#nextFileNumber = init.nextFileNumber;
    this.#logNumber = init.logNumber;
    this.#wal = init.wal;
    this.#memtable = new Memtable(init.walNumber);
    this.#flushWorker = init.flushWorker;
    this.#compactionWorker = init.compactionWorker;
  }

  static async open(openOptions: LsmOpenOptions): Promise<LsmEngine> {
    const options = lsmOptions(openOptions);
    const { dir, vfs } = options;
    await vfs.mkdir(dir);
    const manifest = await readManifest(dir, options.levelCount, vfs);
    let version = manifest?.version ?? Version.empty(options.levelCount);
    const logNumber = manifest?.logNumber ?? 0;

    // Everything the directory holds, to find orphans and the highest number in use.
    const names = await vfs.list(dir);
    const live = new Set(version.tables().map((t) => t.fileNumber));
    const logs: number[] = [];
    let highest = manifest?.nextFileNumber ?? 1;
    for (const name of names) {
      const parsed = parseFileName(name);
      if (parsed === undefined) continue;
      highest = Math.max(highest, parsed.fileNumber + 1);
      if (parsed.kind === 'sst' && !live.has(parsed.fileNumber)) await vfs.remove(join(dir, name));
      if (parsed.kind === 'log') logs.push(parsed.fileNumber);
    }
    if (names.includes(`${MANIFEST_NAME}.tmp`)) await vfs.remove(join(dir, `${MANIFEST_NAME}.tmp`));
    for (const table of version.tables()) {
      if (!names.includes(filePath('', table.fileNumber, 'sst'))) {
        throw new CorruptionError(
          filePath(dir, table.fileNumber, 'sst'),
          0,
          'table listed in the MANIFEST is missing',
        );
      }
    }

    const cache = new BlockCache(options.blockCacheBytes);
    const flushWorker = jobRunner('ringkv-flush', vfs);
    const compactionWorker = jobRunner('ringkv-compaction', vfs);
    const readers = new Map<number, TableReader>();
    try {
      await Promise.all(
        version.tables().map(async (t) => {
          readers.set(
            t.fileNumber,
            await TableReader.open(filePath(dir, t.fileNumber, 'sst'), t.fileNumber, cache, vfs),
          );
        }),
      );

      // Replay the logs that may hold writes not yet in a table.
      const recovered = new Memtable(0);
      const recovery: WalRecovery[] = [];
      logs.sort((a, b) => a - b);
      for (const number of logs) {
        if (number < logNumber) continue;
        const file = filePath(dir, number, 'log');
        const read = await readWal(file, { repair: true, vfs }).catch((err: unknown) => {
          if (!(err instanceof CorruptionError)) throw err;
          const detail = err.message.slice(`Corruption in ${err.file} at offset ${err.offset}: `.length);
          throw new CorruptionError(
            err.file,
            err.offset,
            `${detail}; ${walRecoveryAdvice(err.file, err.offset)}`,
          );
        });
        for (const entry of read.entries) recovered.put(entry);
        const { closed, cutRecords, cutBytes } = read;
        recovery.push({
          file,
          entries: read.entries.length,
          closed,
          cutRecords,
          cutBytes,
          cutOffset: read.validBytes,
        });
      }
      let nextFileNumber = highest;
      if (recovered.count > 0) {
        const fileNumber = nextFileNumber++;
        recovered.freeze();
        const payload = await encodeMemtable(recovered);
        const result = await flushWorker.run({
          kind: 'flush',
          dir,
          fileNumber,
          entries: payload,
          writer: writerOptions(options),
        });
        const added = result.tables.map((table) => ({ level: 0, table }));
        version = version.apply({ removed: [], added });
        for (const { table } of added) {
          readers.set(
            table.fileNumber,
            await TableReader.open(filePath(dir, table.fileNumber, 'sst'), table.fileNumber, cache, vfs),
          );
        }
      }

      const walNumber = nextFileNumber++;
      // No live log competes for the disk yet: prefill without rests.
      const wal = await WalWriter.create(filePath(dir, walNumber, 'log'), walOptions(options, { restMs: 0 }));
      await writeManifest(dir, { version, nextFileNumber, logNumber: walNumber }, vfs);
      for (const number of logs) await vfs.remove(filePath(dir, number, 'log'));
      if (logs.length > 0) await vfs.syncDir(dir);

      const engine = new LsmEngine({
        options,
        cache,
        state: new TreeState(version, readers),
        nextFileNumber,
        logNumber: walNumber,
        wal,
        walNumber,
        flushWorker,
        compactionWorker,
      });
      engine.#recovery = recovery;
      // Logged once the open succeeded: a refused open prints only why.
      for (const log of recovery) {
        if (log.cutRecords === 0) continue;
        options.log(
          `Recovery: ${log.file} was not closed cleanly (a crash or kill): cut its torn last record, ${log.cutBytes} bytes at offset ${log.cutOffset}; the ${log.entries} writes before it were replayed`,
        );
      }
      engine.#prepareSpare();
      engine.#scheduleCompaction();
      // Newest data first: level 0, then each level down.
      engine.#warm(version.tables().map((t) => readers.get(t.fileNumber)!));
      return engine;
    } catch (err) {
      await Promise.all([...readers.values()].map((r) => r.close()));
      await flushWorker.terminate();
      await compactionWorker.terminate();
      throw err;
    }
  }

  async write(entry: Entry): Promise<void> {
    this.#checkWritable();
    while (this.#frozen.length >= this.#options.immutableMemtablesMax) {
      this.#checkFlushing();
      this.#writeStalls++;
      await new Promise<void>((resolve) => this.#flushWaiters.push(resolve));
      this.#checkWritable();
    }
    // No copy here: the memtable encodes the entry into its arena and the WAL
    // into its batch, so views into larger buffers are not kept.
    const memtable = this.#memtable;
    memtable.put(entry);
    const durable = this.#wal.append(entry);
    this.#writes++;
    if (memtable.bytes >= this.#options.memtableBytesMax) this.#rotate();
    return durable;
  }

  /**
   * Point read. Tables are probed newest level first; each probe whose block
   * is cached runs without a wait, so a warm read resolves with no promise per
   * table. At the first uncached block the rest continues in #getRest().
   */
  get(key: Buffer): Promise<Entry | undefined> {
    try {
      this.#checkOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#reads++;
    let best = this.#memtable.get(key);
    for (let i = this.#frozen.length - 1; i >= 0; i--) best = newer(best, this.#frozen[i]!.memtable.get(key));
    const state = this.#state;
    const levels = state.version.levels;
    const hash = bloomHash(key);
    for (let level = 0; level < levels.length; level++) {
      const tables = levels[level]!;
      if (tables.length === 0) continue;
      // Level 0 tables overlap: probe each. Deeper levels: the one table whose range holds the key.
      const first = level === 0 ? 0 : -1;
      for (let i = first; i < (level === 0 ? tables.length : 0); i++) {
        const table = level === 0 ? tables[i]! : state.tableFor(level, key);
        if (table === undefined || !this.#mayHold(table, key, best)) continue;
        const reader = state.reader(table);
        if (!reader.mayContainHash(hash)) continue;
        const found = reader.getCached(key);
        if (found === BLOCK_NOT_CACHED) return this.#getRest(key, hash, best, state.ref(), level, i);
        best = newer(best, found);
      }
    }
    return Promise.resolve(best);
  }

  /** Whether `table` can hold a version of `key` newer than `best`. */
  #mayHold(table: TableInfo, key: Buffer, best: Entry | undefined): boolean {
    if (best !== undefined && table.maxVersion < best.version) return false;
    return compareBytes(key, table.smallestKey) >= 0 && compareBytes(key, table.largestKey) <= 0;
  }

  /** get() from table (level, index) on, reading blocks as needed; releases `state`. */
  async #getRest(
    key: Buffer,
    hash: number,
    found: Entry | undefined,
    state: TreeState,
    fromLevel: number,
    fromIndex: number,
  ): Promise<Entry | undefined> {
    let best = found;
    try {
      const levels = state.version.levels;
      for (let level = fromLevel; level < levels.length; level++) {
        const tables = levels[level]!;
        if (tables.length === 0) continue;
        const candidates =
          level === 0 ? tables.slice(level === fromLevel ? fromIndex : 0) : [state.tableFor(level, key)];
        for (const table of candidates) {
          if (table === undefined || !this.#mayHold(table, key, best)) continue;
          const reader = state.reader(table);
          if (reader.mayContainHash(hash)) best = newer(best, await reader.get(key));
        }
      }
      return best;
    } finally {
      state.release();
    }
  }

  scan(range: ScanRange): EntryCursor {
    this.#checkOpen();
    const { start, end } = range;
    const batchMax = limits.scanBatchEntriesMax;
    const batchBytesMax = limits.scanBatchBytesMax;
    const cursors: EntryCursor[] = [this.#memtable.cursor(start, end, batchMax, batchBytesMax)];
    for (let i = this.#frozen.length - 1; i >= 0; i--) {
      cursors.push(this.#frozen[i]!.memtable.cursor(start, end, batchMax, batchBytesMax));
    }
    const state = this.#state.ref();
    const inRange = (t: TableInfo) =>
      compareBytes(t.largestKey, start) >= 0 && (end === undefined || compareBytes(t.smallestKey, end) < 0);
    for (const table of state.version.levels[0]!) {
      if (inRange(table)) cursors.push(state.reader(table).cursor(start, end));
    }
    for (let level = 1; level < state.version.levels.length; level++) {
      const tables = state.version.levels[level]!.filter(inRange);
      if (tables.length > 0)
        cursors.push(concatCursor(tables.map((t) => () => state.reader(t).cursor(start, end))));
    }
    return mergeCursors(cursors, { batchMax, batchBytesMax, onClose: () => state.release() });
  }

  async flush(): Promise<void> {
    this.#checkOpen();
    if (this.#memtable.count > 0) {
      while (this.#spare === undefined) {
        this.#prepareSpare();
        this.#spareHurry?.abort();
        await this.#sparePending;
        this.#checkWritable();
      }
      this.#rotate();
    }
    while (this.#frozen.length > 0) {
      // Asked for now: a retry waiting out its backoff runs at once.
      this.#flushRetry.cancel();
      this.#scheduleFlush();
      await this.#flushing;
      this.#checkWritable();
      const flushError = this.#flushRetry.error;
      if (flushError !== undefined) throw new RingkvError('RINGKV_IO', `Flush failed: ${flushError}`);
    }
  }

  async compact(): Promise<void> {
    await this.flush();
    while (this.#compacting !== undefined) await this.#compacting.catch(() => {});
    this.#checkOpen();
    const compaction = pickFullCompaction(this.#state.version);
    if (compaction === undefined) return;
    const run = this.#runCompaction(compaction);
    this.#compacting = run
      .catch(() => {})
      .finally(() => {
        this.#compacting = undefined;
        // A background retry that came due meanwhile found this one running: it runs now.
        this.#scheduleCompaction();
      });
    // A failure reaches the caller, who asked for this compaction; background compactions go on.
    await run.catch((err: unknown) => {
      if (this.#closed) return;
      throw err instanceof RingkvError
        ? err
        : new RingkvError('RINGKV_IO', `Compaction failed: ${errorMessage(err)}`, { cause: err });
    });
  }

  stats(): EngineStats {
    const wal = this.#wal.stats();
    const cache = this.#cache.stats();
    return {
      writes: this.#writes,
      reads: this.#reads,
      walSyncs: this.#retiredWalSyncs + wal.syncs,
      walWrites: this.#retiredWalWrites + wal.writes,
      memtableBytes: this.#memtable.bytes,
      immutableMemtables: this.#frozen.length,
      flushes: this.#flushes,
      compactions: this.#compactions,
      flushFailures: this.#flushRetry.failures,
      compactionFailures: this.#compactionRetry.failures,
      ...(this.#flushRetry.error === undefined && this.#compactionRetry.error === undefined
        ? {}
        : { backgroundError: this.#flushRetry.error ?? this.#compactionRetry.error }),
      tablesPerLevel: this.#state.version.levels.map((tables) => tables.length),
      tableBytes: this.#state.version.levels.reduce(
        (sum, _, level) => sum + this.#state.version.levelBytes(level),
        0,
      ),
      blockCacheHits: cache.hits,
      blockCacheMisses: cache.misses,
      writeStalls: this.#writeStalls,
    };
  }

  /** The last background compaction failure, while compactions keep failing (for /v0/status). */
  get compactionError(): string | undefined {
    return this.#compactionRetry.error;
  }

  /** What open found in each write-ahead log it replayed, oldest first. */
  get recovery(): readonly WalRecovery[] {
    return this.#recovery;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelRetries();
    this.#releaseWaiters();
    await this.#flushing?.catch(() => {});
    await this.#compacting?.catch(() => {});
    await this.#editChain.catch(() => {});
    this.#spareHurry?.abort();
    await this.#sparePending?.catch(() => {});
    await this.#warming;
    await this.#shutdown({ closeRecord: true });
  }

  /**
   * Test hook: stops as a killed process would, without flushing memtables
   * or finishing background jobs. Acknowledged writes are in the WAL; tables
   * being written are left half-done for the next open to clean up.
   */
  async crashForTest(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelRetries();
    this.#releaseWaiters();
    await this.#flushWorker.terminate();
    await this.#compactionWorker.terminate();
    await this.#flushing?.catch(() => {});
    await this.#compacting?.catch(() => {});
    await this.#editChain.catch(() => {});
    this.#spareHurry?.abort();
    await this.#sparePending?.catch(() => {});
    await this.#warming;
    await this.#shutdown({ closeRecord: false });
  }

  /**
   * Loads tables' blocks into the block cache in the background while it has
   * room, after open. LevelDB reads through the OS page cache, which outlives
   * a restart; ringkv's own cache does not, so it refills itself from the
   * files (usually still in the page cache) in large sequential reads rather
   * than one pread per block on the read path. Tables written later are not
   * warmed: that work would land on the event loop in the middle of writes.
   */
  #warm(readers: readonly TableReader[]): void {
    this.#warmQueue.push(...readers);
    if (this.#warming !== undefined) return;
    this.#warming = (async () => {
      for (let reader = this.#warmQueue.shift(); reader !== undefined; reader = this.#warmQueue.shift()) {
        if (this.#closed) break;
        // A table closed meanwhile, or a damaged block: nothing to warm; reads report damage.
        await reader.warm(limits.cacheWarmChunkBytes).catch(() => true);
      }
      this.#warmQueue.length = 0;
    })().finally(() => {
      this.#warming = undefined;
    });
  }

  /** `closeRecord: false`: the logs are left as a killed process leaves them (crashForTest). */
  async #shutdown(options: { closeRecord: boolean }): Promise<void> {
    const wals = [this.#wal, ...this.#frozen.map((f) => f.wal)];
    if (this.#spare) wals.push(this.#spare.wal);
    await Promise.all(wals.map((w) => w.close(options).catch(() => {})));
    this.#state.release();
    await Promise.all([...this.#state.readers.values()].map((r) => r.close()));
    await this.#flushWorker.terminate();
    await this.#compactionWorker.terminate();
  }

  #checkOpen(): void {
    if (this.#closed) throw new RingkvError('RINGKV_CLOSED', 'Engine is closed');
  }

  #checkWritable(): void {
    this.#checkOpen();
    if (this.#fatal !== undefined) {
      throw new RingkvError('RINGKV_IO', `Engine stopped taking writes: ${this.#fatal.message}`, {
        cause: this.#fatal,
      });
    }
  }

  /** A writer that would wait for a flush while flushes fail is refused rather than held without end. */
  #checkFlushing(): void {
    const flushError = this.#flushRetry.error;
    if (flushError === undefined) return;
    throw new RingkvError('RINGKV_IO', `Writes are held up: memtables cannot be flushed: ${flushError}`);
  }

  #cancelRetries(): void {
    this.#flushRetry.cancel();
    this.#compactionRetry.cancel();
  }

  #releaseWaiters(): void {
    const waiters = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Creates the next WAL ahead of time so that rotation never waits on the disk. */
  #prepareSpare(): void {
    if (this.#spare !== undefined || this.#sparePending !== undefined || this.#closed) return;
    const fileNumber = this.#nextFileNumber++;
    const hurry = new AbortController();
    this.#spareHurry = hurry;
    this.#sparePending = WalWriter.create(
      filePath(this.#options.dir, fileNumber, 'log'),
      walOptions(this.#options, { signal: hurry.signal }),
    )
      .then(
        (wal) => {
          if (this.#closed) return wal.close();
          this.#spare = { fileNumber, wal };
        },
        (err: unknown) => {
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

  /**
   * Freezes the memtable and switches to the spare WAL; a no-op until the
   * spare is ready. A spare still being prefilled is told to finish now, so
   * a fast writer does not grow the memtable far past its limit meanwhile.
   */
  #rotate(): void {
    const spare = this.#spare;
    if (spare === undefined) {
      this.#prepareSpare();
      this.#spareHurry?.abort();
      return;
    }
    this.#spare = undefined;
    this.#memtable.freeze();
    this.#frozen.push({ memtable: this.#memtable, wal: this.#wal });
    this.#memtable = new Memtable(spare.fileNumber);
    this.#wal = spare.wal;
    this.#prepareSpare();
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushing !== undefined || this.#flushRetry.waiting) return;
    if (this.#frozen.length === 0 || this.#closed) return;
    this.#flushing = this.#flushOldest()
      .then(
        () => this.#flushRetry.succeeded(),
        (err: unknown) => {
          if (this.#closed) return;
          this.#flushRetry.failed(err, () => this.#scheduleFlush());
          // Stalled writers are refused now rather than held until a retry succeeds.
          this.#releaseWaiters();
        },
      )
      .finally(() => {
        this.#flushing = undefined;
        this.#scheduleFlush();
      });
  }

  async #flushOldest(): Promise<void> {
    const frozen = this.#frozen[0]!;
    const fileNumber = this.#nextFileNumber++;
    const payload = await encodeMemtable(frozen.memtable, this.#flushBuffer);
    this.#flushBuffer = payload.buffer as SharedArrayBuffer;
    // Shared, not transferred: the worker is done with it when it answers, and the next flush reuses it.
    const result = await this.#flushWorker.run({
      kind: 'flush',
      dir: this.#options.dir,
      fileNumber,
      entries: payload,
      writer: writerOptions(this.#options),
    });
    // Its WAL is no longer needed once the table is live: the next one is.
    const logNumber = this.#frozen[1]?.memtable.walNumber ?? this.#memtable.walNumber;
    await this.#edit(
      { removed: [], added: result.tables.map((table) => ({ level: 0, table })) },
      logNumber,
      () => {
        // The flushed memtable leaves the read path in the same step the table joins it.
        assert(this.#frozen[0] === frozen, 'Flushes complete in order');
        this.#frozen.shift();
      },
    ).catch(async (err: unknown) => {
      await this.#removeTables(result.tables);
      throw err;
    });
    this.#flushes++;
    this.#releaseWaiters();
    this.#scheduleCompaction();
    // The flush is done: a log that cannot be closed or removed now is only a leftover, which the next open deletes.
    const stats = frozen.wal.stats();
    this.#retiredWalWrites += stats.writes;
    this.#retiredWalSyncs += stats.syncs;
    const walFile = filePath(this.#options.dir, frozen.memtable.walNumber, 'log');
    try {
      await frozen.wal.close();
      await this.#options.vfs.remove(walFile);
    } catch (err) {
      this.#options.log(`Cannot remove the flushed log ${walFile}: ${errorMessage(err)}`);
    }
  }

  /** Deletes tables a failed job wrote but no manifest lists. */
  async #removeTables(tables: readonly { fileNumber: number }[]): Promise<void> {
    for (const { fileNumber } of tables) {
      await this.#options.vfs.remove(filePath(this.#options.dir, fileNumber, 'sst')).catch(() => {});
    }
  }

  #scheduleCompaction(): void {
    if (this.#compacting !== undefined || this.#compactionRetry.waiting || this.#closed) return;
    const compaction = pickCompaction(this.#state.version, this.#options, this.#pointers);
    if (compaction === undefined) return;
    this.#compacting = this.#runCompaction(compaction)
      .then(
        () => this.#compactionRetry.succeeded(),
        (err: unknown) => {
          // A damaged or unreadable table, a full disk: keep serving, try again later, say why.
          if (!this.#closed) this.#compactionRetry.failed(err, () => this.#scheduleCompaction());
        },
      )
      .finally(() => {
        this.#compacting = undefined;
        this.#scheduleCompaction();
      });
  }

  /** Runs one compaction and installs its result; rejects, with nothing changed, if either fails. */
  async #runCompaction(compaction: Compaction): Promise<void> {
    const inputBytes = compaction.inputs.reduce((sum, t) => sum + t.fileBytes, 0);
    const reserved = Math.ceil(inputBytes / this.#options.tableBytesTarget) * 2 + 2;
    const outputFileNumbers = Array.from({ length: reserved }, (_, i) => this.#nextFileNumber + i);
    this.#nextFileNumber += reserved;
    // The job deletes its outputs itself when it fails.
    const result: JobResult = await this.#compactionWorker.run({
      kind: 'compaction',
      dir: this.#options.dir,
      inputs: compaction.inputs.map((t) => t.fileNumber),
      outputFileNumbers,
      tableBytesTarget: this.#options.tableBytesTarget,
      bottom: compaction.bottom,
      nowMs: this.#options.nowMs(),
      tombstoneGraceMs: this.#options.tombstoneGraceMs,
      writer: writerOptions(this.#options),
    });
    const removed = compaction.inputs.map((t) => t.fileNumber);
    await this.#edit({
      removed,
      added: result.tables.map((table) => ({ level: compaction.outputLevel, table })),
    }).catch(async (err: unknown) => {
      await this.#removeTables(result.tables);
      throw err;
    });
    this.#pointers[compaction.inputLevel] = keyRange(compaction.picked)[1];
    this.#compactions++;
    for (const fileNumber of removed) {
      this.#cache.evictFile(fileNumber);
      await this.#options.vfs.remove(filePath(this.#options.dir, fileNumber, 'sst')).catch(() => {});
    }
  }

  /**
   * Applies an edit: opens readers for added tables, writes the manifest,
   * then installs the new state and runs `install` in the same synchronous
   * step, so no read sees data missing between the two. Edits run one at a
   * time, in call order.
   */
  #edit(edit: VersionEdit, logNumber = this.#logNumber, install?: () => void): Promise<void> {
    const run = async (): Promise<void> => {
      const dir = this.#options.dir;
      const version = this.#state.version.apply(edit);
      const opening = await Promise.allSettled(
        edit.added.map(({ table }) =>
          TableReader.open(
            filePath(dir, table.fileNumber, 'sst'),
            table.fileNumber,
            this.#cache,
            this.#options.vfs,
          ),
        ),
      );
      const opened = opening.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      try {
        for (const o of opening) if (o.status === 'rejected') throw o.reason;
        await writeManifest(
          dir,
          { version, nextFileNumber: this.#nextFileNumber, logNumber },
          this.#options.vfs,
        );
      } catch (err) {
        // Not installed: the readers of the tables that were to join go, and the caller removes the files.
        await Promise.all(opened.map((r) => r.close()));
        for (const reader of opened) this.#cache.evictFile(reader.fileNumber);
        throw err;
      }
      // INVARIANT: no await from here to the swap: readers see the old state or the new one.
      const old = this.#state;
      const readers = new Map(old.readers);
      for (const reader of opened) readers.set(reader.fileNumber, reader);
      const removedReaders = edit.removed.map((n) => readers.get(n)!);
      for (const n of edit.removed) readers.delete(n);
      this.#logNumber = logNumber;
      this.#state = new TreeState(version, readers);
      install?.();
      old.release();
      await Promise.all(removedReaders.map((r) => r.close()));
    };
    const next = this.#editChain.then(run);
    this.#editChain = next.catch(() => {});
    return next;
  }
}

function walOptions(options: LsmOptions, prefill?: { restMs?: number; signal?: AbortSignal }) {
  // A log holds about one memtable of records (a little less: no list overhead).
  return {
    vfs: options.vfs,
    sync: options.sync,
    prefillBytes: options.sync ? options.memtableBytesMax : 0,
    prefillRestMs: prefill?.restMs,
    prefillSignal: prefill?.signal,
  };
}

function writerOptions(options: LsmOptions) {
  return {
    blockBytes: options.blockBytes,
    bloomBitsPerKey: options.bloomBitsPerKey,
    compression: options.compression,
  };
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
async function encodeMemtable(memtable: Memtable, reuse?: SharedArrayBuffer): Promise<Uint8Array> {
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

/** Chains cursors of non-overlapping tables in key order, opening each only when reached. */
function concatCursor(opens: readonly (() => EntryCursor)[]): EntryCursor {
  let index = 0;
  let current: EntryCursor | undefined;
  return {
    async next() {
      for (;;) {
        if (current === undefined) {
          const open = opens[index++];
          if (open === undefined) return undefined;
          current = open();
        }
        const batch = await current.next();
        if (batch !== undefined) return batch;
        await current.close();
        current = undefined;
      }
    },
    async close() {
      index = opens.length;
      const cursor = current;
      current = undefined;
      await cursor?.close();
    },
  };
}
