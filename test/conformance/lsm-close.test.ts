/**
 * close() does not wait for a full compaction, which rewrites the whole store
 * (a move's cleanup purges with one): on the real file system, where it runs
 * in a worker thread, close() stops it part-way; what it wrote is deleted,
 * its input tables stay, and every key is there at the next open.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { test } from 'node:test';
import { valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { isRingkvError } from '../../src/util/errors.js';
import { tempDir } from '../support/temp-dir.js';

const KEYS = 10_000;
const key = (i: number) => Buffer.from(`key-${String(i).padStart(8, '0')}`);
const value = (i: number) => Buffer.alloc(1000, `value-${i}-`);

async function tableFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.sst')).sort();
}

test('close() during a purge stops its compaction part-way: the purge rejects with RINGKV_CLOSED, the tables and every key stay', async () => {
  const dir = await tempDir();
  // Small output tables, so that the first appears early in a compaction of about 10 MB.
  const options: LsmOpenOptions = {
    dir: dir.path,
    sync: false,
    tableBytesTarget: 64 * 1024,
    l0CompactionTrigger: 100,
    levelBytesBase: 1 << 30,
    log: () => {},
  };
  try {
    let engine = await LsmEngine.open(options);
    for (let i = 0; i < KEYS; i += 500) {
      const batch = [];
      for (let j = i; j < i + 500; j++) batch.push(engine.write(valueEntry(key(j), BigInt(1 + j), value(j))));
      await Promise.all(batch);
    }
    await engine.flush();
    const levels = engine.stats().tablesPerLevel;
    const before = await tableFiles(dir.path);

    // Half the hash space, as a move's cleanup drops.
    const purge = engine.purge({ hashRanges: [0, 2 ** 31], versionMax: 1n << 62n }).then(
      () => 'completed',
      (err: unknown) => err,
    );
    // Once its first output table is on disk, with the rest of the store still to rewrite: a node's shutdown.
    for (let polls = 0; (await tableFiles(dir.path)).every((name) => before.includes(name)); polls++) {
      assert.ok(polls < 5000, 'the purge wrote no table');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await engine.close();
    const outcome = await purge;
    assert.ok(isRingkvError(outcome, 'RINGKV_CLOSED'), `the purge was stopped, not ${String(outcome)}`);
    assert.deepEqual(await tableFiles(dir.path), before, 'its outputs deleted, its inputs kept');

    engine = await LsmEngine.open(options);
    try {
      assert.deepEqual(engine.stats().tablesPerLevel, levels);
      for (let i = 0; i < KEYS; i++)
        assert.deepEqual((await engine.get(key(i)))?.value, value(i), `key ${i}`);
    } finally {
      await engine.close();
    }
  } finally {
    await dir.remove();
  }
});
