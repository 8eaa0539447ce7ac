/**
 * A version of the LSM tree's shape: which tables are live, at which level.
 * Immutable: an edit (flush, compaction) produces a new Version, so readers
 * holding the old one keep a consistent view.
 *
 * INVARIANT: level 0 tables may overlap and are ordered newest first; in
 * every level >= 1 tables are sorted by smallest key and do not overlap.
 */
import { assert, INVARIANTS } from '../../util/assert.js';
import { compareBytes } from '../../util/bytes.js';
import type { DroppableStats } from '../sstable/writer.js';

export interface TableInfo {
  readonly fileNumber: number;
  readonly fileBytes: number;
  readonly entryCount: number;
  readonly smallestKey: Buffer;
  readonly largestKey: Buffer;
  readonly minVersion: bigint;
  readonly maxVersion: bigint;
  /** Absent when the table holds nothing droppable, or was listed before tables counted it. */
  readonly droppable?: DroppableStats;
}

export interface VersionEdit {
  readonly removed: readonly number[];
  readonly added: readonly { readonly level: number; readonly table: TableInfo }[];
}

export class Version {
  readonly levels: readonly (readonly TableInfo[])[];

  constructor(levels: readonly (readonly TableInfo[])[]) {
    this.levels = levels;
    if (INVARIANTS) this.check();
  }

  static empty(levelCount: number): Version {
    return new Version(Array.from({ length: levelCount }, () => []));
  }

  apply(edit: VersionEdit): Version {
    const removed = new Set(edit.removed);
    const levels = this.levels.map((tables) => tables.filter((t) => !removed.has(t.fileNumber)));
    for (const { level, table } of edit.added) {
      const tables = levels[level];
      assert(tables !== undefined, `Edit adds a table to level ${level}, past the last level`);
      tables.push(table);
    }
    levels[0]!.sort((a, b) => b.fileNumber - a.fileNumber);
    for (let level = 1; level < levels.length; level++) {
      levels[level]!.sort((a, b) => compareBytes(a.smallestKey, b.smallestKey));
    }
    return new Version(levels);
  }

  levelBytes(level: number): number {
    let total = 0;
    for (const t of this.levels[level] ?? []) total += t.fileBytes;
    return total;
  }

  tables(): TableInfo[] {
    return this.levels.flat();
  }

  /** Tables of `level` whose key range meets [smallest, largest] (both inclusive). */
  overlapping(level: number, smallest: Buffer, largest: Buffer): TableInfo[] {
    const tables = this.levels[level] ?? [];
    if (level === 0) {
      return tables.filter(
        (t) => compareBytes(t.largestKey, smallest) >= 0 && compareBytes(t.smallestKey, largest) <= 0,
      );
    }
    // Sorted and disjoint (module comment): a binary search, as the compaction picker asks this of
    // every table it passes over, on the event loop.
    const lo = firstEndingAtOrAfter(tables, smallest);
    let end = lo;
    while (end < tables.length && compareBytes(tables[end]!.smallestKey, largest) <= 0) end++;
    return tables.slice(lo, end);
  }

  check(): void {
    for (let level = 1; level < this.levels.length; level++) {
      const tables = this.levels[level]!;
      for (let i = 1; i < tables.length; i++) {
        assert(
          compareBytes(tables[i - 1]!.largestKey, tables[i]!.smallestKey) < 0,
          `Level ${level} tables ${tables[i - 1]!.fileNumber} and ${tables[i]!.fileNumber} overlap`,
        );
      }
    }
  }
}

/**
 * In a level's sorted, disjoint tables (level 1 and deeper), the index of the
 * first whose largest key is at or after `key` (tables.length if none): the
 * only one that may hold it.
 */
export function firstEndingAtOrAfter(tables: readonly TableInfo[], key: Buffer): number {
  let lo = 0;
  let hi = tables.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareBytes(tables[mid]!.largestKey, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
