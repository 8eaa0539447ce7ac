/**
 * The Engine contract on the LSM engine: with default limits, with tiny
 * limits (so every few writes flush and compact), and reopened between steps.
 */
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { TINY } from '../support/lsm-options.js';
import { tempDir } from '../support/temp-dir.js';
import { type EngineHarness, engineSuite } from './engine-suite.js';

function lsmFactory(name: string, extra: Partial<LsmOpenOptions>) {
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

engineSuite(lsmFactory('LsmEngine', {}));
engineSuite(lsmFactory('LsmEngine with tiny limits', TINY));
engineSuite(lsmFactory('LsmEngine with tiny limits and sync on', { ...TINY, sync: true }));
