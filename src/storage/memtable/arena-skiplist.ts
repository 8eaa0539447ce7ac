/**
 * A skiplist of entries that allocates no JavaScript object per entry.
 *
 * Why: a memtable holds every write of the last few seconds, so each of its
 * objects survives the young generation and is copied by every scavenge
 * until the flush. With an object, a key and a value Buffer and a node per
 * write, scavenges grew to 10-20 ms under a few thousand writes per second,
 * and request latency with them. Here the entries live encoded (codec.ts) in
 * append-only 1 MiB arena chunks, and the list itself is typed arrays, which
 * the garbage collector never walks.
 *
 * Layout, for node n (0 is the head):
 *   chunkOf[n], offsetOf[n], lengthOf[n]  where its encoded entry lives
 *   keyStart[n], keyLength[n]              its key, inside that record
 *   word0[n] .. word3[n]                   key bytes 0-3, 4-7, 8-11, 12-15 (big-endian,
 *                                          zero-padded): most comparisons end here
 *   links[tower[n] + level]                next node at each level, 0 = none
 *
 * One node per key: a newer version of a key is appended to the arena and
 * the node repointed to it (the old record's bytes stay, counted as used).
 * Entries handed out are views into the arena chunks, which are never
 * written again once a record is in them.
 *
 * Single-threaded (the event loop); a cursor holds a node index, and nodes
 * are never removed, so cursors stay valid while inserts continue.
 */
