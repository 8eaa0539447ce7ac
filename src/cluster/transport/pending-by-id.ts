/**
 * The requests a link has in flight, by id: a table indexed by the id's low
 * bits, with ids handed out so that no two requests in flight share a slot.
 * An answer finds its request in one look, and an answer to a request that
 * is gone (timed out) finds nothing, or another id, and is dropped.
 *
 * Adding and removing allocate nothing once the table has grown to twice the
 * most requests ever in flight. Why not a Map: a long-lived Map that gains
 * and loses an entry per request rehashes every few requests, and V8
 * allocates an old Map's new tables in the old generation; at a few thousand
 * requests per second that garbage alone brought a full collection every few
 * seconds (docs/performance.md, "In-flight collections").
 */
import { assert } from '../../util/assert.js';

const SLOTS_INITIAL = 16;

export class PendingById<T extends { readonly id: number }> {
  #slots: (T | undefined)[] = new Array<T | undefined>(SLOTS_INITIAL).fill(undefined);
  #mask = SLOTS_INITIAL - 1;
  #size = 0;
  #nextId = 1;

  get size(): number {
    return this.#size;
  }

  /** An id for the next add(): never 0, and its slot is free. */
  nextId(): number {
    // At most half full, so that the search for a free slot is short.
    if (this.#size >= (this.#mask + 1) >>> 1) this.#grow();
    let id = this.#nextId;
    while (id === 0 || this.#slots[id & this.#mask] !== undefined) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    return id;
  }

  /** Files `item`, whose id came from nextId() with nothing added since. */
  add(item: T): void {
    const slot = item.id & this.#mask;
    assert(this.#slots[slot] === undefined, 'pending id slot taken');
    this.#slots[slot] = item;
    this.#size++;
  }

  get(id: number): T | undefined {
    const item = this.#slots[id & this.#mask];
    return item !== undefined && item.id === id ? item : undefined;
  }

  /** Removes `item`; false if it was not filed. */
  delete(item: T): boolean {
    const slot = item.id & this.#mask;
    if (this.#slots[slot] !== item) return false;
    this.#slots[slot] = undefined;
    this.#size--;
    return true;
  }

  /** Removes every item and returns them. */
  takeAll(): T[] {
    const items: T[] = [];
    for (const item of this.#slots) if (item !== undefined) items.push(item);
    this.#slots.fill(undefined);
    this.#size = 0;
    return items;
  }

  #grow(): void {
    const old = this.#slots;
    // Ids distinct modulo the old size stay distinct modulo twice it.
    this.#slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    this.#mask = this.#slots.length - 1;
    for (const item of old) if (item !== undefined) this.#slots[item.id & this.#mask] = item;
  }
}
