import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TINY } from '../../test/support/lsm-options.js';
import { tempDir } from '../../test/support/temp-dir.js';
import { murmur3 } from '../util/hash.js';
import type { Engine } from './engine.js';
import { type Entry, tombstoneEntry, valueEntry } from './entry/entry.js';
import { makeVersion } from './entry/version.js';
import { LsmEngine } from './lsm-engine.js';
import { MemoryEngine } from './memory-engine.js';
import { type PurgeFilter, purged } from './purge.js';

const HALF = 2 ** 31;
/** Recent versions, so that compaction keeps tombstones (their grace period has not passed). */
const NOW_MS = Date.now();
/** The lower half of the hash space, every version written before NOW_MS + 1 s. */
const LOWER: PurgeFilter = { hashRanges: [0, HALF], versionMax: makeVersion(NOW_MS + 1000, 0) };

function hashOf(key: string): number {
  return murmur3(Buffer.from(key), 0);
}

async function keysOf(engine: Engine): Promise<string[]> {
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  const keys: string[] = [];
  for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
    for (const entry of batch) keys.push(entry.key.toString());
  }
  await cursor.close();
  return keys;
}

describe('purge', () => {
  test('purged(): ranges are [start, end), several of them, and the version bound holds', () => {
    const key = Buffer.from('some-key');
    const hash = murmur3(key, 0);
    const at = (ranges: number[], versionMax = 10n) =>
      purged({ hashRanges: ranges, versionMax }, key, 0, key.length, 5n);
    assert.equal(at([hash, hash + 1]), true);
    assert.equal(at([0, hash]), false, 'end excluded');
    assert.equal(at([hash + 1, 2 ** 32]), false);
    assert.equal(at([0, 1, hash - 1 > 1 ? hash - 1 : 2, hash + 1, 2 ** 32 - 1, 2 ** 32]), true);
    assert.equal(at([0, 2 ** 32], 4n), false, 'a newer version stays');
    assert.equal(at([]), false);
  });

  const engines: [
    string,
    () => Promise<{ engine: Engine; reopen?: () => Promise<Engine>; close(): Promise<void> }>,
  ][] = [
    ['MemoryEngine', async () => ({ engine: new MemoryEngine(), close: async () => {} })],
    [
      'LsmEngine, tiny limits',
      async () => {
        const dir = await tempDir('ringkv-purge-');
        const open = () => LsmEngine.open({ dir: dir.path, sync: false, ...TINY, log: () => {} });
        return { engine: await open(), reopen: open, close: () => dir.remove() };
      },
    ],
  ];
  for (const [name, make] of engines) {
    test(`${name}: drops what the filter names, keeps the rest and what is newer`, async () => {
      const { engine, reopen, close } = await make();
      const entries: Entry[] = [];
      for (let i = 0; i < 600; i++) {
        const key = Buffer.from(`key-${i}`);
        const version = makeVersion(NOW_MS, i);
        entries.push(i % 7 === 0 ? tombstoneEntry(key, version) : valueEntry(key, version, key));
      }
      for (const entry of entries) await engine.write(entry);
      // A key of the lower half written again above the bound: it stays.
      const kept = entries.map((e) => e.key.toString()).find((k) => hashOf(k) < HALF)!;
      await engine.write(valueEntry(Buffer.from(kept), makeVersion(NOW_MS + 5000, 0), Buffer.from('newer')));
      const expected = entries
        .map((e) => e.key.toString())
        .filter((k) => hashOf(k) >= HALF || k === kept)
        .sort();
      try {
        await engine.purge!(LOWER);
        assert.deepEqual((await keysOf(engine)).sort(), expected);
        assert.equal((await engine.get(Buffer.from(kept)))?.value.toString(), 'newer');
      } catch (err) {
        await engine.close();
        await close();
        throw err;
      }
      if (reopen !== undefined) {
        await engine.close();
        const again = await reopen();
        assert.deepEqual((await keysOf(again)).sort(), expected, 'purged for good: not back after a restart');
        await again.close();
      } else {
        await engine.close();
      }
      await close();
    });
  }

  test('LsmEngine: no older version of a purged key comes back, wherever its newer one was (levels, level 0, memtable)', async () => {
    const dir = await tempDir('ringkv-purge-');
    // No flush or compaction but those the test asks for: each version stays where it is put.
    const open = () =>
      LsmEngine.open({
        dir: dir.path,
        sync: false,
        ...TINY,
        memtableBytesMax: 1 << 20,
        l0CompactionTrigger: 100,
        levelBytesBase: 1 << 30,
        log: () => {},
      });
    const old = makeVersion(NOW_MS - 1000, 0);
    const newer = makeVersion(NOW_MS, 0);
    /** Past the tombstone grace period: a compaction may age such a tombstone out. */
    const aged = makeVersion(NOW_MS - 30 * 24 * 3600 * 1000, 0);
    const above = makeVersion(NOW_MS + 5000, 0);
    // Each case: the key's older version, at the bottom of the tree; its newer one, and where that one goes.
    type Case = {
      name: string;
      first: bigint;
      newest: (key: Buffer) => Entry;
      where: 'level 0' | 'memtable';
      /** Kept, but a compaction may age it out (with the version it shadows): absent is right too. */
      agesOut?: boolean;
    };
    const cases: Case[] = [
      { name: 'value', first: old, newest: (k) => valueEntry(k, newer, Buffer.from('v2')), where: 'level 0' },
      {
        name: 'value-mem',
        first: old,
        newest: (k) => valueEntry(k, newer, Buffer.from('v2')),
        where: 'memtable',
      },
      { name: 'delete', first: old, newest: (k) => tombstoneEntry(k, newer), where: 'level 0' },
      { name: 'delete-mem', first: old, newest: (k) => tombstoneEntry(k, newer), where: 'memtable' },
      {
        name: 'aged-delete',
        first: aged - 1n,
        newest: (k) => tombstoneEntry(k, aged),
        where: 'level 0',
        agesOut: true,
      },
      {
        name: 'above',
        first: old,
        newest: (k) => valueEntry(k, above, Buffer.from('above')),
        where: 'memtable',
      },
      { name: 'delete-above', first: old, newest: (k) => tombstoneEntry(k, above), where: 'level 0' },
    ];
    // Several keys per case on each side of the purged range.
    const keys = new Map<string, Case>();
    for (const c of cases) {
      let lower = 0;
      let upper = 0;
      for (let i = 0; lower < 5 || upper < 5; i++) {
        const key = `${c.name}-${i}`;
        if (hashOf(key) < HALF ? lower++ < 5 : upper++ < 5) keys.set(key, c);
      }
    }
    /** What a read must give for `key` after the purge: purged (undefined), or its newer version. */
    const expected = (key: string): Entry | undefined => {
      const c = keys.get(key)!;
      const entry = c.newest(Buffer.from(key));
      return hashOf(key) < HALF && entry.version <= LOWER.versionMax ? undefined : entry;
    };
    const check = async (engine: Engine, when: string): Promise<void> => {
      const wrong: string[] = [];
      for (const key of keys.keys()) {
        const want = expected(key);
        const got = await engine.get(Buffer.from(key));
        if (got === undefined && keys.get(key)!.agesOut === true) continue;
        if (got?.version !== want?.version || got?.kind !== want?.kind) {
          wrong.push(`${key}: ${got === undefined ? 'absent' : `${got.kind}@${got.version}`}`);
        }
      }
      assert.deepEqual(wrong, [], `get() ${when}`);
      const ageless = (k: string) => keys.get(k)!.agesOut !== true;
      const wanted = [...keys.keys()].filter((k) => ageless(k) && expected(k) !== undefined).sort();
      const scanned = (await keysOf(engine)).filter(ageless).sort();
      assert.deepEqual(scanned, wanted, `scan() ${when}`);
    };

    let engine: Engine = await open();
    try {
      for (const [key, c] of keys)
        await engine.write(valueEntry(Buffer.from(key), c.first, Buffer.from('v1')));
      await engine.compact();
      for (const [key, c] of keys) if (c.where === 'level 0') await engine.write(c.newest(Buffer.from(key)));
      await engine.flush();
      for (const [key, c] of keys) if (c.where === 'memtable') await engine.write(c.newest(Buffer.from(key)));
      await engine.purge!(LOWER);
      await check(engine, 'after the purge');
      await engine.compact();
      await check(engine, 'after a compaction');
      await engine.close();
      engine = await open();
      await check(engine, 'after a restart');
      await engine.compact();
      await check(engine, 'after a restart and a compaction');
      // A purge is no read-time filter: the range handed back, what is streamed in (old versions) is seen.
      const back = [...keys.keys()].find((k) => hashOf(k) < HALF)!;
      await engine.write(valueEntry(Buffer.from(back), old, Buffer.from('back')));
      assert.equal((await engine.get(Buffer.from(back)))?.value.toString(), 'back');
    } finally {
      await engine.close();
      await dir.remove();
    }
  });
});
