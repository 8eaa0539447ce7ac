/**
 * The block compression codecs a node can write SSTables with (--compression).
 * storage/sstable/compression.ts implements them and format.ts numbers them
 * on disk; this module only names them, so that options.ts can check the
 * flag without reaching into storage.
 *
 * The default is the one measured best for the trade-off (bench/engine, the
 * json workload; README, Performance): lz4 decompresses a 4 KiB block in
 * about 4 us, cheap enough that point reads that miss the block cache stay
 * within a few percent of uncompressed tables, while JSON documents take
 * about a third of their size on disk with a per-table dictionary. deflate
 * stores them in about a quarter but costs four to five times as much per
 * block read.
 */

/** Every codec name the flag takes, in the order the usage text lists them. */
export const BLOCK_COMPRESSIONS = ['lz4', 'deflate', 'none'] as const;
export type BlockCompression = (typeof BLOCK_COMPRESSIONS)[number];

/** What a table is written with when nobody says otherwise (--compression). */
export const DEFAULT_BLOCK_COMPRESSION: BlockCompression = 'lz4';
