import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type TableInfo, Version } from '../manifest/version.js';
import {
  type DroppableContext,
  keyRange,
  levelBytesTarget,
  minVersionOutside,
  NO_VERSION_BOUND,
  type PickerOptions,
  pickCompaction,
  pickDroppableCompaction,
  pickFullCompaction,
} from './picker.js';

const OPTIONS: PickerOptions = {
  l0CompactionTrigger: 4,
  levelBytesBase: 1000,
  levelBytesMultiplier: 10,
  droppableShareMin: 0.2,
};
const LEVELS = 4;

function table(fileNumber: number, smallest: string, largest: string, fileBytes = 100): TableInfo {
  return {
    fileNumber,
    fileBytes,
    entryCount: 10,
    smallestKey: Buffer.from(smallest),
    largestKey: Buffer.from(largest),
    minVersion: 1n,
    maxVersion: 2n,
  };
}

/** A version with `levels` given top down (missing levels are empty), built the way the engine builds them. */
function version(...levels: TableInfo[][]): Version {
  const added = levels.flatMap((tables, level) => tables.map((t) => ({ level, table: t })));
  return Version.empty(LEVELS).apply({ removed: [], added });
}

const files = (tables: readonly TableInfo[]) => tables.map((t) => t.fileNumber);

describe('levelBytesTarget', () => {
  it('is the base for L1 and grows by the multiplier per level below', () => {
    assert.equal(levelBytesTarget(1, OPTIONS), 1000);
    assert.equal(levelBytesTarget(2, OPTIONS), 10_000);
    assert.equal(levelBytesTarget(3, OPTIONS), 100_000);
  });
});

describe('keyRange', () => {
  it('is the smallest smallest key and the largest largest key, compared as bytes', () => {
    const [smallest, largest] = keyRange([
      table(1, 'm', 'p'),
      table(2, 'ab', 'abc'),
      table(3, 'b', '\u00ff'),
      table(4, 'a\u0000', 'z'),
    ]);
    assert.deepEqual(smallest, Buffer.from('a\u0000'));
    // U+00FF is 0xc3 0xbf in UTF-8: after 'z' (0x7a) as bytes.
    assert.deepEqual(largest, Buffer.from('\u00ff'));
  });
});

