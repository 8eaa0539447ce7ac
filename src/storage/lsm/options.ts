/**
 * The LSM engine's settings: what open() accepts (LsmOpenOptions: a
 * directory and a sync mode, the rest defaulting to config/limits.ts), the
 * frozen whole every part reads (LsmOptions), and the options each part
 * derives from them for the logs and tables it writes.
 */
import { type BlockCompression, DEFAULT_BLOCK_COMPRESSION } from '../../config/compression.js';
import { limits } from '../../config/limits.js';
import type { TableWriterOptions } from '../sstable/index.js';
import { nodeVfs, type Vfs } from '../vfs/index.js';
import type { WalWriterOptions } from '../wal/index.js';

export interface LsmOptions {
  readonly dir: string;
  readonly sync: boolean;
  /**
   * false: writes go to the memtable only, not to the write-ahead log, so
   * what no flush wrote is gone at any stop (flush() before close() keeps
   * it). For data rebuilt from elsewhere after a crash, where the log's
   * write() per batch is pure cost (the anti-entropy index).
   */
  readonly logWrites: boolean;
  readonly memtableBytesMax: number;
  /**
   * Each memtable is frozen at its own size, drawn in
   * [memtableBytesMax * (1 - jitter), memtableBytesMax] (memtableRotateBytes).
   */
  readonly memtableBytesJitter: number;
  /** In [0, 1): draws each memtable's size (tests pass a fixed one). */
  readonly random: () => number;
  readonly immutableMemtablesMax: number;
  readonly blockBytes: number;
  readonly bloomBitsPerKey: number;
  /** The codec new tables' data blocks are written with; tables already written keep theirs. */
  readonly compression: BlockCompression;
  /** Tables written into shallower levels than this are written raw whatever the codec (limits.ts). */
  readonly compressionLevelMin: number;
  readonly blockCacheBytes: number;
  readonly l0CompactionTrigger: number;
  readonly levelBytesBase: number;
  readonly levelBytesMultiplier: number;
  readonly levelCount: number;
  readonly tableBytesTarget: number;
  readonly tombstoneGraceMs: number;
  /**
   * A table whose tombstones and values with an expiry are at least this
   * share of its entries, all past the grace period, is compacted for them
   * when no level is over its size (compaction/picker.ts).
   */
  readonly droppableShareMin: number;
  /** How often the engine looks for such tables when nothing else starts a compaction. */
  readonly droppableCheckMs: number;
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
   * A line per flush and per compaction, saying what it did (tables, entries,
   * bytes, time): the node's info log. Default: nowhere.
   */
  readonly summary: (line: string) => void;
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
    logWrites: true,
    memtableBytesMax: limits.memtableBytesMax,
    // None unless asked (the node asks): the engine alone, and its tests, flush at one size.
    memtableBytesJitter: 0,
    random: Math.random,
    immutableMemtablesMax: limits.immutableMemtablesMax,
    blockBytes: limits.blockBytes,
    bloomBitsPerKey: limits.bloomBitsPerKey,
    compression: DEFAULT_BLOCK_COMPRESSION,
    compressionLevelMin: limits.compressionLevelMin,
    blockCacheBytes: limits.blockCacheBytes,
    l0CompactionTrigger: limits.l0CompactionTrigger,
    levelBytesBase: limits.levelBytesBase,
    levelBytesMultiplier: limits.levelBytesMultiplier,
    levelCount: limits.levelCount,
    tableBytesTarget: limits.tableBytesTarget,
    tombstoneGraceMs: limits.tombstoneGraceMs,
    droppableShareMin: limits.compactionDroppableShareMin,
    droppableCheckMs: limits.compactionDroppableCheckMs,
    nowMs: Date.now,
    backgroundRetryMinMs: limits.backgroundRetryMinMs,
    backgroundRetryMaxMs: limits.backgroundRetryMaxMs,
    log: warn,
    summary: () => {},
    vfs: nodeVfs,
    ...options,
  });
}

/**
 * The size at which a memtable is frozen: memtableBytesMax less a random
 * share of at most `memtableBytesJitter` of it. Replicas take the same
 * writes; with one size for all they would flush at the same moment, and
 * their flushes, on every node at once, showed in clients' latency. Drawn
 * anew for each memtable, so that no node keeps a smaller one for good.
 */
export function memtableRotateBytes(
  options: Pick<LsmOptions, 'memtableBytesMax' | 'memtableBytesJitter' | 'random'>,
): number {
  const share = Math.min(Math.max(options.memtableBytesJitter, 0), 1) * options.random();
  return Math.max(1, Math.ceil(options.memtableBytesMax * (1 - share)));
}

function warn(line: string): void {
  process.emitWarning(`ringkv: ${line}`);
}

/** A write-ahead log's options; `prefill` paces the zeros written ahead of its records (wal/writer.ts). */
export function walOptions(
  options: LsmOptions,
  prefill?: { restMs?: number; signal?: AbortSignal },
): WalWriterOptions {
  // A log holds about one memtable of records (a little less: no list overhead).
  return {
    vfs: options.vfs,
    sync: options.sync,
    prefillBytes: options.sync ? options.memtableBytesMax : 0,
    prefillRestMs: prefill?.restMs,
    prefillSignal: prefill?.signal,
  };
}

/** How flushes (level 0) and compactions lay out the tables they write into `level`. */
export function tableWriterOptions(options: LsmOptions, level: number): TableWriterOptions {
  return {
    blockBytes: options.blockBytes,
    bloomBitsPerKey: options.bloomBitsPerKey,
    compression: level >= options.compressionLevelMin ? options.compression : 'none',
  };
}

/** The backoff of work retried after a failure (background-retry.ts): flushes, compactions, a new log. */
export function retryOptions(options: LsmOptions): {
  minMs: number;
  maxMs: number;
  log: (line: string) => void;
} {
  return { minMs: options.backgroundRetryMinMs, maxMs: options.backgroundRetryMaxMs, log: options.log };
}
