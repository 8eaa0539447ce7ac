import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../test/support/property.js';
import { compareBytes } from '../util/bytes.js';
import { isRingkvError } from '../util/errors.js';
import { valueEntry } from './entry/entry.js';
import { filePath } from './files.js';
import { type TableInfo, Version } from './manifest/version.js';
import { BlockCache, TableReader, TableWriter } from './sstable/index.js';
import { TreeState } from './tree-state.js';

function info(fileNumber: number, smallest: string | Buffer, largest: string | Buffer): TableInfo {
  return {
    fileNumber,
    fileBytes: 100,
    entryCount: 1,
    smallestKey: Buffer.from(smallest),
    largestKey: Buffer.from(largest),
    minVersion: 1n,
    maxVersion: 1n,
  };
}

/** Stands in for a TableReader where only the reference count matters. */
class CountingReader {
  refs = 0;
  ref(): void {
    this.refs++;
  }
  unref(): void {
    assert.ok(this.refs > 0, 'unref() without a matching ref()');
    this.refs--;
  }
}

function countingReaders(tables: readonly TableInfo[]): Map<number, CountingReader> {
  return new Map(tables.map((t) => [t.fileNumber, new CountingReader()]));
}

const asReaders = (readers: ReadonlyMap<number, CountingReader>) =>
  readers as unknown as ReadonlyMap<number, TableReader>;

function versionOf(levelCount: number, tables: readonly { level: number; table: TableInfo }[]): Version {
  return Version.empty(levelCount).apply({ removed: [], added: [...tables] });
}

const isClosed = (err: unknown) => isRingkvError(err, 'RINGKV_CLOSED');

describe('TreeState with table readers', () => {
  let dir: string;
  const cache = new BlockCache(1 << 20);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ringkv-tree-state-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes table `fileNumber` holding `keys` (value `key@fileNumber`) and opens a reader on it. */
  async function makeTable(
    fileNumber: number,
    keys: string[],
  ): Promise<{ table: TableInfo; reader: TableReader }> {
    const path = filePath(dir, fileNumber, 'sst');
    const writer = new TableWriter(path, fileNumber, { blockBytes: 4096, bloomBitsPerKey: 10 });
    for (const key of keys) {
      writer.add(valueEntry(Buffer.from(key), BigInt(fileNumber), Buffer.from(`${key}@${fileNumber}`)));
    }
    const table = writer.finish();
    return { table, reader: await TableReader.open(path, fileNumber, cache) };
  }

  const readValue = async (reader: TableReader, key: string) =>
    (await reader.get(Buffer.from(key)))?.value.toString();

  it('keeps a replaced table readable until the last state that lists it is released', async () => {
    const t1 = await makeTable(1, ['a', 'b']);
    const t2 = await makeTable(2, ['c', 'd']);
    const v1 = versionOf(2, [
      { level: 0, table: t1.table },
      { level: 1, table: t2.table },
    ]);
    const old = new TreeState(
      v1,
      new Map([
        [1, t1.reader],
        [2, t2.reader],
      ]),
    );
    // A scan holds the state it started on.
    const scan = old.ref();
    assert.equal(scan, old);

    // A compaction replaces table 1 by table 3, as the engine installs an edit.
    const t3 = await makeTable(3, ['a', 'b']);
    const v2 = v1.apply({ removed: [1], added: [{ level: 1, table: t3.table }] });
    const readers = new Map(old.readers);
    readers.set(3, t3.reader);
    readers.delete(1);
    const current = new TreeState(v2, readers);
    old.release();
    // The engine closes the removed reader; it resolves at once while the scan still holds it.
    await t1.reader.close();

    assert.equal(await readValue(scan.reader(t1.table), 'a'), 'a@1');
    const cursor = scan.reader(t1.table).cursor(Buffer.from('a'));
    assert.deepEqual(
      (await cursor.next())?.map((e) => e.key.toString()),
      ['a', 'b'],
    );
    await cursor.close();

    scan.release();
    await assert.rejects(t1.reader.get(Buffer.from('a')), isClosed);
    assert.throws(() => t1.reader.cursor(Buffer.from('a')), isClosed);

    // The tables the new state lists stay open.
    assert.equal(await readValue(current.reader(t2.table), 'c'), 'c@2');
    assert.equal(await readValue(current.reader(t3.table), 'b'), 'b@3');

    // Released but not yet closed by the engine: still open. Closed too: released.
    current.release();
    assert.equal(await readValue(t2.reader, 'd'), 'd@2');
    await Promise.all([t2.reader.close(), t3.reader.close()]);
    await assert.rejects(t2.reader.get(Buffer.from('d')), isClosed);
    await assert.rejects(t3.reader.get(Buffer.from('a')), isClosed);
  });

  it('a table listed by two states stays open until both are released', async () => {
    const t4 = await makeTable(4, ['k']);
    const v = versionOf(2, [{ level: 1, table: t4.table }]);
    const readers = new Map([[4, t4.reader]]);
    const first = new TreeState(v, readers);
    const second = new TreeState(v, readers);
    await t4.reader.close();
    first.release();
    assert.equal(await readValue(t4.reader, 'k'), 'k@4');
    second.release();
    await assert.rejects(t4.reader.get(Buffer.from('k')), isClosed);
  });
});