describe('pickCompaction', () => {
  it('picks nothing for an empty tree or one whose levels are within their targets', () => {
    assert.equal(pickCompaction(Version.empty(LEVELS), OPTIONS, []), undefined);
    const withinTargets = version(
      [table(10, 'a', 'z'), table(11, 'a', 'z'), table(12, 'a', 'z')],
      [table(1, 'a', 'f', 600), table(2, 'g', 'm', 400)],
      [table(3, 'a', 'z', 10_000)],
    );
    assert.equal(pickCompaction(withinTargets, OPTIONS, []), undefined);
  });

  it('a level exactly at its target is not over it', () => {
    const atTarget = version([], [table(1, 'a', 'f', 1000)]);
    assert.equal(pickCompaction(atTarget, OPTIONS, []), undefined);
    const justOver = version([], [table(1, 'a', 'f', 1001)]);
    assert.equal(pickCompaction(justOver, OPTIONS, [])?.inputLevel, 1);
  });

  it('at l0CompactionTrigger tables, merges all of L0 with the L1 tables its key range overlaps', () => {
    const v = version(
      [table(20, 'c', 'e'), table(21, 'd', 'h'), table(22, 'c', 'd'), table(23, 'e', 'f')],
      [table(1, 'a', 'b'), table(2, 'b5', 'c'), table(3, 'f', 'g'), table(4, 'h', 'i'), table(5, 'j', 'k')],
    );
    const compaction = pickCompaction(v, OPTIONS, [])!;
    assert.equal(compaction.inputLevel, 0);
    assert.equal(compaction.outputLevel, 1);
    // Every L0 table, newest first, then the L1 tables meeting [c, h] (boundaries included).
    assert.deepEqual(files(compaction.picked), [23, 22, 21, 20]);
    assert.deepEqual(files(compaction.inputs), [23, 22, 21, 20, 2, 3, 4]);
    assert.equal(compaction.bottom, true);
  });

  it('below the trigger, L0 waits', () => {
    const v = version([table(20, 'a', 'z'), table(21, 'a', 'z'), table(22, 'a', 'z')], [table(1, 'a', 'z')]);
    assert.equal(pickCompaction(v, OPTIONS, []), undefined);
  });

  it('L0 at the trigger goes first, even when a deeper level is further over its target', () => {
    const v = version(
      [table(20, 'a', 'b'), table(21, 'a', 'b'), table(22, 'a', 'b'), table(23, 'a', 'b')],
      [table(1, 'm', 'n', 50_000)],
    );
    assert.equal(pickCompaction(v, OPTIONS, [])?.inputLevel, 0);
  });

  it('picks the level most over its target by ratio, not by bytes', () => {
    // L1: 1500 / 1000 = 1.5; L2: 12,000 / 10,000 = 1.2.
    const l1First = version([], [table(1, 'a', 'c', 1500)], [table(2, 'x', 'z', 12_000)]);
    const c1 = pickCompaction(l1First, OPTIONS, [])!;
    assert.equal(c1.inputLevel, 1);
    assert.equal(c1.outputLevel, 2);
    assert.deepEqual(files(c1.picked), [1]);
    // L1: 1100 / 1000 = 1.1; L2: 30,000 / 10,000 = 3.
    const l2First = version([], [table(1, 'a', 'c', 1100)], [table(2, 'x', 'z', 30_000)]);
    const c2 = pickCompaction(l2First, OPTIONS, [])!;
    assert.equal(c2.inputLevel, 2);
    assert.equal(c2.outputLevel, 3);
    assert.deepEqual(files(c2.picked), [2]);
  });

  it('never picks the last level, which has nowhere to go', () => {
    const v = version([], [], [], [table(1, 'a', 'z', 10_000_000)]);
    assert.equal(pickCompaction(v, OPTIONS, []), undefined);
  });

  it('takes one table at a time from a level, round robin by key through the pointer', () => {
    const l1 = [table(1, 'a', 'b', 500), table(2, 'c', 'd', 500), table(3, 'e', 'f', 500)];
    const v = version([], l1);
    const pick = (pointer: string | undefined) =>
      files(
        pickCompaction(v, OPTIONS, [undefined, pointer === undefined ? undefined : Buffer.from(pointer)])!
          .picked,
      );
    assert.deepEqual(pick(undefined), [1]);
    // The pointer is the largest key last compacted out of the level: the next table starts after it.
    assert.deepEqual(pick('b'), [2]);
    assert.deepEqual(pick('d'), [3]);
    assert.deepEqual(pick('c5'), [3]);
    // Strictly after: a table starting at the pointer's key is passed over.
    assert.deepEqual(pick('c'), [3]);
    // Past the last table: back to the first.
    assert.deepEqual(pick('f'), [1]);
    assert.deepEqual(pick('zzz'), [1]);
    // A pointer on another level does not move this one.
    assert.deepEqual(
      files(pickCompaction(v, OPTIONS, [Buffer.from('d'), undefined, Buffer.from('d')])!.picked),
      [1],
    );
  });

  it('adds the overlapping tables of the next level, boundaries included, and no others', () => {
    const v = version(
      [],
      [table(1, 'c', 'd', 2000)],
      [table(2, 'a', 'b'), table(3, 'b5', 'c'), table(4, 'c2', 'c3'), table(5, 'd', 'e'), table(6, 'x', 'y')],
    );
    const compaction = pickCompaction(v, OPTIONS, [])!;
    assert.deepEqual(files(compaction.picked), [1]);
    assert.deepEqual(files(compaction.inputs), [1, 3, 4, 5]);
  });

  it('is the bottom only when no deeper level overlaps the key range of all its inputs', () => {
    // L1 table [c, d] pulls in L2 [d, g]; the L3 table [f, f] overlaps only that widened range.
    const widened = version([], [table(1, 'c', 'd', 2000)], [table(2, 'd', 'g')], [table(3, 'f', 'f')]);
    const c1 = pickCompaction(widened, OPTIONS, [])!;
    assert.deepEqual(files(c1.inputs), [1, 2]);
    assert.equal(c1.bottom, false);

    const apart = version([], [table(1, 'c', 'd', 2000)], [table(2, 'd', 'g')], [table(3, 'h', 'z')]);
    assert.equal(pickCompaction(apart, OPTIONS, [])!.bottom, true);

    const l0 = [table(20, 'a', 'b'), table(21, 'a', 'b'), table(22, 'a', 'b'), table(23, 'a', 'b')];
    assert.equal(pickCompaction(version(l0, [], [table(1, 'b', 'c')]), OPTIONS, [])!.bottom, false);
    assert.equal(pickCompaction(version(l0, [], [], [table(1, 'a', 'a')]), OPTIONS, [])!.bottom, false);
    assert.equal(pickCompaction(version(l0, [], [table(1, 'b0', 'c')]), OPTIONS, [])!.bottom, true);
  });
});

