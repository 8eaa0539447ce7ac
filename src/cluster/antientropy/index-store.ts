/**
 * The anti-entropy index on disk: an LSM engine in <data>/aae/index-<slot>
 * (indexed-engine.ts). Tombstones never age out of it (it must hold what
 * the store holds, deletes included, until a rebuild says otherwise), its
 * writes are not logged (a start after a crash rebuilds it, and a clean
 * close flushes it: IndexedEngine.close), its tables are not compressed
 * (hashes first: little to gain) and its cache is small. Logged, the index
 * doubled a replica write's write() calls.
 */
import { join } from 'node:path';
import { limits } from '../../config/limits.js';
import { isFsError, LsmEngine, nodeVfs, type Vfs } from '../../storage/index.js';
import type { IndexStore } from './indexed-engine.js';

export function lsmIndexes(
  dataDir: string,
  options: {
    readonly vfs?: Vfs;
    readonly log?: (line: string) => void;
    readonly memtableBytesMax?: number;
  } = {},
): IndexStore {
  const vfs = options.vfs ?? nodeVfs;
  const dirOf = (slot: 0 | 1) => join(dataDir, 'aae', `index-${slot}`);
  return {
    open: (slot) =>
      LsmEngine.open({
        dir: dirOf(slot),
        sync: false,
        logWrites: false,
        tombstoneGraceMs: Number.POSITIVE_INFINITY,
        compression: 'none',
        blockCacheBytes: limits.antiEntropyIndexCacheBytes,
        vfs,
        ...(options.log === undefined ? {} : { log: options.log }),
        ...(options.memtableBytesMax === undefined ? {} : { memtableBytesMax: options.memtableBytesMax }),
      }),
    async clear(slot) {
      const dir = dirOf(slot);
      let names: string[];
      try {
        names = await vfs.list(dir);
      } catch (err) {
        if (isFsError(err, 'ENOENT')) return;
        throw err;
      }
      for (const name of names) await vfs.remove(join(dir, name));
      if (names.length > 0) await vfs.syncDir(dir);
    },
  };
}
