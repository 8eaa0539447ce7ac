/** The Vfs contract on each vfs. */
import { nodeVfs } from '../../src/storage/vfs/index.js';
import { tempDir } from '../support/temp-dir.js';
import { vfsSuite } from './vfs-suite.js';

vfsSuite({
  name: 'nodeVfs',
  async create() {
    const dir = await tempDir();
    return { vfs: nodeVfs, dir: dir.path, dispose: () => dir.remove() };
  },
});
