import type { LsmOpenOptions } from '../../src/storage/lsm-engine.js';

/** Limits small enough that a few writes flush, a few flushes compact, and blocks hold a handful of entries. */
export const TINY: Partial<LsmOpenOptions> = {
  memtableBytesMax: 2048,
  blockBytes: 256,
  l0CompactionTrigger: 2,
  levelBytesBase: 1024,
  levelBytesMultiplier: 2,
  tableBytesTarget: 1024,
  blockCacheBytes: 16 * 1024,
};
