/**
 * The LSM engine on a fault-injecting vfs: a full disk under the flushes,
 * a failed fsync under the write-ahead log, a log whose close record cannot
 * be written or synced. What was acknowledged is never lost, reads keep
 * working, and the errors are RINGKV_IO naming the cause.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EntryKind, valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine } from '../../src/storage/lsm-engine.js';
import {
  FaultyVfs,
  MemoryVfs,
  type OpenMode,
  type OpenOptions,
  type VfsFile,
} from '../../src/storage/vfs/index.js';
import { isRingkvError } from '../../src/util/errors.js';
import { faultTestOptions as options } from '../support/lsm-options.js';

const key = (i: number) => Buffer.from(`key-${String(i).padStart(5, '0')}`);
const value = (i: number) => Buffer.from(`value-${i}-${'v'.repeat(60)}`);

async function until(what: string, done: () => boolean, limitMs = 10_000): Promise<void> {
  for (let waited = 0; !done(); waited += 5) {
    if (waited >= limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function readsBack(engine: LsmEngine, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const entry = await engine.get(key(i));
    assert.equal(entry?.kind, EntryKind.Value, `key ${i}`);
    assert.deepEqual(entry.value, value(i));
  }
}

describe('LSM engine: injected faults', () => {
  test('disk full under the flushes: they fail and are retried, writers are refused once memtables are full, reads go on, and all resumes when space returns', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const engine = await LsmEngine.open(options(vfs));
    const full = vfs.inject({ op: 'write', path: /\.sst$/, error: 'ENOSPC' });
    let accepted = 0;
    let refused: unknown;
    for (let i = 0; i < 5000 && refused === undefined; i++) {
      try {
        await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
        accepted++;
      } catch (err) {
        refused = err;
      }
    }
    // A full disk has its own code (answered 507), and says so first.
    assert.ok(isRingkvError(refused, 'RINGKV_NO_SPACE'), String(refused));
    assert.match(
      refused.message,
      /^Disk full: Writes are held up: memtables cannot be flushed to \/data: .*ENOSPC/,
    );
    await assert.rejects(engine.flush(), {
      code: 'RINGKV_NO_SPACE',
      message: /^Disk full: Flush failed in \/data: /,
    });
    assert.ok(engine.stats().flushFailures >= 1);
    assert.ok(full.injected >= 1);
    await readsBack(engine, 0, accepted);

    full.remove();
    await until('a flush once space is back', () => engine.stats().flushes >= 1);
    for (let i = accepted; i < accepted + 100; i++) {
      await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    }
    await engine.close();
    const reopened = await LsmEngine.open(options(vfs));
    await readsBack(reopened, 0, accepted + 100);
    await reopened.close();
  });

  test('disk full under the log: its writes fail with RINGKV_NO_SPACE naming it, the next go to a new log once one can be made, and nothing acknowledged is lost', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const lines: string[] = [];
    const engine = await LsmEngine.open(
      options(vfs, { memtableBytesMax: 1 << 20, log: (line) => lines.push(line) }),
    );
    for (let i = 0; i < 10; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    // Only the logs' writes fail (a spare's zeros included); the tables' go on.
    const full = vfs.inject({ op: 'write', path: /\.log$/, error: 'ENOSPC' });
    await assert.rejects(engine.write(valueEntry(key(10), 11n, value(10))), (err: unknown) => {
      assert.ok(isRingkvError(err, 'RINGKV_NO_SPACE'), String(err));
      assert.match(err.message, /^Disk full: WAL write failed: \/data\/\d+\.log: ENOSPC/);
      return true;
    });
    // The next writes move to the spare, which fails too; then no new spare can be made, and writes are
    // refused at once. How many writes that takes depends on when the spare is ready.
    const refusals: string[] = [];
    for (let i = 100; !refusals.some((m) => m.startsWith('Disk full: Writes are refused')); i++) {
      assert.ok(i < 200, `no refusal for want of a new log: ${refusals.join('; ')}`);
      await assert.rejects(engine.write(valueEntry(key(i), BigInt(i + 1), value(i))), (err: unknown) => {
        assert.ok(isRingkvError(err, 'RINGKV_NO_SPACE'), String(err));
        refusals.push(err.message);
        return true;
      });
    }
    assert.match(
      refusals.at(-1)!,
      /^Disk full: Writes are refused until a new write-ahead log can be created in \/data: /,
    );
    await readsBack(engine, 0, 10);
    assert.ok(lines.some((line) => line.startsWith('Creating a write-ahead log failed')));

    full.remove();
    // Refused until the retry, after its backoff, makes a new log.
    for (let tries = 0; ; tries++) {
      const refused = await engine.write(valueEntry(key(20), 21n, value(20))).catch((err: unknown) => err);
      if (refused === undefined) break;
      assert.ok(isRingkvError(refused, 'RINGKV_NO_SPACE') && tries < 1000, String(refused));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    for (let i = 21; i < 30; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    assert.ok(
      lines.some((line) => /^Disk full: WAL write failed: .*; writes go on in a new log$/.test(line)),
    );
    // The memtables of the failed logs are flushed like any other, and their logs removed.
    await engine.flush();
    await engine.close();
    const reopened = await LsmEngine.open(options(vfs));
    await readsBack(reopened, 0, 10);
    await readsBack(reopened, 20, 30);
    assert.deepEqual(
      reopened.recovery.map((log) => log.closed),
      reopened.recovery.map(() => true),
    );
    await reopened.close();
  });

  test('a failed fdatasync of the log fails its writes with RINGKV_IO; what was acknowledged before stays', async () => {
    // Without O_DSYNC the log fdatasyncs after each batch.
    const vfs = new FaultyVfs(new MemoryVfs({ dsync: false }));
    const engine = await LsmEngine.open(options(vfs, { memtableBytesMax: 1 << 20 }));
    for (let i = 0; i < 10; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    vfs.inject({ op: 'fdatasync', path: /\.log$/, times: 1 });
    await assert.rejects(engine.write(valueEntry(key(10), 11n, value(10))), (err: unknown) => {
      assert.ok(isRingkvError(err, 'RINGKV_IO'), String(err));
      assert.match(err.message, /^WAL fdatasync failed: \/data\/\d+\.log: EIO/);
      return true;
    });
    // Nobody knows what reached the log: it takes nothing more (wal/writer.ts).
    await assert.rejects(engine.write(valueEntry(key(11), 12n, value(11))), { code: 'RINGKV_IO' });
    await readsBack(engine, 0, 10);
    // Nor does it get its close record: close() says so.
    await assert.rejects(engine.close(), { code: 'RINGKV_IO', message: /write-ahead log \/data\/\d+\.log/ });
    const reopened = await LsmEngine.open(options(vfs));
    await readsBack(reopened, 0, 10);
    await reopened.write(valueEntry(key(12), 13n, value(12)));
    await reopened.close();
  });

  for (const op of ['write', 'fsync'] as const) {
    test(`a failed ${op} of a log's close record: close() rejects naming the log, after releasing the rest`, async () => {
      const vfs = new FaultyVfs(new MemoryVfs());
      const engine = await LsmEngine.open(options(vfs, { memtableBytesMax: 1 << 20 }));
      for (let i = 0; i < 10; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
      // The live log is the oldest one; the spare made after it waits for the next rotation.
      const logs = (await vfs.list('/data')).filter((name) => name.endsWith('.log')).sort();
      const live = `/data/${logs[0]}`;
      const fault = vfs.inject({ op, path: live, times: 1 });
      await assert.rejects(engine.close(), (err: unknown) => {
        assert.ok(isRingkvError(err, 'RINGKV_IO'), String(err));
        assert.ok(err.message.startsWith(`Cannot close the write-ahead log ${live} cleanly`), err.message);
        assert.match(err.message, new RegExp(`WAL ${op} failed: .*EIO`));
        return true;
      });
      assert.equal(fault.injected, 1);
      await assert.rejects(engine.get(key(0)), { code: 'RINGKV_CLOSED' });
      // Closed all the same: a second close() has nothing left to do, and the directory opens again.
      await engine.close();
      const reopened = await LsmEngine.open(options(vfs));
      await readsBack(reopened, 0, 10);
      // The other log (the spare) was closed all the same.
      assert.equal(reopened.recovery.length, 2);
      assert.equal(reopened.recovery[1]?.closed, true);
      // Without its close record the log is read as one a crash left (a failed fsync may have kept it).
      if (op === 'write') {
        assert.equal(reopened.recovery[0]?.file, live);
        assert.equal(reopened.recovery[0]?.closed, false);
      }
      await reopened.close();
    });
  }
});

describe('LSM engine: a MANIFEST renamed into place whose directory fsync fails', () => {
  /** Fails the directory fsync that follows the next rename of MANIFEST.tmp, once. */
  function failDirSyncAfterManifestRename(vfs: FaultyVfs): void {
    let renamed = false;
    vfs.inject({
      op: 'rename',
      path: (path) => {
        if (path.endsWith('MANIFEST.tmp')) renamed = true;
        return false;
      },
    });
    vfs.inject({ op: 'syncDir', path: () => renamed, times: 1 });
  }

  test('a flush: the table the renamed MANIFEST names is kept, and the store opens with every write', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const engine = await LsmEngine.open(options(vfs, { memtableBytesMax: 1 << 20 }));
    for (let i = 0; i < 20; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    failDirSyncAfterManifestRename(vfs);
    await assert.rejects(engine.flush(), { code: 'RINGKV_IO' });
    // Killed now: the MANIFEST on disk may be the new one.
    await engine.crashForTest();
    vfs.clear();
    const reopened = await LsmEngine.open(options(vfs));
    await readsBack(reopened, 0, 20);
    await reopened.close();
  });

  test('a compaction: neither its outputs nor its inputs are deleted, and the store opens with every write', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const engine = await LsmEngine.open(options(vfs, { memtableBytesMax: 1 << 20, l0CompactionTrigger: 8 }));
    for (let i = 0; i < 20; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    await engine.flush();
    for (let i = 20; i < 40; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    await engine.flush();
    failDirSyncAfterManifestRename(vfs);
    await assert.rejects(engine.compact(), { code: 'RINGKV_IO' });
    await engine.crashForTest();
    vfs.clear();
    const reopened = await LsmEngine.open(options(vfs));
    await readsBack(reopened, 0, 40);
    await reopened.close();
  });

  for (const damage of ['missing', 'damaged'] as const) {
    test(`a MANIFEST naming a ${damage} table stops the open before any table it does not list is deleted`, async () => {
      const vfs = new FaultyVfs(new MemoryVfs());
      const engine = await LsmEngine.open(
        options(vfs, { memtableBytesMax: 1 << 20, l0CompactionTrigger: 8 }),
      );
      for (let i = 0; i < 20; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
      await engine.flush();
      await engine.close();
      const [table] = (await vfs.list('/data')).filter((name) => name.endsWith('.sst'));
      assert.ok(table !== undefined);
      const bytes = await vfs.readFile(`/data/${table}`);
      // A table the MANIFEST does not list, as a crash around a MANIFEST edit can leave one.
      const copy = await vfs.open('/data/999999.sst', 'wx');
      await copy.write(bytes, 0, bytes.length, 0);
      await copy.close();
      if (damage === 'missing') {
        await vfs.remove(`/data/${table}`);
      } else {
        const listed = await vfs.open(`/data/${table}`, 'r+');
        await listed.truncate(bytes.length - 1);
        await listed.close();
      }
      await assert.rejects(LsmEngine.open(options(vfs)), (err: unknown) => {
        assert.ok(isRingkvError(err, 'RINGKV_CORRUPTION'), String(err));
        assert.ok(err.message.startsWith(`Corruption in /data/${table} at offset `), err.message);
        return true;
      });
      assert.ok((await vfs.list('/data')).includes('999999.sst'), 'the unlisted table is kept');
    });
  }

  test('a directory of tables with no MANIFEST is refused, naming it, and no table is deleted', async () => {
    const vfs = new FaultyVfs(new MemoryVfs());
    const engine = await LsmEngine.open(options(vfs, { memtableBytesMax: 1 << 20 }));
    for (let i = 0; i < 20; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
    await engine.flush();
    await engine.close();
    const tables = (await vfs.list('/data')).filter((name) => name.endsWith('.sst'));
    assert.ok(tables.length > 0);
    // A MANIFEST lost (or a restore cut short before it): the tables hold every acknowledged write.
    await vfs.remove('/data/MANIFEST');
    await assert.rejects(LsmEngine.open(options(vfs)), (err: unknown) => {
      assert.ok(isRingkvError(err, 'RINGKV_CORRUPTION'), String(err));
      assert.match(
        err.message,
        /^Corruption in \/data\/MANIFEST at offset 0: missing, but the directory holds \d+ tables?/,
      );
      return true;
    });
    assert.deepEqual(
      (await vfs.list('/data')).filter((name) => name.endsWith('.sst')),
      tables,
      'every table is kept',
    );
  });
});

/** A FaultyVfs that knows which files are open. */
class OpenFilesVfs extends FaultyVfs {
  readonly #open = new Set<VfsFile>();

  get openFiles(): string[] {
    return [...this.#open].map((file) => file.path);
  }

  override async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<VfsFile> {
    const file = await super.open(path, mode, options);
    this.#open.add(file);
    const close = file.close.bind(file);
    file.close = async () => {
      this.#open.delete(file);
      await close();
    };
    return file;
  }
}

test('an open that fails after it created its new log closes that log', async () => {
  const vfs = new OpenFilesVfs(new MemoryVfs());
  const engine = await LsmEngine.open(options(vfs, { memtableBytesMax: 1 << 20 }));
  for (let i = 0; i < 10; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
  await engine.close();
  const fault = vfs.inject({ op: 'rename', path: 'MANIFEST.tmp', times: 1 });
  await assert.rejects(LsmEngine.open(options(vfs)), { code: 'EIO' });
  assert.equal(fault.injected, 1);
  assert.deepEqual(vfs.openFiles, []);
  const reopened = await LsmEngine.open(options(vfs));
  await readsBack(reopened, 0, 10);
  await reopened.close();
});