describe('TreeState references', () => {
  const tables = [info(1, 'a', 'c'), info(2, 'd', 'f'), info(3, 'a', 'z')];
  const version = versionOf(2, [
    { level: 1, table: tables[0]! },
    { level: 1, table: tables[1]! },
    { level: 0, table: tables[2]! },
  ]);

  it('takes one reference on each reader of its version, and gives them back at the last release only', () => {
    const readers = countingReaders(tables);
    const state = new TreeState(version, asReaders(readers));
    const refs = () => [...readers.values()].map((r) => r.refs);
    assert.deepEqual(refs(), [1, 1, 1]);
    state.ref();
    state.ref();
    assert.deepEqual(refs(), [1, 1, 1]);
    state.release();
    state.release();
    assert.deepEqual(refs(), [1, 1, 1]);
    state.release();
    assert.deepEqual(refs(), [0, 0, 0]);
  });

  it('leaves readers of tables outside its version alone', () => {
    const readers = countingReaders([...tables, info(9, 'x', 'y')]);
    const state = new TreeState(version, asReaders(readers));
    assert.equal(readers.get(9)!.refs, 0);
    state.release();
    assert.equal(readers.get(9)!.refs, 0);
  });

  it('refuses a release too many and a ref after the last release', () => {
    const state = new TreeState(version, asReaders(countingReaders(tables)));
    state.release();
    assert.throws(() => state.release(), { name: 'AssertionError', message: /released twice/ });
    assert.throws(() => state.ref(), { name: 'AssertionError', message: /used after release/ });
  });

  it('refuses a version with a table that has no reader', () => {
    const readers = countingReaders(tables.slice(0, 2));
    assert.throws(() => new TreeState(version, asReaders(readers)), {
      name: 'AssertionError',
      message: /No reader for table 3/,
    });
  });

  it('any interleaving of states, refs and releases leaves each reader referenced once per live state that lists it (property)', () => {
    const all = [
      info(1, 'a', 'b'),
      info(2, 'c', 'd'),
      info(3, 'e', 'f'),
      info(4, 'g', 'h'),
      info(5, 'a', 'z'),
    ];
    const op = fc.oneof(
      fc.record({ kind: fc.constant('open' as const), tables: fc.subarray([0, 1, 2, 3, 4]) }),
      fc.record({ kind: fc.constantFrom('ref' as const, 'release' as const), which: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const readers = countingReaders(all);
        const states: { state: TreeState; listed: number[]; refs: number }[] = [];
        for (const o of ops) {
          const live = states.filter((s) => s.refs > 0);
          if (o.kind === 'open') {
            const listed = o.tables.map((i) => all[i]!);
            const v = versionOf(
              2,
              listed.map((t) => ({ level: t.fileNumber === 5 ? 0 : 1, table: t })),
            );
            states.push({ state: new TreeState(v, asReaders(readers)), listed: o.tables, refs: 1 });
          } else if (live.length > 0) {
            const s = live[o.which % live.length]!;
            if (o.kind === 'ref') {
              s.state.ref();
              s.refs++;
            } else {
              s.state.release();
              s.refs--;
            }
          }
          all.forEach((t, i) => {
            const expected = states.filter((s) => s.refs > 0 && s.listed.includes(i)).length;
            assert.equal(readers.get(t.fileNumber)!.refs, expected, `table ${t.fileNumber}`);
          });
        }
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});

describe('TreeState.tableFor', () => {
  function stateOf(levelTables: readonly TableInfo[]): TreeState {
    const v = versionOf(
      3,
      levelTables.map((table) => ({ level: 1, table })),
    );
    return new TreeState(v, asReaders(countingReaders(levelTables)));
  }

  it('finds the one table of a level whose range holds the key, both ends included', () => {
    const state = stateOf([info(1, 'b', 'c'), info(2, 'e', 'g'), info(3, 'k', 'm')]);
    const at = (key: string) => state.tableFor(1, Buffer.from(key))?.fileNumber;
    assert.equal(at('a'), undefined);
    assert.equal(at('b'), 1);
    assert.equal(at('bb'), 1);
    assert.equal(at('c'), 1);
    assert.equal(at('c0'), undefined);
    assert.equal(at('d'), undefined);
    assert.equal(at('e'), 2);
    assert.equal(at('f'), 2);
    assert.equal(at('g'), 2);
    assert.equal(at('h'), undefined);
    assert.equal(at('k'), 3);
    assert.equal(at('m'), 3);
    assert.equal(at('n'), undefined);
    assert.equal(state.tableFor(2, Buffer.from('e')), undefined);
  });

  it('agrees with a linear search over the level (property)', () => {
    const rangesArb = fc
      .uniqueArray(fc.uint8Array({ minLength: 1, maxLength: 3, max: 7 }), {
        minLength: 0,
        maxLength: 24,
        selector: (k) => Buffer.from(k).toString('hex'),
      })
      .map((keys) => keys.map((k) => Buffer.from(k)).sort(compareBytes));
    const keyArb = fc.uint8Array({ maxLength: 4, max: 8 }).map((k) => Buffer.from(k));
    fc.assert(
      fc.property(
        rangesArb,
        fc.array(fc.boolean(), { maxLength: 12 }),
        fc.array(keyArb, { maxLength: 20 }),
        (bounds, single, keys) => {
          // Sorted distinct bounds, paired up (or a one-key table where `single` says so): disjoint ranges in order.
          const tables: TableInfo[] = [];
          for (let i = 0, n = 0; i < bounds.length; n++) {
            const smallest = bounds[i]!;
            const largest = single[n] === true || i + 1 >= bounds.length ? smallest : bounds[i + 1]!;
            tables.push(info(tables.length + 1, smallest, largest));
            i += largest === smallest ? 1 : 2;
          }
          const state = stateOf(tables);
          for (const key of [...keys, ...bounds]) {
            const expected = tables.find(
              (t) => compareBytes(t.smallestKey, key) <= 0 && compareBytes(key, t.largestKey) <= 0,
            );
            assert.equal(state.tableFor(1, key)?.fileNumber, expected?.fileNumber, key.toString('hex'));
          }
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });
});
