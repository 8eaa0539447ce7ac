/**
 * The read path: point reads and scans over the memtables and the tables.
 *
 * A point read takes the newest version among the memtables and the tables
 * whose key range and bloom filter admit the key. Versions are compared, not
 * levels trusted, because a replica may receive an old version late: a table
 * is skipped only when its largest version is older than the best found so
 * far. The walk over the tables (walkCached) goes newest level first and runs
 * without a wait while blocks are in the cache, so that a warm read resolves
 * with no promise per table; at a block that is not, the read reads it from
 * disk and the same walk goes on from there.
 *
 * A scan merges a cursor per memtable, per level-0 table and per deeper
 * level (its tables chained in key order, each opened when reached).
 */
import { limits } from '../../config/limits.js';
import { compareBytes } from '../../util/bytes.js';
import type { EntryCursor, ScanRange } from '../engine.js';
import { type Entry, newer } from '../entry/entry.js';
import { mergeCursors } from '../iterator/merging.js';
import type { TableInfo } from '../manifest/version.js';
import { BLOCK_NOT_CACHED, bloomHash, type TableReader } from '../sstable/index.js';
import type { TreeState } from '../tree-state.js';
import type { VersionSet } from './version-set.js';
import type { WritePath } from './write-path.js';

export class ReadPath {
  readonly #writes: WritePath;
  readonly #versions: VersionSet;
  #reads = 0;

  constructor(writes: WritePath, versions: VersionSet) {
    this.#writes = writes;
    this.#versions = versions;
  }

  /** Point reads so far. */
  get reads(): number {
    return this.#reads;
  }

  /** The newest version of `key`, tombstones and expired values included (engine.ts). */
  get(key: Buffer): Promise<Entry | undefined> {
    this.#reads++;
    const writes = this.#writes;
    let best = writes.memtable.get(key);
    const frozen = writes.frozen;
    for (let i = frozen.length - 1; i >= 0; i--) best = newer(best, frozen[i]!.memtable.get(key));
    const state = this.#versions.current;
    const read = new PointRead(key, best);
    try {
      if (walkCached(state, read)) return Promise.resolve(read.best);
    } catch (err) {
      // A cached block whose entry is damaged (its crc held, so it was cached) throws as the walk
      // meets it: the caller gets that as a rejection, as from a block read from disk.
      return Promise.reject(err);
    }
    return readOnFromDisk(read, state.ref());
  }

  /** Entries with start <= key < end in key order, newest version per key (engine.ts). */
  scan(range: ScanRange): EntryCursor {
    const { start, end } = range;
    const batchMax = limits.scanBatchEntriesMax;
    const batchBytesMax = limits.scanBatchBytesMax;
    const writes = this.#writes;
    const cursors: EntryCursor[] = [writes.memtable.cursor(start, end, batchMax, batchBytesMax)];
    const frozen = writes.frozen;
    for (let i = frozen.length - 1; i >= 0; i--) {
      cursors.push(frozen[i]!.memtable.cursor(start, end, batchMax, batchBytesMax));
    }
    const state = this.#versions.current.ref();
    const inRange = (t: TableInfo) =>
      compareBytes(t.largestKey, start) >= 0 && (end === undefined || compareBytes(t.smallestKey, end) < 0);
    for (const table of state.version.levels[0]!) {
      if (inRange(table)) cursors.push(state.reader(table).cursor(start, end));
    }
    for (let level = 1; level < state.version.levels.length; level++) {
      const tables = state.version.levels[level]!.filter(inRange);
      if (tables.length > 0)
        cursors.push(concatCursor(tables.map((t) => () => state.reader(t).cursor(start, end))));
    }
    return mergeCursors(cursors, { batchMax, batchBytesMax, onClose: () => state.release() });
  }
}

/** A point read under way: its key, the newest version found so far, and where its walk stands. */
class PointRead {
  readonly key: Buffer;
  readonly hash: number;
  best: Entry | undefined;
  level = 0;
  /** The next table to probe in level 0; deeper levels have one candidate, index 0. */
  index = 0;
  /** Where the walk stopped: the table whose block must be read from disk. */
  uncached: TableReader | undefined;

  constructor(key: Buffer, best: Entry | undefined) {
    this.key = key;
    this.hash = bloomHash(key);
    this.best = best;
  }
}

/**
 * Probes the tables that may hold the key, from the read's position on,
 * newest level first, while their blocks are cached. True when the walk is
 * done; false when it stopped at a table whose block is not cached (the
 * read's position and `uncached`).
 */
function walkCached(state: TreeState, read: PointRead): boolean {
  const levels = state.version.levels;
  for (; read.level < levels.length; read.level++, read.index = 0) {
    const tables = levels[read.level]!;
    // Level 0 tables overlap: probe each. Deeper levels: the one table whose range holds the key.
    const candidates = read.level === 0 ? tables.length : Math.min(tables.length, 1);
    for (; read.index < candidates; read.index++) {
      const table = read.level === 0 ? tables[read.index]! : state.tableFor(read.level, read.key);
      if (table === undefined || !mayHold(table, read.key, read.best)) continue;
      const reader = state.reader(table);
      if (!reader.mayContainHash(read.hash)) continue;
      const found = reader.getCached(read.key);
      if (found === BLOCK_NOT_CACHED) {
        read.uncached = reader;
        return false;
      }
      read.best = newer(read.best, found);
    }
  }
  return true;
}

/** Reads the block the walk stopped at from disk, then walks on, as often as needed; releases `state`. */
async function readOnFromDisk(read: PointRead, state: TreeState): Promise<Entry | undefined> {
  try {
    do {
      read.best = newer(read.best, await read.uncached!.getUncached(read.key));
      read.index++;
    } while (!walkCached(state, read));
    return read.best;
  } finally {
    state.release();
  }
}

/** Whether `table` can hold a version of `key` newer than `best`. */
function mayHold(table: TableInfo, key: Buffer, best: Entry | undefined): boolean {
  if (best !== undefined && table.maxVersion < best.version) return false;
  return compareBytes(key, table.smallestKey) >= 0 && compareBytes(key, table.largestKey) <= 0;
}

/** Chains cursors of non-overlapping tables in key order, opening each only when reached. */
function concatCursor(opens: readonly (() => EntryCursor)[]): EntryCursor {
  let index = 0;
  let current: EntryCursor | undefined;
  return {
    async next() {
      for (;;) {
        if (current === undefined) {
          const open = opens[index++];
          if (open === undefined) return undefined;
          current = open();
        }
        const batch = await current.next();
        if (batch !== undefined) return batch;
        await current.close();
        current = undefined;
      }
    },
    async close() {
      index = opens.length;
      const cursor = current;
      current = undefined;
      await cursor?.close();
    },
  };
}
