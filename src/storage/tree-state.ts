/**
 * One consistent view of the tables: a Version plus an open reader for each
 * of its tables. Reads and scans hold a reference while they use it, so a
 * compaction that replaces tables cannot close a file under them: a reader's
 * handle is released only when every state that lists it has been released
 * and the engine has closed it.
 */
import { assert } from '../util/assert.js';
import { compareBytes } from '../util/bytes.js';
import { firstEndingAtOrAfter, type TableInfo, type Version } from './manifest/version.js';
import type { TableReader } from './sstable/index.js';

export class TreeState {
  readonly version: Version;
  readonly #readers: ReadonlyMap<number, TableReader>;
  #refs = 1;

  constructor(version: Version, readers: ReadonlyMap<number, TableReader>) {
    this.version = version;
    this.#readers = readers;
    for (const table of version.tables()) {
      const reader = readers.get(table.fileNumber);
      assert(reader !== undefined, `No reader for table ${table.fileNumber}`);
      reader.ref();
    }
  }

  get readers(): ReadonlyMap<number, TableReader> {
    return this.#readers;
  }

  reader(table: TableInfo): TableReader {
    return this.#readers.get(table.fileNumber)!;
  }

  ref(): this {
    assert(this.#refs > 0, 'TreeState used after release');
    this.#refs++;
    return this;
  }

  release(): void {
    assert(this.#refs > 0, 'TreeState released twice');
    if (--this.#refs > 0) return;
    for (const table of this.version.tables()) this.#readers.get(table.fileNumber)!.unref();
  }

  /** The table of level >= 1 whose range holds `key`, by binary search. */
  tableFor(level: number, key: Buffer): TableInfo | undefined {
    const tables = this.version.levels[level]!;
    const table = tables[firstEndingAtOrAfter(tables, key)];
    return table !== undefined && compareBytes(table.smallestKey, key) <= 0 ? table : undefined;
  }
}
