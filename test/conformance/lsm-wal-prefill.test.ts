/**
 * With sync on, the engine's logs are filled with zeros ahead of use (one
 * memtable's worth), records overwrite them, and a reopened engine reads
 * the records back from the zero-tailed files. With sync off nothing is
 * prefilled.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine } from '../../src/storage/lsm-engine.js';
import { FILE_HEADER_BYTES } from '../../src/storage/wal/format.js';
import { tempDir } from '../support/temp-dir.js';

const MEMTABLE_BYTES = 64 * 1024;

async function logSizes(dir: string): Promise<number[]> {
  const logs = (await readdir(dir)).filter((name) => name.endsWith('.log')).sort();
  return Promise.all(logs.map(async (name) => (await stat(join(dir, name))).size));
}

describe('LSM engine WAL prefill', () => {
  test('sync on: the live log is prefilled, and its records survive a reopen', async () => {
    const dir = await tempDir();
    try {
      const entries = Array.from({ length: 20 }, (_, i) =>
        valueEntry(Buffer.from(`key-${i}`), BigInt(i + 1), Buffer.from(`value-${i}`)),
      );
      let engine = await LsmEngine.open({ dir: dir.path, sync: true, memtableBytesMax: MEMTABLE_BYTES });
      try {
        await Promise.all(entries.map((e) => engine.write(e)));
        // The live log is the oldest; a spare for the next memtable may still be in the making.
        const [live] = await logSizes(dir.path);
        assert.equal(live, FILE_HEADER_BYTES + MEMTABLE_BYTES);
      } finally {
        await engine.close();
      }

      engine = await LsmEngine.open({ dir: dir.path, sync: true, memtableBytesMax: MEMTABLE_BYTES });
      try {
        for (const e of entries) assert.deepEqual((await engine.get(e.key))?.value, e.value);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('close cuts a spare prefill short, and the next open reads past the half-filled spare', async () => {
    const dir = await tempDir();
    // 16 MiB at 64 KiB a chunk with 10 ms rests: seconds, unless close stops it.
    const big = 16 * 1024 * 1024;
    try {
      let engine = await LsmEngine.open({ dir: dir.path, sync: true, memtableBytesMax: big });
      await engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
      await engine.close();
      const sizes = await logSizes(dir.path);
      assert.equal(sizes.length, 2, 'the live log and the spare');
      assert.equal(sizes[0], FILE_HEADER_BYTES + big, 'the first log is prefilled whole at open');
      assert.ok(sizes[1]! < FILE_HEADER_BYTES + big, `the spare's prefill was cut short: ${sizes[1]} bytes`);

      engine = await LsmEngine.open({ dir: dir.path, sync: true, memtableBytesMax: MEMTABLE_BYTES });
      try {
        assert.deepEqual((await engine.get(Buffer.from('k')))?.value, Buffer.from('v'));
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });

  test('sync off: logs are not prefilled', async () => {
    const dir = await tempDir();
    try {
      const engine = await LsmEngine.open({ dir: dir.path, sync: false, memtableBytesMax: MEMTABLE_BYTES });
      try {
        await engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
        const sizes = await logSizes(dir.path);
        assert.ok(sizes.length >= 1);
        for (const size of sizes)
          assert.ok(size < 1024, `expected small logs, got ${sizes.join(', ')} bytes`);
      } finally {
        await engine.close();
      }
    } finally {
      await dir.remove();
    }
  });
});