describe('pickFullCompaction', () => {
  it('picks nothing for an empty tree', () => {
    assert.equal(pickFullCompaction(Version.empty(LEVELS)), undefined);
  });

  it('merges every table into the deepest level that holds data, at least L1, as the bottom', () => {
    const onlyL0 = version([table(20, 'a', 'c'), table(21, 'b', 'd')]);
    const c1 = pickFullCompaction(onlyL0)!;
    assert.equal(c1.outputLevel, 1);
    assert.equal(c1.bottom, true);
    assert.deepEqual(files(c1.inputs).sort(), [20, 21]);

    const spread = version([table(20, 'a', 'c')], [table(1, 'a', 'b')], [], [table(2, 'x', 'z')]);
    const c2 = pickFullCompaction(spread)!;
    assert.equal(c2.inputLevel, 0);
    assert.equal(c2.outputLevel, 3);
    assert.equal(c2.bottom, true);
    assert.deepEqual(files(c2.inputs).sort(), [1, 2, 20]);
    assert.deepEqual(files(c2.picked).sort(), [1, 2, 20]);

    const middle = version([], [], [table(1, 'a', 'b'), table(2, 'c', 'd')]);
    assert.equal(pickFullCompaction(middle)!.outputLevel, 2);
  });
});

describe('minVersionOutside', () => {
  it('is the smallest minVersion of overlapping tables not among the inputs, and of the memtables', () => {
    const input = { ...table(1, 'c', 'f'), minVersion: 50n };
    const v = version(
      [
        { ...table(20, 'a', 'c'), minVersion: 40n },
        { ...table(21, 'g', 'z'), minVersion: 5n },
      ],
      [input],
      [{ ...table(2, 'e', 'h'), minVersion: 30n }],
    );
    // Table 21 does not meet [c, f]; the input itself does not count.
    assert.equal(minVersionOutside(v, [input], undefined), 30n);
    assert.equal(minVersionOutside(v, [input], 10n), 10n);
    assert.equal(minVersionOutside(version([], [input]), [input], undefined), NO_VERSION_BOUND);
  });
});

