/**
 * Compactions and versions that arrive late (background.ts, module comment):
 * a tombstone past its grace period at the bottom of the tree is dropped only
 * when nothing outside the compaction holds an older version of its key, be
 * it in the live memtable, a frozen one, a level-0 table the compaction does
 * not read, or a write that comes in while it runs. And the output file
 * numbers a compaction reserves suffice whatever codec its inputs were
 * written with. And close() does not wait for a full compaction: it stops
 * it, and nothing changes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRingkvError, RingkvError } from '../../util/errors.js';
import { type Entry, EntryKind, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { makeVersion } from '../entry/version.js';
import { LsmEngine, type LsmOpenOptions } from '../lsm-engine.js';
import { fsError } from '../vfs/errors.js';
import { MemoryVfs, type OpenMode, type OpenOptions, type VfsFile } from '../vfs/index.js';

const DAY_MS = 86_400_000;
const KEY = Buffer.from('k');
const T0 = 10_000_000_000;
const TOMBSTONE_VERSION = makeVersion(T0 - 1000, 0);
const OLD_VERSION = makeVersion(T0 - 2000, 0);

/** A MemoryVfs whose table and manifest writes a test can fail or act on as they start. */
class HookedVfs extends MemoryVfs {
  /** Called as a table file is created; `flush` tells a flush's output from a compaction's. */
  onTable: ((path: string, flush: boolean) => void) | undefined;
  /** Called as a new MANIFEST starts being written. */
  onManifest: (() => void) | undefined;

  override openSync(path: string, mode: OpenMode): VfsFile {
    if (path.endsWith('.sst') && mode === 'wx') {
      this.onTable?.(path, new Error().stack?.includes('runFlush') === true);
    }
    return super.openSync(path, mode);
  }

  override async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<VfsFile> {
    if (path.endsWith('MANIFEST.tmp')) this.onManifest?.();
    return super.open(path, mode, options);
  }
}

interface Store {
  readonly vfs: HookedVfs;
  readonly clock: { now: number };
  options(extra: Partial<LsmOpenOptions>): LsmOpenOptions;
}

/**
 * A store whose key k was deleted (a tombstone at T0 - 1 s) and compacted
 * into level 1, the bottom, among filler values; the clock then moved past
 * the grace period (a day). `lateFlushed`: an older put of k (T0 - 2 s)
 * arrived afterwards and was flushed to level 0.
 */
async function deletedStore(lateFlushed = false): Promise<Store> {
  const vfs = new HookedVfs();
  const clock = { now: T0 };
  const options = (extra: Partial<LsmOpenOptions>): LsmOpenOptions => ({
    dir: '/data',
    vfs,
    sync: false,
    tombstoneGraceMs: DAY_MS,
    nowMs: () => clock.now,
    l0CompactionTrigger: 100,
    levelBytesBase: 1 << 30,
    backgroundRetryMinMs: 20,
    backgroundRetryMaxMs: 20,
    log: () => {},
    ...extra,
  });
  const engine = await LsmEngine.open(options({}));
  for (let i = 0; i < 10; i++) {
    await engine.write(valueEntry(Buffer.from(`a${i}`), makeVersion(T0 - 5000, 0), Buffer.from('x')));
  }
  await engine.write(tombstoneEntry(KEY, TOMBSTONE_VERSION));
  await engine.compact();
  assert.equal(engine.stats().tablesPerLevel[1], 1);
  if (lateFlushed) {
    await engine.write(valueEntry(KEY, OLD_VERSION, Buffer.from('old')));
    await engine.flush();
    assert.equal(engine.stats().tablesPerLevel[0], 1);
  }
  assert.equal((await engine.get(KEY))?.kind, EntryKind.Tombstone);
  await engine.close();
  clock.now += 2 * DAY_MS;
  return { vfs, clock, options };
}

