/**
 * The storage package's public face: the Engine contract and the factory the
 * server uses. Other packages import storage only through this file.
 *
 * entry/ is exported whole: an entry and its codec are the data model that
 * the WAL, SSTables, hint files and the internode protocol share on purpose
 * (a change there changes every one of those formats).
 */
import type { BlockCompression } from '../config/compression.js';
import type { Engine } from './engine.js';
import { LsmEngine } from './lsm-engine.js';
import type { Vfs } from './vfs/index.js';

export { acquireDirLock, type DirLock } from './dir-lock.js';
export type { Engine, EngineStats, EntryCursor, ScanRange } from './engine.js';
export * from './entry/index.js';
export { LsmEngine, type LsmOpenOptions, type WalRecovery } from './lsm-engine.js';
export { MemoryEngine } from './memory-engine.js';
export { hashInRanges, type PurgeFilter, type PurgeOptions, purged } from './purge.js';
export {
  type RestoreInfo,
  restoreSnapshot,
  SNAPSHOT_INFO_NAME,
  type SnapshotInfo,
  SUMS_NAME,
} from './snapshot.js';
// The native block reader, set aside and taken back by the engine bench.
export { nativeBlockReaderStatus, useNativeBlockReader } from './sstable/index.js';
// The file-system seam: the real file system, and the crashable and fault-injecting ones for tests.
export {
  type FaultOp,
  type FaultRule,
  FaultyVfs,
  isFsError,
  MemoryVfs,
  nodeVfs,
  pathExists,
  replaceFileDurably,
  seededRandom,
  truncateDurably,
  type Vfs,
  type VfsFile,
  writeFully,
} from './vfs/index.js';
// The WAL's record framing, reused by the cluster's hint files.
export {
  encodeRecord,
  type LogHeader,
  parseRecordLog,
  RECORD_HEADER_BYTES,
  type RecordRead,
  readRecord,
  recordBytes,
  sealRecord,
} from './wal/index.js';

export interface EngineOptions {
  /** Directory holding this engine's files; created if missing. */
  readonly dir: string;
  /** true: every acknowledged write is fsynced (group commit). false: acknowledged once written to the OS. */
  readonly sync: boolean;
  readonly memtableBytesMax?: number;
  /** Each memtable is frozen at up to this share below memtableBytesMax, drawn anew (default 0; lsm/options.ts). */
  readonly memtableBytesJitter?: number;
  readonly blockCacheBytes?: number;
  /** The codec of new tables' data blocks (default: config/compression.ts); old tables keep theirs. */
  readonly compression?: BlockCompression;
  readonly tombstoneGraceMs?: number;
  /**
   * Where the engine reports, one line each (no trailing newline), what an
   * operator should know: a torn log tail cut at open after a crash, a flush
   * or compaction that failed and will be retried. Default: process.emitWarning.
   */
  readonly log?: (line: string) => void;
  /** A line per flush and compaction (the node's info log); default nowhere. */
  readonly summary?: (line: string) => void;
  /** The file system (default: the real one); tests pass an in-memory or fault-injecting one. */
  readonly vfs?: Vfs;
}

/** Opens (recovering if needed) the engine in `options.dir`. */
export async function openEngine(options: EngineOptions): Promise<Engine> {
  const {
    dir,
    sync,
    memtableBytesMax,
    memtableBytesJitter,
    blockCacheBytes,
    compression,
    tombstoneGraceMs,
    log,
    summary,
    vfs,
  } = options;
  return LsmEngine.open({
    dir,
    sync,
    ...(memtableBytesMax === undefined ? {} : { memtableBytesMax }),
    ...(memtableBytesJitter === undefined ? {} : { memtableBytesJitter }),
    ...(blockCacheBytes === undefined ? {} : { blockCacheBytes }),
    ...(compression === undefined ? {} : { compression }),
    ...(tombstoneGraceMs === undefined ? {} : { tombstoneGraceMs }),
    ...(log === undefined ? {} : { log }),
    ...(summary === undefined ? {} : { summary }),
    ...(vfs === undefined ? {} : { vfs }),
  });
}
