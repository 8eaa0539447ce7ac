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
 */
import { compareBytes } from '../../util/bytes.js';
import type { TableInfo, Version } from '../manifest/version.js';

export interface PickerOptions {
  readonly l0CompactionTrigger: number;
  readonly levelBytesBase: number;
  readonly levelBytesMultiplier: number;
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
}

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
