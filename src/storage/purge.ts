/**
 * Purging: dropping, for good, the entries of keys a node no longer holds
 * (a cluster's cleanup after its ring changed). The filter is plain data, so
 * that it crosses into the compaction worker: the ranges of the key's hash
 * (murmur3 with seed 0, the cluster ring's hash32) to drop, and a version
 * bound, so that entries written after the purge was decided stay.
 *
 *   await engine.purge?.({ hashRanges: [0, 2 ** 31], versionMax: clock.now() });
 */
import { murmur3 } from '../util/hash.js';

export interface PurgeFilter {
  /** Sorted, disjoint [start, end) ranges of the key hash, flattened: [s0, e0, s1, e1, ...], 0 <= s < e <= 2^32. */
  readonly hashRanges: readonly number[];
  /** Only versions at or below this one are dropped. */
  readonly versionMax: bigint;
  /**
   * Keys start with their hash (u32 big-endian) rather than being hashed: the
   * anti-entropy index, keyed by hash then key (cluster/antientropy).
   */
  readonly hashPrefixed?: boolean;
}

export interface PurgeOptions {
  /** Abandons the purge: it rejects with the signal's reason, nothing dropped (a node's shutdown). */
  readonly signal?: AbortSignal;
}

/** Whether the entry whose key is buf[start, end) and whose version is `version` goes. */
export function purged(
  filter: PurgeFilter,
  buf: Uint8Array,
  start: number,
  end: number,
  version: bigint,
): boolean {
  if (version > filter.versionMax) return false;
  let hash: number;
  if (filter.hashPrefixed === true) {
    if (end - start < 4) return false;
    hash = ((buf[start]! << 24) | (buf[start + 1]! << 16) | (buf[start + 2]! << 8) | buf[start + 3]!) >>> 0;
  } else {
    hash = murmur3(buf, 0, start, end);
  }
  return hashInRanges(filter.hashRanges, hash);
}

/** Whether `hash` falls in flattened, sorted [start, end) ranges (a PurgeFilter's hashRanges). */
export function hashInRanges(ranges: readonly number[], hash: number): boolean {
  // The last range starting at or before the hash: binary search over the starts.
  let low = 0;
  let high = ranges.length / 2;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ranges[2 * mid]! <= hash) low = mid + 1;
    else high = mid;
  }
  return low > 0 && hash < ranges[2 * (low - 1) + 1]!;
}
