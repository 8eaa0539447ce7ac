/**
 * Background work that fails does not stop the LSM engine for good: a
 * compaction that meets a damaged table block, or a flush that cannot write
 * its table, is logged, counted in stats() and retried after a backoff,
 * while the engine keeps serving; once the cause is gone, the work resumes.
 */
import assert from 'node:assert/strict';
import { open, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EntryKind, valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { CorruptionError, isRingkvError } from '../../src/util/errors.js';
import { tempDir } from '../support/temp-dir.js';

const key = (batch: string, i: number) => Buffer.from(`${batch}-${String(i).padStart(4, '0')}`);
const value = (batch: string, i: number) =>
  Buffer.from(`value-${batch}-${String(i).padStart(4, '0')}-${'z'.repeat(40)}`);

let version = 0n;
async function writeBatch(engine: LsmEngine, batch: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await engine.write(valueEntry(key(batch, i), ++version, value(batch, i)));
}

async function readsBack(engine: LsmEngine, batch: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const entry = await engine.get(key(batch, i));
    assert.equal(entry?.kind, EntryKind.Value, `${key(batch, i)}`);
    assert.deepEqual(entry.value, value(batch, i));
  }
}

/** Polls `done` every 10 ms, at most `limitMs`; fails with `what` if it never holds. */
async function until(what: string, done: () => boolean, limitMs = 10_000): Promise<void> {
  for (let waited = 0; !done(); waited += 10) {
    if (waited >= limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function tables(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((name) => name.endsWith('.sst'))
    .sort()
    .map((name) => join(dir, name));
}

/** Overwrites one byte in place (no truncation: the engine's open descriptors see the change). */
async function setByte(path: string, offset: number, byte: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(Buffer.from([byte]), 0, 1, offset);
  } finally {
    await handle.close();
  }
}

function options(dir: string, lines: string[], extra: Partial<LsmOpenOptions> = {}): LsmOpenOptions {
  return {
    dir,
    sync: false,
    blockBytes: 256,
    l0CompactionTrigger: 2,
    backgroundRetryMinMs: 10,
    backgroundRetryMaxMs: 40,
    log: (line) => lines.push(line),
    ...extra,
  };
}

describe('LSM engine: failed background work', () => {
  test('a compaction that meets a damaged block is logged, counted and retried; writes and flushes go on', async () => {
    const dir = await tempDir();
    const lines: string[] = [];
    // Blocks stored raw, so that the test finds a value by its text (compression.test.ts damages compressed ones).
    const engine = await LsmEngine.open(options(dir.path, lines, { compression: 'none' }));
    try {
      await writeBatch(engine, 'a', 200);
      await engine.flush();
      const [table] = await tables(dir.path);
      assert.ok(table !== undefined, 'the flush wrote a table');
      // Damage a value in a data block of the first table, before anything has read it.
      const bytes = await readFile(table);
      const at = bytes.indexOf('value-a-0100-') + 8;
      assert.ok(at > 8);
      const original = bytes[at]!;
      await setByte(table, at, original ^ 0xff);

      // A second table makes two at level 0: the compaction reads the damaged block.
      await writeBatch(engine, 'b', 200);
      await engine.flush();
      await until('a compaction failure', () => engine.stats().compactionFailures >= 1);
      const failed = lines.find((line) => line.startsWith('Compaction failed'));
      assert.ok(failed, `a log line: ${lines.join('\n')}`);
      assert.match(failed, /retrying in \d+ ms: Corruption in \S+\.sst at offset \d+/);
      assert.ok(failed.includes(table), `the line names ${table}: ${failed}`);
      assert.match(engine.stats().backgroundError ?? '', /Corruption in/);
      assert.equal(engine.stats().compactions, 0);

      // A read of the damaged block is a RINGKV_CORRUPTION naming the file; other keys read.
      await assert.rejects(engine.get(key('a', 100)), (err: unknown) => {
        assert.ok(err instanceof CorruptionError, String(err));
        assert.equal(err.code, 'RINGKV_CORRUPTION');
        assert.equal(err.file, table);
        assert.match(err.message, new RegExp(`^Corruption in \\S+ at offset ${err.offset}: data block`));
        return true;
      });
      await readsBack(engine, 'b', 200);

      // The engine keeps taking writes and flushing them, and tries the compaction again.
      const flushes = engine.stats().flushes;
      await writeBatch(engine, 'c', 200);
      await engine.flush();
      assert.equal(engine.stats().flushes, flushes + 1);
      await readsBack(engine, 'c', 200);
      await until('a retry', () => engine.stats().compactionFailures >= 2);
      // Asked for, the compaction fails with the same damage.
      await assert.rejects(engine.compact(), CorruptionError);

      // Once the block is whole again, a retry succeeds and the damage is behind.
      await setByte(table, at, original);
      // The count goes up before the compaction's inputs are deleted, and the error clears once they are.
      await until(
        'a compaction after the repair, and its error cleared',
        () => engine.stats().compactions >= 1 && engine.stats().backgroundError === undefined,
      );
      for (const batch of ['a', 'b', 'c']) await readsBack(engine, batch, 200);
    } finally {
      await engine.close();
      await dir.remove();
    }
  });

  test('a flush that cannot write its table is retried; writers that would wait for it are refused meanwhile', async () => {
    const dir = await tempDir();
    const lines: string[] = [];
    const engine = await LsmEngine.open(options(dir.path, lines, { memtableBytesMax: 4096 }));
    // Every table name the flushes could take is in use: each attempt fails to create its file.
    const blockers = Array.from({ length: 500 }, (_, i) =>
      join(dir.path, `${String(i + 1).padStart(6, '0')}.sst`),
    );
    try {
      await Promise.all(blockers.map((path) => writeFile(path, 'in the way')));
      let accepted = 0;
      let refused: unknown;
      for (let i = 0; i < 5000 && refused === undefined; i++) {
        try {
          await engine.write(valueEntry(key('f', i), ++version, value('f', i)));
          accepted++;
        } catch (err) {
          refused = err;
        }
      }
      assert.ok(isRingkvError(refused, 'RINGKV_IO'), `a write is refused: ${String(refused)}`);
      assert.match(refused.message, /memtables cannot be flushed to .*: .*EEXIST/);
      assert.ok(accepted > 0, 'writes were taken until the memtables were full');
      const stats = engine.stats();
      assert.ok(stats.flushFailures >= 1);
      assert.equal(stats.flushes, 0);
      assert.ok(lines.some((line) => /^Flush failed \(\d+ in a row\), retrying in \d+ ms: /.test(line)));
      await assert.rejects(engine.flush(), (err: unknown) => isRingkvError(err, 'RINGKV_IO'));
      // What was acknowledged still reads.
      await readsBack(engine, 'f', accepted);

      // The cause gone, a retry flushes, and writes are taken again.
      await Promise.all(blockers.map((path) => unlink(path)));
      // Every memtable frozen meanwhile flushed: one whose last attempt failed before the repair
      // waits for its retry, and until then a writer that would wait for it is still refused.
      await until('the frozen memtables flushed after the repair', () => {
        const stats = engine.stats();
        return stats.flushes >= 1 && stats.immutableMemtables === 0 && stats.backgroundError === undefined;
      });
      await writeBatch(engine, 'g', 100);
      await engine.flush();
      assert.equal(engine.stats().backgroundError, undefined);
      await readsBack(engine, 'f', accepted);
      await readsBack(engine, 'g', 100);
    } finally {
      await engine.close();
    }
    // Everything acknowledged is there after a restart.
    const again = await LsmEngine.open(options(dir.path, lines));
    try {
      await readsBack(again, 'g', 100);
      assert.equal((await again.get(key('f', 0)))?.kind, EntryKind.Value);
    } finally {
      await again.close();
      await dir.remove();
    }
  });
});
