import type { LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import type { FaultyVfs } from '../../src/storage/vfs/index.js';

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

/**
 * An engine in /data on a fault-injecting vfs, with sync on: 4 KiB
 * memtables, so that faults meet flushes and rotations, and retries within
 * milliseconds; nothing logged unless `extra` says.
 */
export function faultTestOptions(vfs: FaultyVfs, extra: Partial<LsmOpenOptions> = {}): LsmOpenOptions {
  return {
    dir: '/data',
    sync: true,
    vfs,
    memtableBytesMax: 4096,
    backgroundRetryMinMs: 5,
    backgroundRetryMaxMs: 20,
    log: () => {},
    ...extra,
  };
}
