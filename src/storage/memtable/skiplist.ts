/**
 * A skiplist of entries ordered by key bytes, one node per key.
 *
 * Single-threaded (the event loop), so no locking: an insert runs to
 * completion between any two steps of a reader. A cursor holds a node, and
 * nodes are never unlinked, so a cursor stays valid while inserts continue;
 * it sees keys inserted after its position.
 */
import { compareBytes } from '../../util/bytes.js';
import type { Entry } from '../entry/entry.js';

const LEVEL_MAX = 16;

/**
 * The key's first four bytes as an unsigned big-endian number (zero-padded):
 * most comparisons are decided by it without touching the key's bytes,
 * which saves a pointer chase and a cache miss per step of a search.
 */
function keyPrefix(key: Buffer): number {
  const n = key.length;
  return (
    (((n > 0 ? key[0]! : 0) << 24) |
      ((n > 1 ? key[1]! : 0) << 16) |
      ((n > 2 ? key[2]! : 0) << 8) |
      (n > 3 ? key[3]! : 0)) >>>
    0
  );
}

export class SkipNode {
  entry: Entry;
  readonly prefix: number;
  readonly next: (SkipNode | undefined)[];

  constructor(entry: Entry, height: number) {
    this.entry = entry;
    this.prefix = entry === undefined ? 0 : keyPrefix(entry.key);
    this.next = new Array<SkipNode | undefined>(height).fill(undefined);
  }
}

/** compareBytes(node's key, key), decided by the prefixes when they differ. */
function compareNode(node: SkipNode, key: Buffer, prefix: number): number {
  if (node.prefix !== prefix) return node.prefix < prefix ? -1 : 1;
  return compareBytes(node.entry.key, key);
}

export class SkipList {
  readonly #head = new SkipNode(undefined as unknown as Entry, LEVEL_MAX);
  readonly #prev = new Array<SkipNode>(LEVEL_MAX);
  #height = 1;
  #count = 0;
  // xorshift32: cheap, and deterministic per list so runs are reproducible.
  #seed = 0x9e3779b9;

  get count(): number {
    return this.#count;
  }

  /**
   * Inserts `entry`, or calls `merge(existing, entry)` and stores its result
   * when the key is present. Returns the entry that was replaced, if any.
   */
  upsert(entry: Entry, merge: (existing: Entry, incoming: Entry) => Entry): Entry | undefined {
    const prev = this.#prev;
    const prefix = keyPrefix(entry.key);
    let node = this.#head;
    for (let level = this.#height - 1; level >= 0; level--) {
      let next = node.next[level];
      while (next !== undefined && compareNode(next, entry.key, prefix) < 0) {
        node = next;
        next = node.next[level];
      }
      prev[level] = node;
    }
    const found = node.next[0];
    if (found !== undefined && compareBytes(found.entry.key, entry.key) === 0) {
      const existing = found.entry;
      found.entry = merge(existing, entry);
      return existing;
    }
    const height = this.#randomHeight();
    if (height > this.#height) {
      for (let level = this.#height; level < height; level++) prev[level] = this.#head;
      this.#height = height;
    }
    const inserted = new SkipNode(entry, height);
    for (let level = 0; level < height; level++) {
      const before = prev[level]!;
      inserted.next[level] = before.next[level];
      before.next[level] = inserted;
    }
    this.#count++;
    return undefined;
  }

  get(key: Buffer): Entry | undefined {
    const node = this.seek(key);
    return node !== undefined && compareBytes(node.entry.key, key) === 0 ? node.entry : undefined;
  }

  /** The first node with key >= `key`, or undefined. */
  seek(key: Buffer): SkipNode | undefined {
    const prefix = keyPrefix(key);
    let node = this.#head;
    for (let level = this.#height - 1; level >= 0; level--) {
      let next = node.next[level];
      while (next !== undefined && compareNode(next, key, prefix) < 0) {
        node = next;
        next = node.next[level];
      }
    }
    return node.next[0];
  }

  first(): SkipNode | undefined {
    return this.#head.next[0];
  }

  #randomHeight(): number {
    // Each level with probability 1/4: ~1.33 pointers per node.
    let x = this.#seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#seed = x >>> 0;
    let height = 1;
    let bits = this.#seed;
    while (height < LEVEL_MAX && (bits & 3) === 0) {
      height++;
      bits >>>= 2;
    }
    return height;
  }
}
