/**
 * The in-memory, sorted part of the LSM: the newest version of each key
 * written since the last flush, with byte accounting so the engine knows
 * when to freeze it and start a new one. Entries live encoded in an arena
 * (arena-skiplist.ts), so a memtable costs the garbage collector nothing
 * per write.
 *
 * Mutable until freeze(); a frozen memtable is only read (by gets, scans,
 * and the flush that turns it into an SSTable).
 */
import { assert } from '../../util/assert.js';
import { compareBytes } from '../../util/bytes.js';
import type { EntryCursor } from '../engine.js';
import type { Entry } from '../entry/entry.js';
import { ArenaSkipList, NODE_OVERHEAD_BYTES } from './arena-skiplist.js';

export class Memtable {
  readonly #list = new ArenaSkipList();
  readonly walNumber: number;
  #frozen = false;
  #maxVersion = 0n;
  /** The smallest version put here (superseded ones included, so at most the true minimum); undefined while empty. */
  #minVersion: bigint | undefined;

  /** `walNumber`: the log holding this memtable's writes; it may go once the memtable is flushed. */
  constructor(walNumber: number) {
    this.walNumber = walNumber;
  }

  /** Memory held: arena bytes (superseded versions included) and list overhead. */
  get bytes(): number {
    return this.#list.arenaBytes + this.#list.count * NODE_OVERHEAD_BYTES;
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

  /**
   * A lower bound on the versions held here (undefined while empty): a
   * compaction may drop a tombstone only below it (lsm/background.ts).
   */
  get minVersion(): bigint | undefined {
    return this.#minVersion;
  }

  /** Keeps the entry unless a newer version of its key is already here. The entry's buffers are copied. */
  put(entry: Entry): void {
    assert(!this.#frozen, 'Write to a frozen memtable');
    if (!this.#list.upsert(entry)) return;
    const version = entry.version;
    if (version > this.#maxVersion) this.#maxVersion = version;
    if (this.#minVersion === undefined || version < this.#minVersion) this.#minVersion = version;
  }

  /** The stored version of `key` (views into the arena), or undefined. */
  get(key: Buffer): Entry | undefined {
    const node = this.#list.find(key);
    return node === 0 ? undefined : this.#list.entryAt(node);
  }

  freeze(): void {
    this.#frozen = true;
  }

  /** Every entry in key order. */
  *entries(): Generator<Entry> {
    for (let node = this.#list.next(0); node !== 0; node = this.#list.next(node))
      yield this.#list.entryAt(node);
  }

  /** Bytes of every entry encoded back to back (codec.ts), as encodeInto() writes them. */
  encodedBytes(): number {
    let total = 0;
    for (let node = this.#list.next(0); node !== 0; node = this.#list.next(node))
      total += this.#list.encodedLength(node);
    return total;
  }

  /**
   * Copies the encoded entries, in key order, into `target` from entry
   * number `from` on, stopping after `countMax` entries; returns the next
   * entry number and the write offset, so the caller can spread the work
   * over event-loop turns. The memtable must be frozen.
   */
  encodeInto(target: Buffer, at: number, cursor: { node: number }, countMax: number): number {
    assert(this.#frozen, 'Only a frozen memtable is encoded');
    let offset = at;
    let node = cursor.node === 0 ? this.#list.next(0) : cursor.node;
    for (let i = 0; i < countMax && node !== 0; i++) {
      offset = this.#list.copyEncoded(node, target, offset);
      node = this.#list.next(node);
    }
    cursor.node = node;
    return offset;
  }

  /** Entries with start <= key < end, in batches of at most `batchMax` entries or about `batchBytesMax` bytes. */
  cursor(start: Buffer, end: Buffer | undefined, batchMax: number, batchBytesMax: number): EntryCursor {
    const list = this.#list;
    let node = list.seek(start);
    return {
      async next() {
        const batch: Entry[] = [];
        let bytes = 0;
        while (node !== 0 && batch.length < batchMax && bytes < batchBytesMax) {
          if (end !== undefined && compareBytes(list.keyAt(node), end) >= 0) {
            node = 0;
            break;
          }
          const entry = list.entryAt(node);
          batch.push(entry);
          bytes += entry.key.length + entry.value.length;
          node = list.next(node);
        }
        return batch.length > 0 ? batch : undefined;
      },
      async close() {
        node = 0;
      },
    };
  }
}
