/**
 * Every bound in ringkv, with its reason. Options may override the defaults
 * marked "default"; the rest are fixed by formats or by safety. Relations
 * between them are asserted at the bottom, when the module loads.
 */
import { assert } from '../util/assert.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const limits = {
  /** API.md: a key longer than this gets 414 (default; --max-key-bytes). */
  keyBytesMax: 1024,
  /** API.md: a value larger than this gets 413 (default; --max-value-bytes). */
  valueBytesMax: 8 * MiB,
  /** Hard ceiling on any key any format accepts: a u16 length in SSTable blocks. */
  keyBytesHardMax: 64 * KiB - 1,
  /** Hard ceiling on a value: frames use u32 lengths; 256 MiB keeps one entry far below heap size. */
  valueBytesHardMax: 256 * MiB,

  /** DESIGN.md: a memtable becomes immutable past this (default). */
  memtableBytesMax: 4 * MiB,
  /**
   * Immutable memtables waiting for flush before writers stall: two of 4 MiB
   * absorb a burst while one flushes (~50 ms of disk at these sizes).
   */
  immutableMemtablesMax: 2,
  /** Target uncompressed data block size: one disk page-cache read of 4 KiB. */
  blockBytes: 4 * KiB,
  /** Bloom filter bits per key: ~1% false positives with 7 hash probes. */
  bloomBitsPerKey: 10,
  /** Block cache (default): index and filters are always in memory besides this. */
  blockCacheBytes: 64 * MiB,
  /** Compaction: L0 tables (overlapping, one per flush) that trigger a merge into L1. */
  l0CompactionTrigger: 4,
  /** Compaction: L1 target size; each deeper level is `levelBytesMultiplier` times larger. */
  levelBytesBase: 16 * MiB,
  levelBytesMultiplier: 10,
  levelCount: 7,
  /** Compaction output tables are cut near this size so later merges stay small. */
  tableBytesTarget: 4 * MiB,
  /**
   * Tombstones and expired values are kept at least this long (by the physical
   * time in their version) so that replicas that missed a delete learn of it
   * through hints or anti-entropy before it can be dropped (default).
   */
  tombstoneGraceMs: 24 * 60 * 60 * 1000,

  /** Group commit: at most this many bytes of WAL records go in one write. */
  walBatchBytesMax: 4 * MiB,
  /** A scan hands out at most this many entries per batch (one event-loop turn of work). */
  scanBatchEntriesMax: 256,
  /** ...and at most about this many bytes. */
  scanBatchBytesMax: 256 * KiB,
} as const;

assert(limits.keyBytesMax <= limits.keyBytesHardMax, 'keyBytesMax must fit a u16 length');
assert(limits.valueBytesMax <= limits.valueBytesHardMax, 'valueBytesMax must be under the hard maximum');
assert(limits.tableBytesTarget <= limits.levelBytesBase, 'a table must fit in L1');
assert(limits.walBatchBytesMax >= limits.valueBytesMax, 'one maximal value must fit a WAL batch');
