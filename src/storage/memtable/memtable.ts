/**
 * The in-memory, sorted part of the LSM: the newest version of each key
 * written since the last flush, with byte accounting so the engine knows
 * when to freeze it and start a new one.
 *
 * Mutable until freeze(); a frozen memtable is only read (by gets, scans,
 * and the flush that turns it into an SSTable).
 */
import { assert } from '../../util/assert.js';
import { compareBytes } from '../../util/bytes.js';
import type { EntryCursor } from '../engine.js';
import { type Entry, entryBytes, newer } from '../entry/entry.js';
import { SkipList, type SkipNode } from './skiplist.js';

const keepNewer = (existing: Entry, incoming: Entry): Entry => newer(existing, incoming)!;

export class Memtable {
  readonly #list = new SkipList();
  readonly walNumber: number;
  #bytes = 0;
  #frozen = false;
  #maxVersion = 0n;

  /** `walNumber`: the log holding this memtable's writes; it may go once the memtable is flushed. */
  constructor(walNumber: number) {
    this.walNumber = walNumber;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get count(): number {
    return this.#list.count;
  }

  get frozen(): boolean {
    return this.#frozen;
  }

  get maxVersion(): bigint {
    return this.#maxVersion;
  }

  put(entry: Entry): void {
    assert(!this.#frozen, 'Write to a frozen memtable');
    const replaced = this.#list.upsert(entry, keepNewer);
    this.#bytes += entryBytes(entry) - (replaced === undefined ? 0 : entryBytes(replaced));
    if (entry.version > this.#maxVersion) this.#maxVersion = entry.version;
  }

  get(key: Buffer): Entry | undefined {
    return this.#list.get(key);
  }

  freeze(): void {
    this.#frozen = true;
  }

  /** Every entry in key order (flush). */
  *entries(): Generator<Entry> {
    for (let node = this.#list.first(); node !== undefined; node = node.next[0]) yield node.entry;
  }

  /** Entries with start <= key < end, in batches of at most `batchMax` entries or about `batchBytesMax` bytes. */
  cursor(start: Buffer, end: Buffer | undefined, batchMax: number, batchBytesMax: number): EntryCursor {
    let node: SkipNode | undefined = this.#list.seek(start);
    return {
      async next() {
        const batch: Entry[] = [];
        let bytes = 0;
        while (node !== undefined && batch.length < batchMax && bytes < batchBytesMax) {
          if (end !== undefined && compareBytes(node.entry.key, end) >= 0) {
            node = undefined;
            break;
          }
          batch.push(node.entry);
          bytes += node.entry.key.length + node.entry.value.length;
          node = node.next[0];
        }
        return batch.length > 0 ? batch : undefined;
      },
      async close() {
        node = undefined;
      },
    };
  }
}
