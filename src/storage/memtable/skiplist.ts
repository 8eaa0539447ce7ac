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
 * Four key bytes from `at` as an unsigned big-endian number (zero-padded).
 * A node keeps its key's first eight bytes this way, so that most steps of a
 * search are decided without touching the key's bytes (a pointer chase and a
 * cache miss each); keys with a common prefix such as "user:" still differ
 * within eight bytes more often than not.
 */
function keyWord(key: Buffer, at: number): number {
  const n = key.length;
  return (
    (((n > at ? key[at]! : 0) << 24) |
      ((n > at + 1 ? key[at + 1]! : 0) << 16) |
      ((n > at + 2 ? key[at + 2]! : 0) << 8) |
      (n > at + 3 ? key[at + 3]! : 0)) >>>
    0
  );
}

export class SkipNode {
  entry: Entry;
  readonly word0: number;
  readonly word1: number;
  readonly next: (SkipNode | undefined)[];

  constructor(entry: Entry, height: number) {
    this.entry = entry;
    this.word0 = entry === undefined ? 0 : keyWord(entry.key, 0);
    this.word1 = entry === undefined ? 0 : keyWord(entry.key, 4);
    this.next = new Array<SkipNode | undefined>(height).fill(undefined);
  }
}

/** compareBytes(node's key, key), decided by the first eight bytes when they differ. */
function compareNode(node: SkipNode, key: Buffer, word0: number, word1: number): number {
  if (node.word0 !== word0) return node.word0 < word0 ? -1 : 1;
  if (node.word1 !== word1) return node.word1 < word1 ? -1 : 1;
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
    const word0 = keyWord(entry.key, 0);
    const word1 = keyWord(entry.key, 4);
    let node = this.#head;
    for (let level = this.#height - 1; level >= 0; level--) {
      let next = node.next[level];
      while (next !== undefined && compareNode(next, entry.key, word0, word1) < 0) {
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
    const word0 = keyWord(key, 0);
    const word1 = keyWord(key, 4);
    let node = this.#head;
    for (let level = this.#height - 1; level >= 0; level--) {
      let next = node.next[level];
      while (next !== undefined && compareNode(next, key, word0, word1) < 0) {
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
