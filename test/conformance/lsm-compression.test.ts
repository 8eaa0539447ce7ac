/**
 * Which tables the engine compresses: those written into
 * compressionLevelMin (limits: 2) and deeper, with the configured codec;
 * flushes and shallower levels are written raw, as each table's footer
 * records (the rule at every level: src/storage/lsm/options.test.ts). A
 * store keeps reading tables of every codec when the codec changes between
 * opens.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { BlockCompression } from '../../src/config/compression.js';
import { valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine } from '../../src/storage/lsm-engine.js';
import { Codec } from '../../src/storage/sstable/format.js';
import { TINY } from '../support/lsm-options.js';
import { tempDir } from '../support/temp-dir.js';

const FOOTER_BYTES = 64;
const CODEC_AT = 30;

/** The codec byte of every table in `dir`. */
async function tableCodecs(dir: string): Promise<number[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.sst'));
  const codecs: number[] = [];
  for (const name of names) {
    const bytes = await readFile(join(dir, name));
    codecs.push(bytes[bytes.length - FOOTER_BYTES + CODEC_AT]!);
  }
  return codecs;
}

const key = (i: number) => Buffer.from(`key-${String(i).padStart(5, '0')}`);
const value = (i: number) =>
  Buffer.from(JSON.stringify({ id: i, status: 'shipped', city: 'Lisbon', n: i % 7 }));

describe('LSM engine: block compression by level', () => {
  test('flushes write raw tables, a compaction into compressionLevelMin compressed ones', async () => {
    const dir = await tempDir();
    // Everything stays in the memtable until flush(); then compact() merges it into level 1, and stays
    // there: no level is ever over its size, so no compaction runs but those the test asks for, and the
    // directory holds only finished tables when it is read. (With TINY's level sizes, compactions down the
    // levels went on in the background after compact(), and a table read here could be deleted or still
    // empty.)
    const options = {
      ...TINY,
      memtableBytesMax: 1 << 20,
      l0CompactionTrigger: 100,
      levelBytesBase: 1 << 30,
      compressionLevelMin: 1,
    };
    let engine = await LsmEngine.open({ dir: dir.path, sync: false, ...options });
    try {
      for (let i = 0; i < 3000; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
      await engine.flush();
      assert.deepEqual(await tableCodecs(dir.path), [Codec.none], 'a flush writes a raw table');
      await engine.compact();
      assert.equal(engine.stats().tablesPerLevel[0], 0);
      assert.deepEqual(new Set(await tableCodecs(dir.path)), new Set([Codec.lz4]));
      await engine.write(valueEntry(key(3000), 3001n, value(3000)));
      await engine.flush();
      assert.deepEqual(new Set(await tableCodecs(dir.path)), new Set([Codec.lz4, Codec.none]));
      // The one compaction asked for, and none of the engine's own.
      assert.equal(engine.stats().compactions, 1);

      // Reopened with another codec, the store reads its lz4 tables and writes deflate ones.
      await engine.close();
      engine = await LsmEngine.open({ dir: dir.path, sync: false, ...options, compression: 'deflate' });
      for (let i = 0; i <= 3000; i += 7) assert.deepEqual((await engine.get(key(i)))?.value, value(i));
      await engine.compact();
      assert.deepEqual(new Set(await tableCodecs(dir.path)), new Set([Codec.deflate]));
      for (let i = 0; i <= 3000; i += 7) assert.deepEqual((await engine.get(key(i)))?.value, value(i));
    } finally {
      await engine.close();
      await dir.remove();
    }
  });

  for (const compression of ['none', 'lz4', 'deflate'] as const satisfies readonly BlockCompression[]) {
    test(`compressionLevelMin 0 compresses flushes too (${compression})`, async () => {
      const dir = await tempDir();
      const engine = await LsmEngine.open({
        dir: dir.path,
        sync: false,
        ...TINY,
        memtableBytesMax: 1 << 20,
        compression,
        compressionLevelMin: 0,
      });
      try {
        for (let i = 0; i < 200; i++) await engine.write(valueEntry(key(i), BigInt(i + 1), value(i)));
        await engine.flush();
        assert.deepEqual(new Set(await tableCodecs(dir.path)), new Set([Codec[compression]]));
        for (let i = 0; i < 200; i++) assert.deepEqual((await engine.get(key(i)))?.value, value(i));
      } finally {
        await engine.close();
        await dir.remove();
      }
    });
  }
});
