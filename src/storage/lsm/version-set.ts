/**
 * The version set: which tables make up the tree now, and the manifest edits
 * that change that. It owns the current TreeState (a Version plus an open
 * reader per table), the file-number sequence that logs and tables share,
 * and the oldest log the tree still needs.
 *
 * An edit (a flush adding a level-0 table, a compaction replacing tables)
 * opens the readers of the tables it adds, writes the MANIFEST, then
 * installs the new state in one synchronous step, so that no read sees data
 * missing between the two. Edits run one at a time, in call order.
 */

import { filePath } from '../files.js';
import { writeManifest } from '../manifest/manifest-file.js';
import type { VersionEdit } from '../manifest/version.js';
import { type BlockCache, TableReader } from '../sstable/index.js';
import { TreeState } from '../tree-state.js';
import type { Vfs } from '../vfs/index.js';

/** Where the tree's tables are, and where their blocks are cached. */
export interface TableHome {
  readonly dir: string;
  readonly vfs: Vfs;
  readonly cache: BlockCache;
}

export interface VersionSetInit extends TableHome {
  readonly state: TreeState;
  readonly nextFileNumber: number;
  readonly logNumber: number;
}

export class VersionSet {
  readonly #home: TableHome;
  #current: TreeState;
  #nextFileNumber: number;
  /** The oldest write-ahead log whose writes are not all in tables yet. */
  #logNumber: number;
  /** The last edit asked for; never rejects (each edit's caller hears of its failure). */
  #edits: Promise<void> = Promise.resolve();

  constructor(init: VersionSetInit) {
    this.#home = { dir: init.dir, vfs: init.vfs, cache: init.cache };
    this.#current = init.state;
    this.#nextFileNumber = init.nextFileNumber;
    this.#logNumber = init.logNumber;
  }

  /** The tree as of the last installed edit; ref() it to use it across an await. */
  get current(): TreeState {
    return this.#current;
  }

  /** The next number of the sequence that logs and tables share. */
  newFileNumber(): number {
    return this.#nextFileNumber++;
  }

  /** `count` consecutive new file numbers. */
  newFileNumbers(count: number): number[] {
    const first = this.#nextFileNumber;
    this.#nextFileNumber += count;
    return Array.from({ length: count }, (_, i) => first + i);
  }

  /**
   * Applies an edit (module comment) and runs `install` in the same
   * synchronous step as the swap. `logNumber` (default: unchanged) is the
   * oldest log still needed once the edit is in. Rejects, with nothing
   * changed and the added tables' readers closed, if a table cannot be
   * opened or the MANIFEST written; the caller removes those files, unless
   * the rejection is a ManifestInDoubtError (the MANIFEST on disk may name
   * them: the next open deletes them if the one it reads does not).
   */
  apply(edit: VersionEdit, options: { logNumber?: number; install?: () => void } = {}): Promise<void> {
    const next = this.#edits.then(() => this.#applyNow(edit, options.logNumber, options.install));
    this.#edits = next.catch(() => {});
    return next;
  }

  /** Resolves once every edit asked for so far has been applied or has failed. */
  settle(): Promise<void> {
    return this.#edits;
  }

  /** Releases the current state and closes every table (at close, once the edits have settled). */
  async close(): Promise<void> {
    this.#current.release();
    await Promise.all([...this.#current.readers.values()].map((r) => r.close()));
  }

  async #applyNow(
    edit: VersionEdit,
    requestedLogNumber: number | undefined,
    install: (() => void) | undefined,
  ): Promise<void> {
    // Read now, not when apply() was called: an edit queued behind a flush's must not write back
    // the log number the flush moved past. It only ever moves forward.
    const logNumber = Math.max(this.#logNumber, requestedLogNumber ?? this.#logNumber);
    const version = this.#current.version.apply(edit);
    const home = this.#home;
    const opening = await Promise.allSettled(
      edit.added.map(({ table }) => openTable(home, table.fileNumber)),
    );
    const opened = opening.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    try {
      for (const o of opening) if (o.status === 'rejected') throw o.reason;
      await writeManifest(home.dir, { version, nextFileNumber: this.#nextFileNumber, logNumber }, home.vfs);
    } catch (err) {
      // Not installed: the readers of the tables that were to join go, and the caller removes the files.
      await Promise.all(opened.map((r) => r.close()));
      for (const reader of opened) home.cache.evictFile(reader.fileNumber);
      throw err;
    }
    // INVARIANT: no await from here to the swap: readers see the old state or the new one.
    const old = this.#current;
    const readers = new Map(old.readers);
    for (const reader of opened) readers.set(reader.fileNumber, reader);
    const removedReaders = edit.removed.map((n) => readers.get(n)!);
    for (const n of edit.removed) readers.delete(n);
    this.#logNumber = logNumber;
    this.#current = new TreeState(version, readers);
    install?.();
    old.release();
    await Promise.all(removedReaders.map((r) => r.close()));
  }
}

/** Opens the reader of table `fileNumber`. */
export function openTable(home: TableHome, fileNumber: number): Promise<TableReader> {
  return TableReader.open(filePath(home.dir, fileNumber, 'sst'), fileNumber, home.cache, home.vfs);
}