import { assert } from '../../util/assert.js';
import { compareRange, keyWord, varintBytes } from '../../util/bytes.js';
import { decodeEntry, encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import { EMPTY, type Entry } from '../entry/entry.js';
import { RecordView } from '../entry/record.js';

const LEVEL_MAX = 16;
const CHUNK_BYTES = 1024 * 1024;
/**
 * A record larger than this gets a buffer of its own, and the chunk being
 * filled stays current: otherwise the chunk's unused end would be left
 * behind (up to a chunk per large record, uncounted by bytes), and every
 * small record after a record larger than a chunk would start a new chunk.
 */
const RECORD_OWN_BUFFER_BYTES = CHUNK_BYTES / 4;
const NODES_INITIAL = 4096;
/** Reused to read a record in place (#compareToEntry); parse() overwrites all of its fields. */
const _view = new RecordView();
/** Typed-array bytes per node (12 fields of 4 bytes) plus its tower (~1.33 links of 4 bytes). */
export const NODE_OVERHEAD_BYTES = 56;

export class ArenaSkipList {
  readonly #chunks: Buffer[] = [];
  /** The chunk small records are appended to (-1: none yet), and how much of it is used. */
  #current = -1;
  #chunkUsed = 0;
  #arenaBytes = 0;

  #capacity = NODES_INITIAL;
  #count = 0; // nodes, the head included
  #chunkOf = new Int32Array(NODES_INITIAL);
  #offsetOf = new Int32Array(NODES_INITIAL);
  #lengthOf = new Int32Array(NODES_INITIAL);
  #keyStart = new Int32Array(NODES_INITIAL);
  #keyLength = new Int32Array(NODES_INITIAL);
  #word0 = new Uint32Array(NODES_INITIAL);
  #word1 = new Uint32Array(NODES_INITIAL);
  #word2 = new Uint32Array(NODES_INITIAL);
  #word3 = new Uint32Array(NODES_INITIAL);
  #tower = new Int32Array(NODES_INITIAL);
  #links = new Int32Array(NODES_INITIAL * 2);
  #linksUsed = 0;

  readonly #prev = new Int32Array(LEVEL_MAX);
  #height = 1;
  #seed = 0x9e3779b9;

  constructor() {
    // The head: a full tower, no entry.
    this.#tower[0] = 0;
    this.#linksUsed = LEVEL_MAX;
    this.#count = 1;
  }

  /** Entries (distinct keys) in the list. */
  get count(): number {
    return this.#count - 1;
  }

  /** Arena bytes used, superseded records included. */
  get arenaBytes(): number {
    return this.#arenaBytes;
  }
  /** Bytes of the buffers the records live in: arenaBytes, plus the unused ends of chunks. */
  get allocatedBytes(): number {
    let bytes = 0;
    for (const chunk of this.#chunks) bytes += chunk.length;
    return bytes;
  }

  /**
   * Stores `entry` unless the list holds a newer version of its key
   * (compareVersions). Returns whether it was stored.
   */
  upsert(entry: Entry): boolean {
    const key = entry.key;
    const w0 = keyWord(key, 0, key.length, 0);
    const w1 = keyWord(key, 0, key.length, 4);
    const w2 = keyWord(key, 0, key.length, 8);
    const w3 = keyWord(key, 0, key.length, 12);
    const prev = this.#prev;
    const links = this.#links;
    const node = this.#descend(key, w0, w1, w2, w3, prev);
    const found = links[this.#tower[node]!]!;
    if (found !== 0 && this.#compareNode(found, key, w0, w1, w2, w3) === 0) {
      if (this.#compareToEntry(found, entry) >= 0) return false;
      this.#place(found, entry);
      return true;
    }
    const height = this.#randomHeight();
    if (height > this.#height) {
      for (let level = this.#height; level < height; level++) prev[level] = 0;
      this.#height = height;
    }
    const inserted = this.#newNode(height);
    this.#place(inserted, entry);
    this.#word0[inserted] = w0;
    this.#word1[inserted] = w1;
    this.#word2[inserted] = w2;
    this.#word3[inserted] = w3;
    const tower = this.#tower[inserted]!;
    const linksNow = this.#links;
    for (let level = 0; level < height; level++) {
      const before = this.#tower[prev[level]!]! + level;
      linksNow[tower + level] = linksNow[before]!;
      linksNow[before] = inserted;
    }
    return true;
  }

  /** The node holding `key`, or 0. */
  find(key: Buffer): number {
    const w0 = keyWord(key, 0, key.length, 0);
    const w1 = keyWord(key, 0, key.length, 4);
    const w2 = keyWord(key, 0, key.length, 8);
    const w3 = keyWord(key, 0, key.length, 12);
    const node = this.#links[this.#tower[this.#descend(key, w0, w1, w2, w3, undefined)]!]!;
    return node !== 0 && this.#compareNode(node, key, w0, w1, w2, w3) === 0 ? node : 0;
  }

  /** The first node with key >= `key`, or 0. */
  seek(key: Buffer): number {
    const w0 = keyWord(key, 0, key.length, 0);
    const w1 = keyWord(key, 0, key.length, 4);
    const w2 = keyWord(key, 0, key.length, 8);
    const w3 = keyWord(key, 0, key.length, 12);
    return this.#links[this.#tower[this.#descend(key, w0, w1, w2, w3, undefined)]!]!;
  }

  /** The node after `node` in key order (0 for the head gives the first), or 0. */
  next(node: number): number {
    return this.#links[this.#tower[node]!]!;
  }

  /** The entry of `node`: views into the arena. */
  entryAt(node: number): Entry {
    const chunk = this.#chunks[this.#chunkOf[node]!]!;
    const offset = this.#offsetOf[node]!;
    const decoded = decodeEntry(chunk, offset, offset + this.#lengthOf[node]!);
    assert(typeof decoded !== 'string', 'Arena record does not decode');
    return decoded[0];
  }

  /** compareVersions(entry of `node`, `entry`), for a node of the entry's key, read in place: no Entry made. */
  #compareToEntry(node: number, entry: Entry): number {
    const chunk = this.#chunks[this.#chunkOf[node]!]!;
    const offset = this.#offsetOf[node]!;
    const bad = _view.parse(chunk, offset, offset + this.#lengthOf[node]!);
    assert(bad === undefined, 'Arena record does not decode');
    const order = _view.compareVersionTo(entry);
    _view.buf = EMPTY; // not to pin the arena's chunk
    return order;
  }

  /** The key of `node`: a view into the arena. */
  keyAt(node: number): Buffer {
    const chunk = this.#chunks[this.#chunkOf[node]!]!;
    const start = this.#keyStart[node]!;
    return chunk.subarray(start, start + this.#keyLength[node]!);
  }

  /** Bytes of `node`'s encoded entry (codec.ts). */
  encodedLength(node: number): number {
    return this.#lengthOf[node]!;
  }

  /** Copies `node`'s encoded entry into `target` at `at`; returns the end offset. */
  copyEncoded(node: number, target: Buffer, at: number): number {
    const offset = this.#offsetOf[node]!;
    return at + this.#chunks[this.#chunkOf[node]!]!.copy(target, at, offset, offset + this.#lengthOf[node]!);
  }

  /**
   * The last node with key < `key` (0, the head, if none), found from the
   * top level down; with `prev`, the last such node at every level too.
   */
  #descend(
    key: Buffer,
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    prev: Int32Array | undefined,
  ): number {
    const links = this.#links;
    let node = 0;
    for (let level = this.#height - 1; level >= 0; level--) {
      let next = links[this.#tower[node]! + level]!;
      while (next !== 0 && this.#compareNode(next, key, w0, w1, w2, w3) < 0) {
        node = next;
        next = links[this.#tower[node]! + level]!;
      }
      if (prev !== undefined) prev[level] = node;
    }
    return node;
  }

  /** compareBytes(key of `node`, key), decided by the cached words when they differ. */
  #compareNode(node: number, key: Buffer, w0: number, w1: number, w2: number, w3: number): number {
    const n0 = this.#word0[node]!;
    if (n0 !== w0) return n0 < w0 ? -1 : 1;
    const n1 = this.#word1[node]!;
    if (n1 !== w1) return n1 < w1 ? -1 : 1;
    // Keys often share a prefix of 8 bytes or more ("user:000…"): two more words before the arena.
    const n2 = this.#word2[node]!;
    if (n2 !== w2) return n2 < w2 ? -1 : 1;
    const n3 = this.#word3[node]!;
    if (n3 !== w3) return n3 < w3 ? -1 : 1;
    // Compared in place: a view per step would allocate on every search.
    const start = this.#keyStart[node]!;
    return compareRange(
      this.#chunks[this.#chunkOf[node]!]!,
      start,
      start + this.#keyLength[node]!,
      key,
      0,
      key.length,
    );
  }

  /** Appends the encoded entry to the arena and points `node` at it. */
  #place(node: number, entry: Entry): void {
    const size = encodedEntryBytes(entry);
    let chunkIndex: number;
    if (size > RECORD_OWN_BUFFER_BYTES) {
      chunkIndex = this.#chunks.push(Buffer.allocUnsafeSlow(size)) - 1;
    } else {
      if (this.#current < 0 || this.#chunkUsed + size > CHUNK_BYTES) {
        this.#current = this.#chunks.push(Buffer.allocUnsafeSlow(CHUNK_BYTES)) - 1;
        this.#chunkUsed = 0;
      }
      chunkIndex = this.#current;
    }
    const chunk = this.#chunks[chunkIndex]!;
    const offset = chunkIndex === this.#current ? this.#chunkUsed : 0;
    const end = encodeEntry(entry, chunk, offset);
    if (chunkIndex === this.#current) this.#chunkUsed = end;
    this.#arenaBytes += end - offset;
    this.#chunkOf[node] = chunkIndex;
    this.#offsetOf[node] = offset;
    this.#lengthOf[node] = end - offset;
    // The key sits after the fixed fields and its varint length (codec.ts).
    this.#keyLength[node] = entry.key.length;
    this.#keyStart[node] =
      offset + (end - offset) - entry.value.length - varintBytes(entry.value.length) - entry.key.length;
  }

  #newNode(height: number): number {
    if (this.#count === this.#capacity) this.#growNodes();
    if (this.#linksUsed + height > this.#links.length) {
      const links = new Int32Array(this.#links.length * 2);
      links.set(this.#links);
      this.#links = links;
    }
    const node = this.#count++;
    this.#tower[node] = this.#linksUsed;
    this.#links.fill(0, this.#linksUsed, this.#linksUsed + height);
    this.#linksUsed += height;
    return node;
  }

  #growNodes(): void {
    const capacity = this.#capacity * 2;
    const grow = <T extends Int32Array | Uint32Array>(old: T, make: (n: number) => T): T => {
      const next = make(capacity);
      next.set(old);
      return next;
    };
    const i32 = (n: number) => new Int32Array(n);
    const u32 = (n: number) => new Uint32Array(n);
    this.#chunkOf = grow(this.#chunkOf, i32);
    this.#offsetOf = grow(this.#offsetOf, i32);
    this.#lengthOf = grow(this.#lengthOf, i32);
    this.#keyStart = grow(this.#keyStart, i32);
    this.#keyLength = grow(this.#keyLength, i32);
    this.#word0 = grow(this.#word0, u32);
    this.#word1 = grow(this.#word1, u32);
    this.#word2 = grow(this.#word2, u32);
    this.#word3 = grow(this.#word3, u32);
    this.#tower = grow(this.#tower, i32);
    this.#capacity = capacity;
  }

  #randomHeight(): number {
    // Each level with probability 1/4: ~1.33 links per node. xorshift32, deterministic per list.
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