describe('pickDroppableCompaction', () => {
  const NOW = 1_000_000;
  const GRACE = 1000;
  const context: DroppableContext = { nowMs: NOW, tombstoneGraceMs: GRACE, memtableMinVersion: undefined };

  /** A table of 10 entries, `droppable` of them ageing from `fromMs`, their newest version 100. */
  function withDroppable(
    fileNumber: number,
    smallest: string,
    largest: string,
    droppable: number,
    fromMs = 0,
  ) {
    return {
      ...table(fileNumber, smallest, largest),
      minVersion: 50n,
      maxVersion: 200n,
      droppable: { entries: droppable, fromMs, versionMax: 100n },
    };
  }

  it('picks nothing without a table whose droppable share reaches the minimum, all past the grace', () => {
    assert.equal(pickDroppableCompaction(version([], [table(1, 'a', 'b')]), OPTIONS, context), undefined);
    // 1 of 10 is below 20%.
    assert.equal(
      pickDroppableCompaction(version([], [withDroppable(1, 'a', 'b', 1)]), OPTIONS, context),
      undefined,
    );
    // The last of them starts ageing one ms too late.
    const young = version([], [withDroppable(1, 'a', 'b', 10, NOW - GRACE + 1)]);
    assert.equal(pickDroppableCompaction(young, OPTIONS, context), undefined);
    // Never, with an endless grace (the anti-entropy index's).
    const endless = { ...context, tombstoneGraceMs: Number.POSITIVE_INFINITY };
    assert.equal(
      pickDroppableCompaction(version([], [withDroppable(1, 'a', 'b', 10)]), OPTIONS, endless),
      undefined,
    );
  });

  it('rewrites a table at the bottom of its range alone, in its own level, from exactly the minimum share', () => {
    const v = version(
      [],
      [table(1, 'a', 'b')],
      [withDroppable(2, 'c', 'd', 2, NOW - GRACE)],
      [table(3, 'x', 'z')],
    );
    const compaction = pickDroppableCompaction(v, OPTIONS, context)!;
    assert.equal(compaction.inputLevel, 2);
    assert.equal(compaction.outputLevel, 2);
    assert.deepEqual(files(compaction.inputs), [2]);
    assert.deepEqual(files(compaction.picked), [2]);
    assert.equal(compaction.bottom, true);
    assert.equal(compaction.droppable, true);
    // The last level too.
    const last = pickDroppableCompaction(
      version([], [], [], [withDroppable(3, 'a', 'b', 5)]),
      OPTIONS,
      context,
    )!;
    assert.deepEqual([last.inputLevel, last.outputLevel, ...files(last.inputs)], [3, 3, 3]);
  });

  it('merges a table with its next-level overlaps when a deeper level holds part of its range', () => {
    const v = version(
      [],
      [withDroppable(1, 'c', 'f', 5)],
      [table(2, 'a', 'b'), table(3, 'e', 'g')],
      [table(4, 'f', 'h')],
    );
    const compaction = pickDroppableCompaction(v, OPTIONS, context)!;
    assert.equal(compaction.inputLevel, 1);
    assert.equal(compaction.outputLevel, 2);
    assert.deepEqual(files(compaction.inputs), [1, 3]);
    assert.equal(compaction.bottom, false);
    assert.equal(compaction.droppable, true);
  });

  it('takes all of level 0 into level 1, as the level-0 trigger does', () => {
    const v = version(
      [table(21, 'a', 'c'), withDroppable(20, 'b', 'd', 10)],
      [table(1, 'c', 'c'), table(2, 'x', 'y')],
    );
    const compaction = pickDroppableCompaction(v, OPTIONS, context)!;
    assert.deepEqual([compaction.inputLevel, compaction.outputLevel], [0, 1]);
    assert.deepEqual(files(compaction.inputs), [21, 20, 1]);
  });

  it('picks the largest droppable share first', () => {
    const v = version(
      [],
      [withDroppable(1, 'a', 'b', 3), withDroppable(2, 'c', 'd', 9), withDroppable(3, 'e', 'f', 5)],
    );
    assert.deepEqual(files(pickDroppableCompaction(v, OPTIONS, context)!.inputs), [2]);
  });

  it('never rewrites in place what could not drop them all: an older version outside keeps them', () => {
    const droppable = withDroppable(2, 'c', 'd', 10);
    // A level-0 table meeting its range holds a version (100) not above its newest droppable one.
    const olderAbove = version([{ ...table(20, 'a', 'c'), minVersion: 100n }], [], [droppable]);
    assert.equal(pickDroppableCompaction(olderAbove, OPTIONS, context), undefined);
    // Above it, nothing is in the way.
    const newerAbove = version([{ ...table(20, 'a', 'c'), minVersion: 101n }], [], [droppable]);
    assert.deepEqual(files(pickDroppableCompaction(newerAbove, OPTIONS, context)!.inputs), [2]);
    // Tables apart from its range do not count; the memtables (no key range) do.
    const apart = version([{ ...table(20, 'x', 'z'), minVersion: 1n }], [], [droppable]);
    assert.deepEqual(files(pickDroppableCompaction(apart, OPTIONS, context)!.inputs), [2]);
    assert.equal(
      pickDroppableCompaction(apart, OPTIONS, { ...context, memtableMinVersion: 100n }),
      undefined,
    );
    assert.deepEqual(
      files(pickDroppableCompaction(apart, OPTIONS, { ...context, memtableMinVersion: 101n })!.inputs),
      [2],
    );
  });

  it('passes over a table it must not rewrite for the next one', () => {
    const v = version(
      [{ ...table(20, 'a', 'c'), minVersion: 1n }],
      [],
      [withDroppable(2, 'c', 'd', 10), withDroppable(3, 'e', 'f', 4)],
    );
    assert.deepEqual(files(pickDroppableCompaction(v, OPTIONS, context)!.inputs), [3]);
  });

  it('rewrites a table in place only when every version outside is above its newest droppable one', () => {
    // Table 2's whole range is the bottom; an older version anywhere above it would keep some of them.
    for (const minVersion of [1n, 99n, 100n, 101n, 1000n]) {
      const v = version([{ ...table(20, 'c', 'c'), minVersion }], [], [withDroppable(2, 'c', 'd', 10)]);
      const picked = pickDroppableCompaction(v, OPTIONS, context);
      assert.equal(picked !== undefined, minVersion > 100n, `above: ${minVersion}`);
    }
  });

  it('passes over each table it must not rewrite with a binary search per level, not a scan of the tree', () => {
    // It runs on the event loop after every flush: 2000 tables held back by one older level-0 table
    // must not cost a scan of every table for each (millions of key reads; seconds in a large store).
    const count = 2000;
    let keyReads = 0;
    const counted = (t: TableInfo): TableInfo => {
      const { smallestKey, largestKey, ...rest } = t;
      return {
        ...rest,
        get smallestKey() {
          keyReads++;
          return smallestKey;
        },
        get largestKey() {
          keyReads++;
          return largestKey;
        },
      };
    };
    const key = (i: number) => `k${String(i).padStart(6, '0')}`;
    const bottom = Array.from({ length: count }, (_, i) =>
      counted(withDroppable(100 + i, key(2 * i), key(2 * i + 1), 10)),
    );
    const v = version([counted({ ...table(20, key(0), key(2 * count)), minVersion: 1n })], [], [], bottom);
    keyReads = 0;
    assert.equal(pickDroppableCompaction(v, OPTIONS, context), undefined);
    assert.ok(keyReads < count * 100, `${keyReads} key reads for ${count} tables`);
  });
});