/** Waits until `done` holds, then until no compaction has completed for a while. */
async function compactionsSettle(engine: LsmEngine, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, 'compactions did not happen');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  let seen = -1;
  while (seen !== engine.stats().compactions) {
    seen = engine.stats().compactions;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function describeRead(entry: Entry | undefined): string {
  if (entry === undefined) return 'absent';
  return entry.kind === EntryKind.Tombstone ? 'deleted' : `value "${entry.value.toString()}"`;
}

/** Level 1 is over its target at once: its table moves down, every step the bottom for its range. */
const LEVEL_1_FULL: Partial<LsmOpenOptions> = { levelBytesBase: 1 };

describe('LSM compaction: a tombstone is dropped only when nothing older is outside', () => {
  test('control: with nothing older anywhere, the bottom compaction collects the tombstone', async () => {
    const store = await deletedStore();
    const engine = await LsmEngine.open(store.options(LEVEL_1_FULL));
    try {
      await compactionsSettle(engine, () => engine.stats().compactions > 0);
      assert.equal(describeRead(await engine.get(KEY)), 'absent');
      assert.equal(engine.stats().tablesPerLevel[1], 0);
    } finally {
      await engine.close();
    }
  });

  test('an older value in a level-0 table the compaction does not read keeps the tombstone', async () => {
    const store = await deletedStore(true);
    const engine = await LsmEngine.open(store.options(LEVEL_1_FULL));
    try {
      await compactionsSettle(engine, () => engine.stats().compactions > 0);
      assert.equal(engine.stats().tablesPerLevel[1], 0, 'level 1 was compacted');
      assert.equal(engine.stats().tablesPerLevel[0], 1, 'level 0 was not');
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
      // A full compaction reads both: the tombstone wins and goes with the value it shadows.
      await engine.compact();
      assert.equal(describeRead(await engine.get(KEY)), 'absent');
    } finally {
      await engine.close();
    }
  });

  test('an older value in the live memtable keeps the tombstone', async () => {
    const store = await deletedStore();
    // The compaction planned at open fails once; the older put arrives during the backoff.
    let failures = 1;
    store.vfs.onTable = (path, flush) => {
      if (!flush && failures-- > 0) throw fsError('EIO', 'open', path);
    };
    const engine = await LsmEngine.open(store.options(LEVEL_1_FULL));
    try {
      await engine.write(valueEntry(KEY, OLD_VERSION, Buffer.from('old')));
      await compactionsSettle(engine, () => engine.stats().compactions > 0);
      assert.equal(engine.stats().compactionFailures, 1);
      assert.equal(engine.stats().tablesPerLevel[1], 0, 'level 1 was compacted');
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
      // Still deleted once the memtable is flushed, and after a full compaction.
      await engine.flush();
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
      await engine.compact();
      assert.notEqual(describeRead(await engine.get(KEY)), 'value "old"');
    } finally {
      await engine.close();
    }
  });

  test('an older value in a frozen memtable keeps the tombstone', async () => {
    const store = await deletedStore();
    // The compaction planned at open fails once; flushes fail until the compaction is done, so that
    // the older put waits in a frozen memtable when the compaction is planned again.
    let compactionFailures = 1;
    let flushesFail = true;
    store.vfs.onTable = (path, flush) => {
      if (flush ? flushesFail : compactionFailures-- > 0) throw fsError('EIO', 'open', path);
    };
    const engine = await LsmEngine.open(store.options(LEVEL_1_FULL));
    try {
      await engine.write(valueEntry(KEY, OLD_VERSION, Buffer.from('old')));
      await assert.rejects(engine.flush());
      assert.equal(engine.stats().immutableMemtables, 1);
      assert.equal(engine.stats().memtableBytes, 0);
      await compactionsSettle(engine, () => engine.stats().compactions > 0);
      assert.equal(engine.stats().immutableMemtables, 1, 'the memtable stayed frozen');
      assert.equal(engine.stats().tablesPerLevel[1], 0, 'level 1 was compacted');
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
      flushesFail = false;
      await engine.flush();
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
    } finally {
      await engine.close();
    }
  });

  test('an older value written while the compaction runs sets it aside; planned again, it keeps the tombstone', async () => {
    const store = await deletedStore();
    let engine: LsmEngine | undefined;
    let late: Promise<void> | undefined;
    const summaries: string[] = [];
    store.vfs.onTable = (_path, flush) => {
      // As the compaction writes its first output: the tombstone is read from its input until it installs.
      if (flush || late !== undefined || engine === undefined) return;
      late = engine.write(valueEntry(KEY, OLD_VERSION, Buffer.from('old')));
    };
    engine = await LsmEngine.open(store.options({ summary: (line) => summaries.push(line) }));
    try {
      await engine.compact();
      assert.ok(late !== undefined, 'the write came in during the compaction');
      await late;
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
      assert.ok(
        summaries.some((line) => line.startsWith('Set aside a compaction')),
        summaries.join('\n'),
      );
      assert.equal(engine.stats().compactionFailures, 0);
      await engine.flush();
      assert.equal(describeRead(await engine.get(KEY)), 'deleted');
    } finally {
      await engine.close();
    }
  });

  test('an older write arriving as the compaction installs is held until it has, then lands after it', async () => {
    const store = await deletedStore();
    const engine = await LsmEngine.open(store.options({}));
    let late: Promise<void> | undefined;
    let newer: Promise<void> | undefined;
    const memtableBytes: number[] = [];
    store.vfs.onManifest = () => {
      if (late !== undefined) return;
      late = engine.write(valueEntry(KEY, OLD_VERSION, Buffer.from('old')));
      memtableBytes.push(engine.stats().memtableBytes);
      // A newer write is not held.
      newer = engine.write(valueEntry(Buffer.from('b'), makeVersion(store.clock.now, 0), Buffer.from('new')));
      memtableBytes.push(engine.stats().memtableBytes);
    };
    try {
      await engine.compact();
      assert.ok(late !== undefined, 'the write came in as the compaction installed');
      assert.equal(memtableBytes[0], 0, 'the older write was held');
      assert.ok(memtableBytes[1]! > 0, 'the newer write went in at once');
      await late;
      await newer;
      // Written after the tombstone was collected, past its grace period: that is the grace contract.
      assert.equal(describeRead(await engine.get(KEY)), 'value "old"');
      assert.equal(describeRead(await engine.get(Buffer.from('b'))), 'value "new"');
    } finally {
      await engine.close();
    }
  });
});

describe('LSM compaction: reserved output file numbers', () => {
  test('a store written lz4 compacts with compression none', async () => {
    const vfs = new MemoryVfs();
    const base: LsmOpenOptions = {
      dir: '/data',
      vfs,
      sync: false,
      tableBytesTarget: 64 * 1024,
      levelBytesBase: 1 << 30,
      backgroundRetryMinMs: 20,
      backgroundRetryMaxMs: 20,
      log: () => {},
    };
    const value = Buffer.alloc(1000, '{"field":"value","n":1}');
    const key = (i: number) => Buffer.from(`key${String(i).padStart(6, '0')}`);
    let engine = await LsmEngine.open({ ...base, compression: 'lz4', compressionLevelMin: 0 });
    for (let i = 0; i < 1500; i++) await engine.write(valueEntry(key(i), makeVersion(T0, 0), value));
    await engine.compact();
    const lz4 = engine.stats();
    assert.ok(lz4.tableBytes < (1500 * 1000) / 10, `lz4 compressed the values (${lz4.tableBytes} bytes)`);
    await engine.close();

    engine = await LsmEngine.open({ ...base, compression: 'none' });
    try {
      await engine.write(valueEntry(Buffer.from('zzz'), makeVersion(T0, 0), value));
      await engine.compact();
      const none = engine.stats();
      assert.equal(none.compactionFailures, 0);
      assert.ok(none.tableBytes > 1500 * 1000, `stored raw now (${none.tableBytes} bytes)`);
      // Cut near the target, as if the reservation had been sized for raw tables.
      assert.ok(none.tablesPerLevel[1]! >= 20, `${none.tablesPerLevel[1]} tables`);
      for (const i of [0, 777, 1499]) assert.deepEqual((await engine.get(key(i)))?.value, value);
    } finally {
      await engine.close();
    }
  });
});

describe('LSM compaction: stopped by close() or by its caller', () => {
  const base = (vfs: HookedVfs): LsmOpenOptions => ({
    dir: '/data',
    vfs,
    sync: false,
    tableBytesTarget: 16 * 1024,
    l0CompactionTrigger: 100,
    levelBytesBase: 1 << 30,
    log: () => {},
  });
  const KEYS = 2000;
  const key = (i: number) => Buffer.from(`key${String(i).padStart(6, '0')}`);
  const value = (i: number) => Buffer.from(`value-${i}-${'v'.repeat(100)}`);
  /** Half the hash space, every version: a move's cleanup. */
  const HALF = { hashRanges: [0, 2 ** 31], versionMax: 1n << 62n };

  /** Four level-0 tables, every key in one of them; the store's table files. */
  async function fourTables(engine: LsmEngine, vfs: HookedVfs): Promise<string[]> {
    for (let t = 0; t < 4; t++) {
      for (let i = t; i < KEYS; i += 4) await engine.write(valueEntry(key(i), makeVersion(T0, 0), value(i)));
      await engine.flush();
    }
    assert.deepEqual(engine.stats().tablesPerLevel.slice(0, 2), [4, 0]);
    return tableFiles(vfs);
  }

  async function tableFiles(vfs: HookedVfs): Promise<string[]> {
    return (await vfs.list('/data')).filter((name) => name.endsWith('.sst')).sort();
  }

  async function everyKeyReads(engine: LsmEngine): Promise<void> {
    for (let i = 0; i < KEYS; i++) assert.deepEqual((await engine.get(key(i)))?.value, value(i), `key ${i}`);
  }

  test('close() during a purge stops it: the purge rejects with RINGKV_CLOSED, its outputs are deleted, the tables and every key stay', async () => {
    const vfs = new HookedVfs();
    let engine = await LsmEngine.open(base(vfs));
    const before = await fourTables(engine, vfs);
    let outputs = 0;
    let closing: Promise<void> | undefined;
    vfs.onTable = (_path, flush) => {
      // As the purge starts its second output table (of about a dozen): a node's shutdown.
      if (!flush && ++outputs === 2) closing = engine.close();
    };
    await assert.rejects(engine.purge(HALF), (err) => isRingkvError(err, 'RINGKV_CLOSED'));
    assert.ok(closing !== undefined, 'close() was called during the purge');
    await closing;
    assert.equal(outputs, 2, 'no output table was started after close()');
    assert.deepEqual(await tableFiles(vfs), before, 'its outputs deleted, its inputs kept');

    vfs.onTable = undefined;
    engine = await LsmEngine.open(base(vfs));
    try {
      assert.deepEqual(engine.stats().tablesPerLevel.slice(0, 2), [4, 0]);
      await everyKeyReads(engine);
    } finally {
      await engine.close();
    }
  });

  test('a purge whose signal aborts stops with its reason; nothing changes, and the engine goes on', async () => {
    const vfs = new HookedVfs();
    const engine = await LsmEngine.open(base(vfs));
    try {
      const before = await fourTables(engine, vfs);
      const abandon = new AbortController();
      let outputs = 0;
      vfs.onTable = (_path, flush) => {
        if (!flush && ++outputs === 2) abandon.abort(new RingkvError('RINGKV_CLOSED', 'Abandoned by a test'));
      };
      await assert.rejects(engine.purge(HALF, { signal: abandon.signal }), /Abandoned by a test/);
      assert.equal(outputs, 2, 'no output table was started after the abort');
      assert.deepEqual(await tableFiles(vfs), before, 'its outputs deleted, its inputs kept');
      assert.deepEqual(engine.stats().tablesPerLevel.slice(0, 2), [4, 0]);
      assert.equal(engine.stats().compactionFailures, 0, 'not a background failure');
      await everyKeyReads(engine);
      // An aborted signal stops the next purge before it starts.
      await assert.rejects(engine.purge(HALF, { signal: abandon.signal }), /Abandoned by a test/);
      assert.equal(outputs, 2);

      vfs.onTable = undefined;
      await engine.purge(HALF);
      assert.equal(engine.stats().tablesPerLevel[0], 0);
      const kept = await Promise.all(Array.from({ length: KEYS }, (_, i) => engine.get(key(i))));
      const count = kept.filter((entry) => entry !== undefined).length;
      assert.ok(count > KEYS / 4 && count < (KEYS * 3) / 4, `about half the keys stay (${count})`);
    } finally {
      await engine.close();
    }
  });
});
