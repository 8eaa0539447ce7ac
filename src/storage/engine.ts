/**
 * The Engine contract: what the rest of ringkv knows about storage.
 *
 * An engine stores versions of keys and keeps, for each key, only the newest
 * one it has seen (compareVersions): writing an older version than the one
 * stored is accepted and has no visible effect. This is what makes replicas
 * converge whatever order writes arrive in.
 *
 * - write(): resolves once the entry is durable per the engine's sync mode
 *   (fsynced with sync on; handed to the OS with sync off).
 * - get(): the newest stored version, tombstones and expired values included,
 *   so that a coordinator can compare versions across replicas; callers decide
 *   liveness with isLive().
 * - scan(): entries with start <= key < end (no end: to the last key), in key
 *   order, newest version per key, tombstones and expired values included. A
 *   cursor hands out bounded batches; it must be closed.
 * - Every method may be called concurrently; calls after close() reject with
 *   RINGKV_CLOSED (scan(), which returns its cursor at once, throws it).
 */

import type { Entry } from './entry/entry.js';
import type { PurgeFilter, PurgeOptions } from './purge.js';
import type { SnapshotInfo } from './snapshot.js';

export interface ScanRange {
  readonly start: Buffer;
  readonly end?: Buffer | undefined;
}

export interface EntryCursor {
  /** The next batch in key order (never empty), or undefined when exhausted. */
  next(): Promise<Entry[] | undefined>;
  /** Releases what the cursor holds; safe to call twice. */
  close(): Promise<void>;
}

export interface EngineStats {
  readonly writes: number;
  readonly reads: number;
  readonly walSyncs: number;
  readonly walWrites: number;
  readonly memtableBytes: number;
  readonly immutableMemtables: number;
  readonly flushes: number;
  readonly compactions: number;
  /** Flushes and compactions that failed (each is retried after a backoff; the engine keeps serving). */
  readonly flushFailures: number;
  readonly compactionFailures: number;
  /** Why the last flush or compaction failed, while no later attempt has succeeded. */
  readonly backgroundError?: string | undefined;
  readonly tablesPerLevel: readonly number[];
  readonly tableBytes: number;
  readonly blockCacheHits: number;
  readonly blockCacheMisses: number;
  readonly writeStalls: number;
}

export interface Engine {
  write(entry: Entry): Promise<void>;
  get(key: Buffer): Promise<Entry | undefined>;
  scan(range: ScanRange): EntryCursor;
  /** Makes every write so far part of an SSTable (tests and shutdown). */
  flush(): Promise<void>;
  /** Merges every table into the bottom level (tests and operators). */
  compact(): Promise<void>;

  /**
   * Writes a consistent snapshot of the data into `dir` (absent or empty):
   * every write acknowledged before the call (storage/snapshot.ts).
   */
  snapshot(dir: string): Promise<SnapshotInfo>;
  /**
   * Drops for good the entries the filter names (purge.ts), every version
   * of them written before the call, and those written before its turn
   * comes (it waits for work under way, a compaction, say: a caller that
   * must keep them abandons it with its signal); what is written after
   * stays. The cluster's cleanup of keys a node no longer holds. Optional: an engine
   * without it keeps everything. Rejects with RINGKV_CLOSED if the engine
   * closes first, or with the signal's reason once it aborts: then nothing
   * is dropped.
   */
  purge?(filter: PurgeFilter, options?: PurgeOptions): Promise<void>;
  /**
   * The newest version stored (0n when empty), so that after a restart a
   * clock set back does not stamp new writes below what is on disk.
   */
  maxVersion?(): bigint;
  stats(): EngineStats;
  /** Finishes in-flight work, makes data durable, releases files. */
  close(): Promise<void>;
}
