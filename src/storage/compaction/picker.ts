/**
 * Decides what to compact next: a pure function of the tree's shape, so it
 * can be tested with golden inputs and never touches files.
 *
 * Leveled compaction:
 * 1. Level 0 holds one table per flush, overlapping. When it has
 *    `l0CompactionTrigger` tables, all of them merge with the overlapping part of L1.
 * 2. Level n >= 1 has a byte target (base * multiplier^(n-1)). The level
 *    most over its target (by ratio) gives one table, taken round robin by
 *    key through a per-level pointer, which merges with the overlapping
 *    tables of level n+1.
 * 3. Tombstones and expired values may be dropped only when no level below
 *    the output holds the key range (the output is the bottom for it):
 *    otherwise an older version below would come back to life. Versions,
 *    not levels, order a key's versions, so an older one may also sit above
 *    or beside the inputs (a late write): the engine bounds the versions a
 *    compaction may drop by what lies outside it (lsm/background.ts).
 * 4. When no level is over its target, a table whose droppable entries
 *    (tombstones and values with an expiry, counted as it was written:
 *    DroppableStats) are at least `droppableShareMin` of it and all past
 *    their grace period is compacted for them alone
 *    (pickDroppableCompaction). Without this, a table that nothing new
 *    overlaps (keys written in rising order) would keep them for good.
 */
import { compareBytes } from '../../util/bytes.js';
import type { TableInfo, Version } from '../manifest/version.js';

export interface PickerOptions {
  readonly l0CompactionTrigger: number;
  readonly levelBytesBase: number;
  readonly levelBytesMultiplier: number;
  /** The share of a table's entries that must be droppable for it to be compacted for them (rule 4). */
  readonly droppableShareMin: number;
}

/** What judges tables for their droppable entries besides the tree (rule 4). */
export interface DroppableContext {
  readonly nowMs: number;
  readonly tombstoneGraceMs: number;
  /** The smallest version in the memtables, undefined when they are empty (they keep no key range). */
  readonly memtableMinVersion: bigint | undefined;
}

export interface Compaction {
  readonly inputLevel: number;
  readonly outputLevel: number;
  /** Input tables: from inputLevel, then from outputLevel. */
  readonly inputs: readonly TableInfo[];
  /** The inputs taken from inputLevel (the rest overlap them in outputLevel). */
  readonly picked: readonly TableInfo[];
  /** No level below outputLevel overlaps the inputs' key range. */
  readonly bottom: boolean;
  /** Picked for a table's droppable entries (rule 4), not for a level's size. */
  readonly droppable?: boolean;
}

/** Above every version (a u64): nothing outside a compaction bounds what it may drop. */
export const NO_VERSION_BOUND = 1n << 64n;

export function levelBytesTarget(level: number, options: PickerOptions): number {
  return options.levelBytesBase * options.levelBytesMultiplier ** Math.max(0, level - 1);
}

export function keyRange(tables: readonly TableInfo[]): [Buffer, Buffer] {
  let smallest = tables[0]!.smallestKey;
  let largest = tables[0]!.largestKey;
  for (const t of tables) {
    if (compareBytes(t.smallestKey, smallest) < 0) smallest = t.smallestKey;
    if (compareBytes(t.largestKey, largest) > 0) largest = t.largestKey;
  }
  return [smallest, largest];
}

function isBottom(version: Version, outputLevel: number, inputs: readonly TableInfo[]): boolean {
  const [smallest, largest] = keyRange(inputs);
  for (let level = outputLevel + 1; level < version.levels.length; level++) {
    if (version.overlapping(level, smallest, largest).length > 0) return false;
  }
  return true;
}

function withOverlaps(version: Version, inputLevel: number, picked: readonly TableInfo[]): Compaction {
  const outputLevel = inputLevel + 1;
  const [smallest, largest] = keyRange(picked);
  const inputs = [...picked, ...version.overlapping(outputLevel, smallest, largest)];
  return { inputLevel, outputLevel, inputs, picked, bottom: isBottom(version, outputLevel, inputs) };
}

/**
 * The next compaction, or undefined when every level is within its target.
 * `pointers[level]` is the largest key last compacted out of that level.
 */
