/**
 * Tables compacted for their tombstones and expired values alone
 * (compaction/picker.ts, rule 4; background.ts): keys written in rising
 * order end in tables that nothing new overlaps and no level's size ever
 * compacts again. Once their droppable entries are past the grace period,
 * with no write to start anything, the engine rewrites those tables and the
 * space comes back; a table whose tombstones must stay is left alone rather
 * than rewritten again and again, and a rewrite that a late older write
 * overtakes is set aside. The counts come back from the worker thread and
 * are kept through a crash and a snapshot.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tempDir } from '../../../test/support/temp-dir.js';
import { type Entry, EntryKind, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { makeVersion } from '../entry/version.js';
import { LsmEngine, type LsmOpenOptions } from '../lsm-engine.js';
import { decodeManifest } from '../manifest/manifest-file.js';
import { restoreSnapshot } from '../snapshot.js';
import { MemoryVfs, nodeVfs, type OpenMode, type Vfs, type VfsFile } from '../vfs/index.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const T0 = 10_000_000_000;
const DIR = '/data';
const VALUE = Buffer.alloc(100, 'v');

interface Store {
  readonly vfs: HookedVfs;
  readonly clock: { now: number };
  readonly engine: LsmEngine;
}

/** A MemoryVfs that tells a test when a compaction starts writing a table. */
class HookedVfs extends MemoryVfs {
  onCompactionTable: (() => void) | undefined;

  override openSync(path: string, mode: OpenMode): VfsFile {
    if (path.endsWith('.sst') && mode === 'wx' && new Error().stack?.includes('runCompaction') === true) {
      this.onCompactionTable?.();
    }
    return super.openSync(path, mode);
  }
}

/** `tableBytesTarget`: small, for many tables per level; by default each level-0 compaction writes one. */
async function openStore(tableBytesTarget = 1 << 20): Promise<Store> {
  const vfs = new HookedVfs();
  const clock = { now: T0 };
  return { vfs, clock, engine: await LsmEngine.open(storeOptions(DIR, vfs, clock, tableBytesTarget)) };
}

function storeOptions(
  dir: string,
  vfs: Vfs,
  clock: { now: number },
  tableBytesTarget = 1 << 20,
): LsmOpenOptions {
  return {
    dir,
    vfs,
    sync: false,
    tombstoneGraceMs: DAY_MS,
    nowMs: () => clock.now,
    // Two flushes make a level-0 compaction; no deeper level ever goes over its size.
    l0CompactionTrigger: 2,
    levelBytesBase: 1 << 30,
    tableBytesTarget,
    droppableCheckMs: 10,
    log: () => {},
  };
}

/** `count` rising keys from `first`: t000000, t000001, ... */
function keys(first: number, count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.from(`t${String(first + i).padStart(6, '0')}`));
}

/** Writes the entries and flushes them into one level-0 table. */
async function flushed(engine: LsmEngine, entries: readonly Entry[]): Promise<void> {
  for (const entry of entries) await engine.write(entry);
  await engine.flush();
}

