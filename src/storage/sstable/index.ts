/**
 * SSTables: immutable sorted files of entries, one per key. Write with
 * TableWriter (synchronous, in a worker), read with TableReader (async, on
 * the event loop) through a shared BlockCache, or scan a whole file with
 * scanTableSync (compaction). Byte layout: format.ts, docs/formats/sstable.md.
 */

export { bloomHash } from './bloom.js';
export { BlockCache, type BlockCacheStats } from './cache.js';
export { FORMAT_VERSION } from './format.js';
export { nativeBlockReaderStatus, useNativeBlockReader } from './native-reader.js';
export { BLOCK_NOT_CACHED, type TableCursor, TableReader } from './reader.js';
export { scanTableSync, TableRecordScan } from './scanner.js';
export { type TableMeta, TableWriter, type TableWriterOptions } from './writer.js';
