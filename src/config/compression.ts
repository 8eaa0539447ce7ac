/**
 * The block compression codecs a node can write SSTables with (--compression).
 * storage/sstable/compression.ts implements them and format.ts numbers them
 * on disk; this module only names them, so that options.ts can check the
 * flag without reaching into storage.
 *
 * The default is the one measured best for the trade-off (bench/engine, the
 * json workload: 100,000 JSON documents of 200-2,000 bytes; docs/performance.md,
 * Block compression). lz4 stores them in 40% of the bytes (with a dictionary
 * per table), costs no write throughput (tables at levels 0 and 1 are written
 * raw) and nothing on a read that hits the block cache; a read that misses it
 * pays a decompression of a few microseconds, in the thread pool beside the
 * read itself when the native block reader is built. deflate stores them in 28% but
 * its decompression costs about twice lz4's, and its compression makes a full
 * compaction three times longer. none keeps tables as in format version 1.
 */

/** Every codec name the flag takes, in the order the usage text lists them. */
export const BLOCK_COMPRESSIONS = ['lz4', 'deflate', 'none'] as const;
export type BlockCompression = (typeof BLOCK_COMPRESSIONS)[number];

/** What a table is written with when nobody says otherwise (--compression). */
export const DEFAULT_BLOCK_COMPRESSION: BlockCompression = 'lz4';
