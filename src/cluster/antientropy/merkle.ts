/**
 * Digests of a key set, cut into buckets by key hash, and the Merkle tree over them.
 *
 * A key's bucket is the top `leafBits` bits of its ring hash (hash32 of the
 * key), so buckets are slices of the ring and every node puts a key in the
 * same bucket. A bucket's digest is (count, h1, h2): the number of entries
 * and two 32-bit sums, modulo 2^32, of per-entry hashes of (key, version,
 * kind, value hash) under two seeds. Sums make the digest independent of the order in
 * which entries are added, so a node can fold its entries in while scanning
 * in key order, and a parent's digest is the sum of its children's. Two
 * buckets with different contents get equal digests with a chance of about
 * 2^-64 per comparison (for contents nobody crafted).
 *
 * The tree: level 0 holds the 2^leafBits leaves; each level above sums pairs
 * of the level below, up to the root. diffLeaves() descends from the root
 * into differing subtrees only and returns the differing leaves.
 *
 * Example:
 *   const leaves = new LeafDigests(10);
 *   leaves.add(entry);
 *   const differing = diffLeaves(MerkleTree.of(leaves), MerkleTree.of(remote));
 */
import { type Entry, EntryKind } from '../../storage/index.js';
import { assert } from '../../util/assert.js';
import { writeU64BE } from '../../util/bytes.js';
import { murmur3 } from '../../util/hash.js';
import { hash32 } from '../ring/index.js';

/** Seeds of the two per-entry hashes. On-wire meaning: never change (peers compare sums). */
export const ENTRY_HASH_SEED_1 = 0x5bd1e995;
export const ENTRY_HASH_SEED_2 = 0x1b873593;
/** Seed of the value hash (valueHash). On-wire meaning: never change. */
export const VALUE_HASH_SEED = 0x85ebca6b;
/** Words per digest: count, h1, h2. */
export const DIGEST_WORDS = 3;

/** Entries counted by digests laid out `DIGEST_WORDS` words each (count first). */
export function countedEntries(words: Uint32Array): number {
  let total = 0;
  for (let i = 0; i < words.length; i += DIGEST_WORDS) total += words[i]!;
  return total;
}

/** The bucket of a key: the top `leafBits` bits of its ring hash. */
export function bucketOf(key: Uint8Array, leafBits: number): number {
  return hash32(key) >>> (32 - leafBits);
}

const _expiry = Buffer.alloc(6);

/**
 * A 32-bit hash of an entry's value and expiry (0 for a tombstone): it tells
 * apart two writes stamped with one version (by two coordinators) whose
 * values differ, or whose expiries do (compareVersions breaks both ties),
 * which the version and kind alone cannot. On-wire meaning (format.ts's
 * version): a value that never expires hashes its bytes; one that expires
 * then hashes its expiry (u48 BE) with that hash as the seed, so that the
 * value is not copied to be hashed with it.
 */
export function valueHash(entry: Pick<Entry, 'kind' | 'value' | 'expiresAtMs'>): number {
  if (entry.kind === EntryKind.Tombstone) return 0;
  const bytes = hash32(entry.value, VALUE_HASH_SEED);
  if (entry.expiresAtMs === 0) return bytes;
  _expiry.writeUIntBE(entry.expiresAtMs, 0, 6);
  return hash32(_expiry, bytes);
}

let _scratch = Buffer.alloc(256);
const _hashes = new Uint32Array(2);

/**
 * The two per-entry hashes of (key, version, kind, value hash) into out[0]
 * and out[1]: what a digest sums. On-wire meaning: peers compare sums of them.
 */
export function entryHashes(
  key: Uint8Array,
  version: bigint,
  kind: number,
  value: number,
  out: Uint32Array,
): void {
  const need = key.length + 13;
  if (_scratch.length < need) _scratch = Buffer.alloc(Math.max(need, 2 * _scratch.length));
  const scratch = _scratch;
  scratch.set(key, 0);
  writeU64BE(scratch, key.length, version);
  scratch[key.length + 8] = kind;
  scratch.writeUInt32BE(value >>> 0, key.length + 9);
  // The hash of scratch[0, need), read in place: a view of it would be garbage per write.
  out[0] = murmur3(scratch, ENTRY_HASH_SEED_1, 0, need);
  out[1] = murmur3(scratch, ENTRY_HASH_SEED_2, 0, need);
}

