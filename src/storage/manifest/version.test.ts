import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { compareBytes } from '../../util/bytes.js';
import { type TableInfo, Version } from './version.js';

function table(
  fileNumber: number,
  smallest: string | Buffer,
  largest: string | Buffer,
  fileBytes = 100,
): TableInfo {
  return {
    fileNumber,
    fileBytes,
    entryCount: 1,
    smallestKey: Buffer.from(smallest),
    largestKey: Buffer.from(largest),
    minVersion: 1n,
    maxVersion: 1n,
  };
}

const files = (tables: readonly TableInfo[]) => tables.map((t) => t.fileNumber);

describe('Version', () => {
  it('empty(n) has n empty levels', () => {
    const v = Version.empty(5);
    assert.equal(v.levels.length, 5);
    assert.ok(v.levels.every((tables) => tables.length === 0));
    assert.deepEqual(v.tables(), []);
    assert.equal(v.levelBytes(0), 0);
  });

  it('apply adds tables at their levels: L0 newest (highest file number) first, deeper levels by smallest key', () => {
    const v = Version.empty(3).apply({
      removed: [],
      added: [
        { level: 0, table: table(7, 'a', 'z') },
        { level: 1, table: table(3, 'm', 'n') },
        { level: 0, table: table(9, 'b', 'c') },
        { level: 1, table: table(4, 'a', 'b') },
        { level: 0, table: table(8, 'a', 'a') },
        { level: 2, table: table(5, 'q', 'r') },
        // 0xff sorts after every ASCII key as bytes.
        { level: 1, table: table(6, Buffer.from([0xff]), Buffer.from([0xff, 0x01])) },
        { level: 1, table: table(2, 'B', 'C') },
        // As UTF-8 bytes U+FF61 (ef bd a1) sorts before U+1F600 (f0 9f 98 80); as UTF-16 strings it is after.
        { level: 2, table: table(11, '\u{1f600}', '\u{1f600}') },
        { level: 2, table: table(10, '\uff61', '\uff61') },
      ],
    });
    assert.deepEqual(files(v.levels[0]!), [9, 8, 7]);
    assert.deepEqual(files(v.levels[1]!), [2, 4, 3, 6]);
    assert.deepEqual(files(v.levels[2]!), [5, 10, 11]);
    v.check();
  });

  it('apply removes tables by file number from whichever level holds them, and adds in the same edit', () => {
    const before = Version.empty(3).apply({
      removed: [],
      added: [
        { level: 0, table: table(10, 'c', 'f') },
        { level: 0, table: table(11, 'a', 'd') },
        { level: 1, table: table(1, 'a', 'b') },
        { level: 1, table: table(2, 'c', 'e') },
        { level: 1, table: table(3, 'x', 'y') },
        { level: 2, table: table(4, 'a', 'z') },
      ],
    });
    // A compaction of L0 with the overlapping L1 tables, cut into two outputs.
    const after = before.apply({
      removed: [10, 11, 1, 2],
      added: [
        { level: 1, table: table(13, 'd', 'f') },
        { level: 1, table: table(12, 'a', 'c') },
      ],
    });
    assert.deepEqual(files(after.levels[0]!), []);
    assert.deepEqual(files(after.levels[1]!), [12, 13, 3]);
    assert.deepEqual(files(after.levels[2]!), [4]);
    assert.deepEqual(
      files(after.tables()).sort((a, b) => a - b),
      [3, 4, 12, 13],
    );
    after.check();
  });

  it('apply leaves the version it was applied to as it was', () => {
    const before = Version.empty(2).apply({
      removed: [],
      added: [
        { level: 0, table: table(5, 'a', 'b') },
        { level: 1, table: table(1, 'c', 'd') },
      ],
    });
    const l0 = before.levels[0]!;
    const l1 = before.levels[1]!;
    // An edit that only adds, and one that removes too.
    before.apply({
      removed: [],
      added: [
        { level: 0, table: table(6, 'a', 'a') },
        { level: 1, table: table(7, 'x', 'y') },
      ],
    });
    before.apply({
      removed: [1, 5],
      added: [
        { level: 0, table: table(6, 'a', 'a') },
        { level: 1, table: table(7, 'a', 'b') },
      ],
    });
    assert.equal(before.levels[0], l0);
    assert.equal(before.levels[1], l1);
    assert.deepEqual(files(before.levels[0]!), [5]);
    assert.deepEqual(files(before.levels[1]!), [1]);
  });

  it('apply refuses a table for a level past the last', () => {
    assert.throws(
      () => Version.empty(2).apply({ removed: [], added: [{ level: 2, table: table(1, 'a', 'b') }] }),
      { name: 'AssertionError', message: /level 2, past the last level/ },
    );
  });

  it('check() refuses overlapping tables in a level >= 1, touching ones included; L0 may overlap', () => {
    const overlapping = [[], [table(1, 'a', 'd'), table(2, 'c', 'f')]];
    assert.throws(() => new Version(overlapping).check(), /Level 1 tables 1 and 2 overlap/);
    const touching = [[], [], [table(1, 'a', 'c'), table(2, 'c', 'f')]];
    assert.throws(() => new Version(touching).check(), /Level 2 tables 1 and 2 overlap/);
    new Version([[table(1, 'a', 'd'), table(2, 'c', 'f'), table(3, 'a', 'z')], [table(4, 'a', 'b')]]).check();
  });

  it('an edit that would make a level overlap gives a version that check() refuses', () => {
    const v = Version.empty(2).apply({ removed: [], added: [{ level: 1, table: table(1, 'c', 'g') }] });
    assert.throws(
      () => v.apply({ removed: [], added: [{ level: 1, table: table(2, 'a', 'c') }] }).check(),
      /overlap/,
    );
    // Replacing the table instead is fine.
    v.apply({ removed: [1], added: [{ level: 1, table: table(2, 'a', 'c') }] }).check();
  });

  it('levelBytes sums the file sizes of one level', () => {
    const v = Version.empty(3).apply({
      removed: [],
      added: [
        { level: 0, table: table(5, 'a', 'b', 7) },
        { level: 1, table: table(1, 'a', 'b', 100) },
        { level: 1, table: table(2, 'c', 'd', 250) },
      ],
    });
    assert.equal(v.levelBytes(0), 7);
    assert.equal(v.levelBytes(1), 350);
    assert.equal(v.levelBytes(2), 0);
    assert.equal(v.levelBytes(9), 0);
  });

  it('overlapping() returns the tables meeting [smallest, largest], both ends included', () => {
    const v = Version.empty(2).apply({
      removed: [],
      added: [
        { level: 1, table: table(1, 'a', 'c') },
        { level: 1, table: table(2, 'e', 'g') },
        { level: 1, table: table(3, 'i', 'k') },
      ],
    });
    const over = (s: string, l: string) => files(v.overlapping(1, Buffer.from(s), Buffer.from(l)));
    assert.deepEqual(over('c', 'e'), [1, 2]);
    assert.deepEqual(over('d', 'd'), []);
    assert.deepEqual(over('c1', 'd'), []);
    assert.deepEqual(over('f', 'f'), [2]);
    assert.deepEqual(over('0', 'z'), [1, 2, 3]);
    assert.deepEqual(over('k', 'z'), [3]);
    assert.deepEqual(over('l', 'z'), []);
    assert.deepEqual(files(v.overlapping(0, Buffer.from('a'), Buffer.from('z'))), []);
    assert.deepEqual(files(v.overlapping(5, Buffer.from('a'), Buffer.from('z'))), []);
  });

  it('any sequence of edits keeps every level >= 1 sorted and non-overlapping, and holds exactly the live tables (property)', () => {
    // Disjoint key ranges [2i, 2i+1] (as two-byte keys), placed at random levels by random edits.
    const edits = fc.array(
      fc.record({
        add: fc.uniqueArray(fc.record({ slot: fc.nat(40), level: fc.nat(3) }), {
          maxLength: 6,
          selector: (a) => a.slot,
        }),
        removeMask: fc.array(fc.boolean(), { maxLength: 50 }),
      }),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(edits, (steps) => {
        let v = Version.empty(4);
        const live = new Map<number, { slot: number; level: number }>();
        const slotsInUse = new Set<number>();
        let nextFile = 1;
        for (const step of steps) {
          const liveFiles = [...live.keys()];
          const removed = liveFiles.filter((_, i) => step.removeMask[i] === true);
          for (const f of removed) {
            slotsInUse.delete(live.get(f)!.slot);
            live.delete(f);
          }
          const added: { level: number; table: TableInfo }[] = [];
          for (const { slot, level } of step.add) {
            // One table per key range across the tree, so levels >= 1 never overlap.
            if (slotsInUse.has(slot)) continue;
            slotsInUse.add(slot);
            const file = nextFile++;
            live.set(file, { slot, level });
            added.push({ level, table: table(file, Buffer.from([slot, 0]), Buffer.from([slot, 1])) });
          }
          v = v.apply({ removed, added });
          v.check();
          for (let level = 1; level < v.levels.length; level++) {
            const tables = v.levels[level]!;
            for (let i = 1; i < tables.length; i++) {
              assert.ok(compareBytes(tables[i - 1]!.largestKey, tables[i]!.smallestKey) < 0);
            }
          }
          const l0 = files(v.levels[0]!);
          assert.deepEqual(
            l0,
            [...l0].sort((a, b) => b - a),
          );
          const held = v.levels.flatMap((tables, level) => tables.map((t) => [t.fileNumber, level]));
          assert.deepEqual(
            held.sort((a, b) => a[0]! - b[0]!),
            [...live].map(([f, { level }]) => [f, level]).sort((a, b) => a[0]! - b[0]!),
          );
        }
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});
