/**
 * The Engine contract on the LSM engine: with default limits, with tiny
 * limits (so every few writes flush and compact), and reopened between steps,
 * with each block compression codec; on the real file system and on the
 * in-memory vfs (where flushes and compactions run in-process instead of in
 * worker threads).
 */
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { MemoryVfs } from '../../src/storage/vfs/index.js';
import { TINY } from '../support/lsm-options.js';
import { tempDir } from '../support/temp-dir.js';
import { type EngineFactory, type EngineHarness, engineSuite } from './engine-suite.js';

function lsmFactory(name: string, extra: Partial<LsmOpenOptions>): EngineFactory {
  return {
    name,
    supports: { persistence: true },
    async create(): Promise<EngineHarness> {
      const dir = await tempDir();
      const open = async (): Promise<EngineHarness> => {
        const engine = await LsmEngine.open({ dir: dir.path, sync: false, ...extra });
        return {
          engine,
          async reopen() {
            await engine.close();
            return open();
          },
          async dispose() {
            await engine.close();
            await dir.remove();
          },
        };
      };
      return open();
    },
  };
}

/** The same store on a MemoryVfs of its own: reopen opens the same files in memory. */
function memoryFactory(name: string, extra: Partial<LsmOpenOptions>): EngineFactory {
  return {
    name,
    supports: { persistence: true },
    async create(): Promise<EngineHarness> {
      const vfs = new MemoryVfs();
      const open = async (): Promise<EngineHarness> => {
        const engine = await LsmEngine.open({ dir: '/data/engine', sync: false, vfs, ...extra });
        return {
          engine,
          async reopen() {
            await engine.close();
            return open();
          },
          dispose: () => engine.close(),
        };
      };
      return open();
    },
  };
}

engineSuite(lsmFactory('LsmEngine', {}));
engineSuite(lsmFactory('LsmEngine with tiny limits', TINY));
engineSuite(lsmFactory('LsmEngine with tiny limits and sync on', { ...TINY, sync: true }));
// The default codec (lz4) runs in every suite here (from level 2 down, which tiny limits reach); the
// others with tiny limits, so that every few writes write, compact and read compressed (or raw) tables.
engineSuite(lsmFactory('LsmEngine with tiny limits and deflate', { ...TINY, compression: 'deflate' }));
engineSuite(
  lsmFactory('LsmEngine with tiny limits and lz4 at every level', { ...TINY, compressionLevelMin: 0 }),
);
engineSuite(lsmFactory('LsmEngine with tiny limits and no compression', { ...TINY, compression: 'none' }));
engineSuite(memoryFactory('LsmEngine on MemoryVfs', {}));
engineSuite(memoryFactory('LsmEngine on MemoryVfs with tiny limits', TINY));
engineSuite(memoryFactory('LsmEngine on MemoryVfs with tiny limits and sync on', { ...TINY, sync: true }));