export class LeafDigests {
  readonly leafBits: number;
  /** DIGEST_WORDS words per leaf: count, h1, h2 (sums wrap at 2^32 as Uint32Array stores them). */
  readonly words: Uint32Array;

  constructor(leafBits: number, words?: Uint32Array) {
    assert(
      Number.isInteger(leafBits) && leafBits >= 1 && leafBits <= 16,
      `leafBits out of range: ${leafBits}`,
    );
    this.leafBits = leafBits;
    const size = DIGEST_WORDS << leafBits;
    assert(words === undefined || words.length === size, 'digest words do not match leafBits');
    this.words = words ?? new Uint32Array(size);
  }

  get leafCount(): number {
    return 1 << this.leafBits;
  }

  /** Folds one entry into its bucket; returns the bucket. */
  add(entry: Entry): number {
    const bucket = bucketOf(entry.key, this.leafBits);
    this.addTo(bucket, entry);
    return bucket;
  }

  /** Folds one entry into a bucket the caller computed with bucketOf(). */
  addTo(bucket: number, entry: Pick<Entry, 'key' | 'version' | 'kind' | 'value' | 'expiresAtMs'>): void {
    entryHashes(entry.key, entry.version, entry.kind, valueHash(entry), _hashes);
    this.addHashes(bucket, 1, _hashes[0]!, _hashes[1]!);
  }

  /** Adds a digest (count, h1, h2) to a bucket. */
  addHashes(bucket: number, count: number, h1: number, h2: number): void {
    const at = bucket * DIGEST_WORDS;
    const words = this.words;
    words[at] = words[at]! + count;
    words[at + 1] = words[at + 1]! + h1;
    words[at + 2] = words[at + 2]! + h2;
  }

  /** Entries folded in, all buckets together. */
  count(): number {
    return countedEntries(this.words);
  }
}

export class MerkleTree {
  /** levels[0] are the leaves; levels[leafBits] is the root alone. */
  readonly levels: readonly Uint32Array[];

  private constructor(levels: Uint32Array[]) {
    this.levels = levels;
  }

  static of(leaves: LeafDigests): MerkleTree {
    const levels: Uint32Array[] = [leaves.words];
    for (let level = 1; level <= leaves.leafBits; level++) {
      const below = levels[level - 1]!;
      const nodes = below.length / DIGEST_WORDS / 2;
      const words = new Uint32Array(nodes * DIGEST_WORDS);
      for (let node = 0; node < nodes; node++) {
        for (let w = 0; w < DIGEST_WORDS; w++) {
          words[node * DIGEST_WORDS + w] =
            below[2 * node * DIGEST_WORDS + w]! + below[(2 * node + 1) * DIGEST_WORDS + w]!;
        }
      }
      levels.push(words);
    }
    return new MerkleTree(levels);
  }

  /** The root digest: count, h1, h2 of the whole set. */
  root(): [number, number, number] {
    const top = this.levels.at(-1)!;
    return [top[0]!, top[1]!, top[2]!];
  }
}

/** True when node `index` of `level` has the same digest in both trees. */
function _sameNode(a: MerkleTree, b: MerkleTree, level: number, index: number): boolean {
  const x = a.levels[level]!;
  const y = b.levels[level]!;
  const at = index * DIGEST_WORDS;
  return x[at] === y[at] && x[at + 1] === y[at + 1] && x[at + 2] === y[at + 2];
}

/**
 * The leaves whose digests differ, ascending. Descends from the root and
 * skips every subtree whose digests agree; both trees need the same leafBits.
 */
export function diffLeaves(a: MerkleTree, b: MerkleTree): number[] {
  assert(a.levels.length === b.levels.length, 'trees of different depths');
  const out: number[] = [];
  const top = a.levels.length - 1;
  // Depth-first, left child last pushed first popped, so leaves come out ascending.
  const stack: [number, number][] = [[top, 0]];
  while (stack.length > 0) {
    const [level, index] = stack.pop()!;
    if (_sameNode(a, b, level, index)) continue;
    if (level === 0) {
      out.push(index);
      continue;
    }
    stack.push([level - 1, 2 * index + 1], [level - 1, 2 * index]);
  }
  return out;
}
