import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { valueEntry } from '../entry/entry.js';
import { LsmEngine } from '../lsm-engine.js';
import { readManifest } from '../manifest/manifest-file.js';
import { Version } from '../manifest/version.js';
import { BlockCache } from '../sstable/index.js';
import { TreeState } from '../tree-state.js';
import { nodeVfs } from '../vfs/index.js';
import { VersionSet } from './version-set.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ringkv-versions-'));
  dirs.push(dir);
  return dir;
}

describe('VersionSet', () => {
  it('an edit queued behind one that moves the log number does not move it back', async () => {
    const dir = await tempDir();
    const versions = new VersionSet({
      dir,
      vfs: nodeVfs,
      cache: new BlockCache(1 << 20),
      state: new TreeState(Version.empty(7), new Map()),
      nextFileNumber: 20,
      logNumber: 5,
    });
    // A flush's edit (log 12 on) and a compaction's (log number unchanged), asked for in one turn.
    const flushed = versions.apply({ removed: [], added: [] }, { logNumber: 12 });
    const compacted = versions.apply({ removed: [], added: [] });
    await Promise.all([flushed, compacted]);
    assert.equal((await readManifest(dir, 7))?.logNumber, 12);
    // Nor does one that asks for an older number.
    await versions.apply({ removed: [], added: [] }, { logNumber: 9 });
    assert.equal((await readManifest(dir, 7))?.logNumber, 12);
    await versions.close();
  });
});

describe('recovery', () => {
  /** Descriptors this process holds on files under `dir`. */
  async function openUnder(dir: string): Promise<number> {
    let count = 0;
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
      if (target.startsWith(dir)) count++;
    }
    return count;
  }

  it('an open refused for one damaged table closes every table it opened', async (t) => {
    if (process.platform !== 'linux') {
      t.skip('counts descriptors in /proc/self/fd');
      return;
    }
    const dir = await tempDir();
    const engine = await LsmEngine.open({ dir, sync: false, l0CompactionTrigger: 100, log: () => {} });
    for (let table = 0; table < 12; table++) {
      for (let i = 0; i < 20; i++) {
        await engine.write(
          valueEntry(Buffer.from(`k${table}-${i}`), BigInt(1 + table * 100 + i), Buffer.alloc(50)),
        );
      }
      await engine.flush();
    }
    await engine.close();
    const tables = (await readdir(dir)).filter((name) => name.endsWith('.sst')).sort();
    assert.equal(tables.length, 12);
    // The first table's footer damaged: its open fails while the others' are under way.
    const file = await open(join(dir, tables[0]!), 'r+');
    const { size } = await file.stat();
    await file.write(Buffer.from('XXXXXXXX'), 0, 8, size - 8);
    await file.close();

    const before = await openUnder(dir);
    for (let attempt = 0; attempt < 5; attempt++) {
      await assert.rejects(LsmEngine.open({ dir, sync: false, log: () => {} }), (err: Error) => {
        assert.ok(err.message.includes(tables[0]!), err.message);
        return true;
      });
    }
    assert.equal(await openUnder(dir), before);
  });
});