export function pickCompaction(
  version: Version,
  options: PickerOptions,
  pointers: readonly (Buffer | undefined)[],
): Compaction | undefined {
  const levelCount = version.levels.length;
  const l0 = version.levels[0]!;
  if (l0.length >= options.l0CompactionTrigger) return withOverlaps(version, 0, l0);

  let bestLevel = -1;
  let bestRatio = 1;
  for (let level = 1; level < levelCount - 1; level++) {
    const ratio = version.levelBytes(level) / levelBytesTarget(level, options);
    if (ratio > bestRatio) {
      bestRatio = ratio;
      bestLevel = level;
    }
  }
  if (bestLevel < 0) return undefined;
  const tables = version.levels[bestLevel]!;
  const pointer = pointers[bestLevel];
  const next =
    (pointer === undefined ? undefined : tables.find((t) => compareBytes(t.smallestKey, pointer) > 0)) ??
    tables[0]!;
  return withOverlaps(version, bestLevel, [next]);
}

/**
 * The smallest version held outside `inputs` for keys in their range: the
 * tables of any level not among them, and the memtables (whose smallest
 * version is given: they keep no key range). A compaction drops an obsolete
 * record only below it (lsm/background.ts).
 */
export function minVersionOutside(
  version: Version,
  inputs: readonly TableInfo[],
  memtableMinVersion: bigint | undefined,
): bigint {
  const inputNumbers = new Set(inputs.map((t) => t.fileNumber));
  const [smallest, largest] = keyRange(inputs);
  let min = memtableMinVersion ?? NO_VERSION_BOUND;
  for (let level = 0; level < version.levels.length; level++) {
    for (const table of version.overlapping(level, smallest, largest)) {
      if (!inputNumbers.has(table.fileNumber) && table.minVersion < min) min = table.minVersion;
    }
  }
  return min;
}

/**
 * Rule 4: a compaction for the table with the largest droppable share among
 * those at or over `droppableShareMin` whose droppable entries are all past
 * the grace period, or undefined. One in level 0 takes all of level 0 into
 * level 1, as the level-0 trigger does. One in a deeper level merges with
 * its overlaps in the next level when a deeper level holds part of its key
 * range, to bring its tombstones nearer to what they shadow; otherwise it is
 * the bottom for its range and is rewritten alone, in place, which drops
 * every droppable entry it holds.
 *
 * It never picks what would give back nothing and be picked again: a
 * compaction that moves tables down a level makes progress by itself (no
 * entry moves down more often than there are levels), and an in-place
 * rewrite is picked only when nothing outside it holds a version as old as
 * its newest droppable entry (minVersionOutside), so that it drops them all
 * and its output has none left to be picked for.
 */
export function pickDroppableCompaction(
  version: Version,
  options: PickerOptions,
  context: DroppableContext,
): Compaction | undefined {
  const candidates: { level: number; table: TableInfo; share: number }[] = [];
  version.levels.forEach((tables, level) => {
    for (const table of tables) {
      const droppable = table.droppable;
      if (droppable === undefined || droppable.fromMs + context.tombstoneGraceMs > context.nowMs) continue;
      const share = droppable.entries / table.entryCount;
      if (share >= options.droppableShareMin) candidates.push({ level, table, share });
    }
  });
  candidates.sort((a, b) => b.share - a.share);
  for (const { level, table } of candidates) {
    if (level === 0) return { ...withOverlaps(version, 0, version.levels[0]!), droppable: true };
    if (!isBottom(version, level, [table]))
      return { ...withOverlaps(version, level, [table]), droppable: true };
    if (table.droppable!.versionMax < minVersionOutside(version, [table], context.memtableMinVersion)) {
      return {
        inputLevel: level,
        outputLevel: level,
        inputs: [table],
        picked: [table],
        bottom: true,
        droppable: true,
      };
    }
  }
  return undefined;
}

/** Everything into one level: the deepest that holds data (at least 1). Always the bottom. */
export function pickFullCompaction(version: Version): Compaction | undefined {
  const inputs = version.tables();
  if (inputs.length === 0) return undefined;
  let outputLevel = 1;
  version.levels.forEach((tables, level) => {
    if (tables.length > 0 && level > outputLevel) outputLevel = level;
  });
  return { inputLevel: 0, outputLevel, inputs, picked: inputs, bottom: true };
}
