/** The Vfs contract on each vfs: the real file system, in memory, and the fault injector with no rule. */
import { FaultyVfs, MemoryVfs, nodeVfs } from '../../src/storage/vfs/index.js';
import { tempDir } from '../support/temp-dir.js';
import { vfsSuite } from './vfs-suite.js';

vfsSuite({
  name: 'nodeVfs',
  async create() {
    const dir = await tempDir();
    return { vfs: nodeVfs, dir: dir.path, dispose: () => dir.remove() };
  },
});

vfsSuite({
  name: 'MemoryVfs',
  async create() {
    const vfs = new MemoryVfs();
    await vfs.mkdir('/data');
    return { vfs, dir: '/data', dispose: async () => {} };
  },
});

vfsSuite({
  name: 'FaultyVfs over MemoryVfs, no faults',
  async create() {
    const vfs = new FaultyVfs(new MemoryVfs());
    await vfs.mkdir('/data');
    return { vfs, dir: '/data', dispose: async () => {} };
  },
});
