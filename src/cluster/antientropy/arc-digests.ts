/**
 * Digests per ring arc, kept current as writes arrive (indexed-engine.ts),
 * and what an exchange derives from them for one pair of nodes.
 *
 * The ring's points cut the hash space into arcs; every key of an arc has
 * the same replica list, so the keys a pair (X, Y) shares are a union of
 * whole arcs and no key needs looking at to tell. An arc's digest is the
 * same (count, h1, h2) as a bucket's (merkle.ts), summed over the arc's
 * newest entries. A pair's leaf b is the sum of the arcs it shares whose
 * point (the arc's last hash) falls in bucket b (the top leafBits bits):
 * both sides compute it from the same ring, so equal key sets give equal
 * leaves. Within differing leaves the pair compares arc digests (arcsIn,
 * wordsOf), and the keys behind differing arcs are their hash ranges
 * (arcRanges), read from the hash-ordered index.
 *
 * Example:
 *   const arcs = new ArcDigests(ring);
 *   arcs.add(hash32(key), key, version, kind, valueHash(entry), 1);
 *   const leaves = arcs.leaves(scope);
 */
import { assert } from '../../util/assert.js';
import type { Ring } from '../ring/index.js';
import { bitmapHas } from './format.js';
import { countedEntries, DIGEST_WORDS, entryHashes, LeafDigests } from './merkle.js';
import type { PairScope } from './scan.js';

const RING_SPAN = 2 ** 32;
const _hashes = new Uint32Array(2);

export class ArcDigests {
  readonly ring: Ring;
  /** DIGEST_WORDS words per ring point: count, h1, h2 of its arc. */
  readonly words: Uint32Array;

  constructor(ring: Ring, words?: Uint32Array) {
    this.ring = ring;
    const size = DIGEST_WORDS * ring.pointCount;
    assert(words === undefined || words.length === size, 'arc digests do not match the ring');
    this.words = words ?? new Uint32Array(size);
  }

  /** Adds (sign 1) or takes away (sign -1) one entry of the key whose ring hash is `hash`. */
  add(hash: number, key: Uint8Array, version: bigint, kind: number, value: number, sign: 1 | -1): void {
    entryHashes(key, version, kind, value, _hashes);
    const at = this.ring.pointOf(hash) * DIGEST_WORDS;
    const words = this.words;
    words[at] = words[at]! + sign;
    words[at + 1] = words[at + 1]! + sign * _hashes[0]!;
    words[at + 2] = words[at + 2]! + sign * _hashes[1]!;
  }

  /** Entries counted, every arc together. */
  count(): number {
    return countedEntries(this.words);
  }

  /** The pair's leaves: its shared arcs summed into the bucket of each arc's point. */
  leaves(scope: PairScope): LeafDigests {
    assert(scope.ring.fingerprint === this.ring.fingerprint, 'leaves of another ring');
    const leaves = new LeafDigests(scope.leafBits);
    const shift = 32 - scope.leafBits;
    const words = this.words;
    for (let point = 0; point < this.ring.pointCount; point++) {
      const at = point * DIGEST_WORDS;
      if (words[at] === 0 && words[at + 1] === 0 && words[at + 2] === 0) continue;
      if (!_shares(scope, point)) continue;
      leaves.addHashes(this.ring.pointPosition(point) >>> shift, words[at]!, words[at + 1]!, words[at + 2]!);
    }
    return leaves;
  }

  /** The digests of the given arcs, in their order: DIGEST_WORDS words each. */
  wordsOf(points: readonly number[]): Uint32Array {
    const out = new Uint32Array(DIGEST_WORDS * points.length);
    for (let i = 0; i < points.length; i++) {
      const at = points[i]! * DIGEST_WORDS;
      out[DIGEST_WORDS * i] = this.words[at]!;
      out[DIGEST_WORDS * i + 1] = this.words[at + 1]!;
      out[DIGEST_WORDS * i + 2] = this.words[at + 2]!;
    }
    return out;
  }
}

/** The pair's arcs (their points, ascending) whose point falls in a bucket set in `bitmap`. */
export function arcsIn(scope: PairScope, bitmap: Uint8Array): number[] {
  const ring = scope.ring;
  const shift = 32 - scope.leafBits;
  const out: number[] = [];
  for (let point = 0; point < ring.pointCount; point++) {
    if (bitmapHas(bitmap, ring.pointPosition(point) >>> shift) && _shares(scope, point)) out.push(point);
  }
  return out;
}

/**
 * Whether `points` is a valid selection of the pair's arcs: ascending,
 * on the ring, shared by the pair (what an answering node checks).
 */
export function validArcs(scope: PairScope, points: readonly number[]): boolean {
  for (let i = 0; i < points.length; i++) {
    const point = points[i]!;
    if (!Number.isInteger(point) || point < 0 || point >= scope.ring.pointCount) return false;
    if (i > 0 && point <= points[i - 1]!) return false;
    if (!_shares(scope, point)) return false;
  }
  return true;
}

/**
 * The hash ranges holding the keys of the given arcs: sorted, disjoint
 * [start, end) pairs, flattened, end up to 2^32.
 */
export function arcRanges(ring: Ring, points: readonly number[]): number[] {
  const last = ring.pointCount - 1;
  const pieces: [number, number][] = [];
  for (const point of points) {
    const position = ring.pointPosition(point);
    if (point === 0) {
      // Point 0's arc wraps: the hashes after the last point, and those up to point 0.
      pieces.push([0, position + 1]);
      if (ring.pointPosition(last) + 1 < RING_SPAN) pieces.push([ring.pointPosition(last) + 1, RING_SPAN]);
    } else {
      pieces.push([ring.pointPosition(point - 1) + 1, position + 1]);
    }
  }
  pieces.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [start, end] of pieces) {
    if (start >= end) continue;
    if (out.length > 0 && out[out.length - 1] === start) out[out.length - 1] = end;
    else out.push(start, end);
  }
  return out;
}

function _shares(scope: PairScope, point: number): boolean {
  if (scope.replicationFactor >= scope.ring.nodes.length) return true;
  const replicas = scope.ring.pointReplicas(point, scope.replicationFactor);
  return replicas.includes(scope.self) && replicas.includes(scope.peer);
}