async function waitFor(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until no compaction has completed for a while (many droppable checks). */
async function settled(engine: LsmEngine): Promise<void> {
  const deadline = Date.now() + 10_000;
  let seen = -1;
  while (seen !== engine.stats().compactions) {
    assert.ok(Date.now() < deadline, `compactions go on and on (${engine.stats().compactions})`);
    seen = engine.stats().compactions;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The live tables as the MANIFEST on disk lists them. */
async function manifestTables(vfs: Vfs, dir = DIR) {
  const path = `${dir}/MANIFEST`;
  return decodeManifest(path, await vfs.readFile(path), 7).version.tables();
}

/** Bytes of the table files in the directory. */
async function sstBytes(vfs: MemoryVfs): Promise<number> {
  let bytes = 0;
  for (const name of await vfs.list(DIR)) {
    if (name.endsWith('.sst')) bytes += (await vfs.readFile(`${DIR}/${name}`)).length;
  }
  return bytes;
}

describe('LSM compaction for droppable entries', () => {
  test('expired values of rising keys leave the disk once past the grace, with no write to start it', async () => {
    const { vfs, clock, engine } = await openStore(8 * 1024);
    try {
      const expiresAtMs = T0 + HOUR_MS;
      for (let batch = 0; batch < 4; batch++) {
        const version = makeVersion(T0 + batch, 0);
        await flushed(
          engine,
          keys(batch * 200, 200).map((key) => valueEntry(key, version, VALUE, expiresAtMs)),
        );
      }
      // Later keys that never expire: one more level-0 table, which must stay as it is.
      await flushed(
        engine,
        keys(800, 50).map((key) => valueEntry(key, makeVersion(T0 + 10, 0), VALUE)),
      );
      await settled(engine);
      const expiring = engine.stats().tablesPerLevel[1]!;
      assert.ok(expiring > 1, `the expiring keys fill level 1 (${expiring} tables)`);
      assert.equal(engine.stats().tablesPerLevel[0], 1);
      const before = engine.stats().compactions;

      // Expired, but within the grace period: nothing may go yet.
      clock.now = expiresAtMs + DAY_MS - 1;
      await settled(engine);
      assert.equal(engine.stats().compactions, before);
      assert.equal(engine.stats().tablesPerLevel[1], expiring);

      clock.now = expiresAtMs + DAY_MS;
      await waitFor('level 1 is empty', () => engine.stats().tablesPerLevel[1] === 0);
      await settled(engine);
      const tables = await manifestTables(vfs);
      assert.deepEqual(
        tables.map((t) => t.entryCount),
        [50],
        'only the table of keys that never expire is left',
      );
      assert.equal(await sstBytes(vfs), tables[0]!.fileBytes, 'no other table file is left on disk');
      assert.equal(await engine.get(keys(0, 1)[0]!), undefined);
      assert.equal((await engine.get(keys(800, 1)[0]!))?.kind, EntryKind.Value);
    } finally {
      await engine.close();
    }
  });

  test('tombstones of deleted rising keys, and the values they shadowed, leave the disk', async () => {
    const { vfs, clock, engine } = await openStore();
    try {
      const written = keys(0, 400);
      await flushed(
        engine,
        written.slice(0, 200).map((key) => valueEntry(key, makeVersion(T0 - 2000, 0), VALUE)),
      );
      await flushed(
        engine,
        written.slice(200).map((key) => valueEntry(key, makeVersion(T0 - 2000, 0), VALUE)),
      );
      // Three quarters deleted; the level-0 compaction meets the values (dropped) but the
      // tombstones stay, being younger than the grace period.
      const deleted = written.slice(0, 300);
      await flushed(
        engine,
        deleted.slice(0, 150).map((key) => tombstoneEntry(key, makeVersion(T0, 0))),
      );
      await flushed(
        engine,
        deleted.slice(150).map((key) => tombstoneEntry(key, makeVersion(T0, 0))),
      );
      await settled(engine);
      const entries = (await manifestTables(vfs)).reduce((sum, t) => sum + t.entryCount, 0);
      assert.equal(entries, 400, 'the tombstones are on disk');
      const before = engine.stats().compactions;

      clock.now = T0 + DAY_MS + 1;
      await waitFor('a compaction ran', () => engine.stats().compactions > before);
      await settled(engine);
      const tables = await manifestTables(vfs);
      assert.equal(
        tables.reduce((sum, t) => sum + t.entryCount, 0),
        100,
      );
      assert.ok(tables.every((t) => t.droppable === undefined));
      assert.equal(await engine.get(deleted[0]!), undefined);
      assert.equal((await engine.get(written[399]!))?.kind, EntryKind.Value);
    } finally {
      await engine.close();
    }
  });

  test('a tombstone that must stay (an older value outside) is not compacted again and again', async () => {
    const { vfs, clock, engine } = await openStore();
    try {
      const key = keys(0, 1)[0]!;
      const others = keys(1, 99).map((k) => tombstoneEntry(k, makeVersion(T0, 0)));
      await flushed(engine, [tombstoneEntry(key, makeVersion(T0, 0)), ...others.slice(0, 50)]);
      await flushed(engine, others.slice(50));
      await settled(engine);
      assert.equal(engine.stats().tablesPerLevel[1], 1);
      // An older value of the key arrives late: in level 0, it keeps the level-1 tombstones.
      await flushed(engine, [valueEntry(key, makeVersion(T0 - 1000, 0), VALUE)]);
      await settled(engine);
      const before = engine.stats().compactions;

      clock.now = T0 + 2 * DAY_MS;
      await settled(engine);
      assert.equal(engine.stats().compactions, before, 'no compaction that could drop nothing');
      assert.equal((await engine.get(key))?.kind, EntryKind.Tombstone);
      assert.deepEqual(
        (await manifestTables(vfs)).map((t) => t.entryCount),
        [1, 100],
      );
    } finally {
      await engine.close();
    }
  });

  test('a table rewritten alone is set aside when an older version of a key it drops comes in meanwhile', async () => {
    const { vfs, clock, engine } = await openStore();
    try {
      const deleted = keys(0, 10);
      await flushed(
        engine,
        deleted.slice(0, 5).map((key) => tombstoneEntry(key, makeVersion(T0, 0))),
      );
      // A value after the tombstones in key order: the rewrite writes a table once it has dropped them.
      const kept = valueEntry(Buffer.from('u'), makeVersion(T0, 0), VALUE);
      await flushed(engine, [
        ...deleted.slice(5).map((key) => tombstoneEntry(key, makeVersion(T0, 0))),
        kept,
      ]);
      await settled(engine);
      assert.equal(engine.stats().tablesPerLevel[1], 1);
      const before = engine.stats().compactions;
      let late: Promise<void> | undefined;
      vfs.onCompactionTable = () => {
        late ??= engine.write(valueEntry(deleted[0]!, makeVersion(T0 - 1000, 0), Buffer.from('old')));
      };

      clock.now = T0 + 2 * DAY_MS;
      await waitFor('the rewrite ran', () => late !== undefined);
      await late;
      await settled(engine);
      assert.equal(engine.stats().compactions, before, 'nothing installed');
      assert.equal((await engine.get(deleted[0]!))?.kind, EntryKind.Tombstone);
      await engine.flush();
      await settled(engine);
      assert.equal((await engine.get(deleted[0]!))?.kind, EntryKind.Tombstone);
    } finally {
      await engine.close();
    }
  });

  test('the counts come back from the worker thread, and survive a crash and a snapshot restore', async () => {
    const tmp = await tempDir('ringkv-droppable-');
    const clock = { now: T0 };
    const dir = join(tmp.path, 'data');
    const restored = join(tmp.path, 'restored');
    let engine = await LsmEngine.open(storeOptions(dir, nodeVfs, clock));
    try {
      const deleted = keys(0, 100).map((key) => tombstoneEntry(key, makeVersion(T0, 0)));
      await flushed(engine, deleted.slice(0, 50));
      assert.equal((await manifestTables(nodeVfs, dir))[0]?.droppable?.entries, 50);
      await flushed(engine, deleted.slice(50));
      await settled(engine);
      await engine.crashForTest();
      engine = await LsmEngine.open(storeOptions(dir, nodeVfs, clock));
      await engine.snapshot(join(tmp.path, 'snapshot'));
      await engine.close();
      await restoreSnapshot(nodeVfs, join(tmp.path, 'snapshot'), restored, 7);
      const expected = { entries: 100, fromMs: T0, versionMax: makeVersion(T0, 0) };
      assert.deepEqual((await manifestTables(nodeVfs, dir))[0]?.droppable, expected);
      assert.deepEqual((await manifestTables(nodeVfs, restored))[0]?.droppable, expected);

      clock.now = T0 + 2 * DAY_MS;
      engine = await LsmEngine.open(storeOptions(restored, nodeVfs, clock));
      await waitFor('level 1 is empty', () => engine.stats().tablesPerLevel[1] === 0);
    } finally {
      await engine.close();
      await tmp.remove();
    }
  });
});
