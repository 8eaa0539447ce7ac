/**
 * The token ring: which nodes hold a key.
 *
 * Every node of `--cluster` gets `vnodesPerNode` points on a 32-bit circle, at
 * hash32("<url>#<index>"). A key sits at hash32(key); its replicas are the
 * first `from` distinct nodes met walking clockwise from there (the point at
 * or after the key's hash first, wrapping past 2^32 - 1 to 0). Hence:
 *
 * - every node given the same set of URLs, in any order and with repeats,
 *   computes the same ring (nodes are sorted and deduplicated first, and ties
 *   between points are broken by URL);
 * - replicas(key, f) is a prefix of replicas(key, f + 1): API.md's promise
 *   that a smaller `from` picks a subset of a larger one;
 * - a node's share of keys is the sum of its points' arcs. With V points per
 *   node the share's relative spread is about 1/sqrt(V). Measured over 245
 *   sets of 3 to 7 realistic URLs, the worst node's share of the circle was
 *   off the even share by 10.4% at V = 1,024, 6.7% at 2,048 and 5.4% at
 *   4,096, the default (ring.test.ts checks ±10% with 100,000 random keys).
 *
 * replicas() is on the path of every request, so the walk is done once, here:
 * for every arc the construction records its clockwise order of distinct
 * nodes (up to 8 deep), interned since few distinct orders exist, and each
 * order caches its prefix arrays. A lookup is one hash, one binary search and
 * one array read; it allocates nothing once warm and returns a frozen array
 * shared between calls. Construction costs O(points x nodes).
 */
import { AssertionError, assert } from '../../util/assert.js';
import { hash32 } from './hash.js';

export interface RingOptions {
  /** Points per node on the circle (default 4,096; see the balance note above). */
  readonly vnodesPerNode?: number;
  /**
   * The name a node's points are placed by, when not its own URL: a node that
   * replaces a dead one (`serve --replace`) takes the dead node's points, so
   * that it owns exactly the ranges the dead node owned. Names need not be
   * distinct from URLs; nodes without an entry are placed by their URL.
   */
  readonly tokens?: ReadonlyMap<string, string>;
}

export const VNODES_PER_NODE_DEFAULT = 4096;
/** Owners are stored in a Uint16Array; far beyond any cluster this design serves. */
const NODES_MAX = 0xffff;
const OWNER_SPAN = 0x10000;
/** Positions on the circle: 0 .. 2^32 - 1. */
const RING_SPAN = 2 ** 32;
/**
 * Replica orders are precomputed this deep: covers every cluster of up to 8
 * nodes; in larger ones a `from` above 8 walks the points (rare: replication
 * factors stay small). Bounds memory at points x 8 references.
 */
const DEPTH_PRECOMPUTED_MAX = 8;

export class Ring {
  /** The cluster's node URLs, sorted and deduplicated. */
  readonly nodes: readonly string[];
  /** Point positions on the circle, ascending. */
  readonly #positions: Uint32Array;
  /** Point owners, indexes into `nodes`. */
  readonly #owners: Uint16Array;
  /** For each point, the first `#depth` distinct nodes clockwise from it. */
  readonly #arcs: _Arc[];
  readonly #depth: number;
  #fingerprint: number | undefined;

  constructor(urls: readonly string[], options: RingOptions = {}) {
    const vnodes = options.vnodesPerNode ?? VNODES_PER_NODE_DEFAULT;
    assert(Number.isInteger(vnodes) && vnodes >= 1, `vnodesPerNode must be a positive integer: ${vnodes}`);
    const nodes = [...new Set(urls)].sort();
    assert(nodes.length >= 1, 'A ring needs at least one node');
    assert(nodes.length <= NODES_MAX, `Too many nodes: ${nodes.length} > ${NODES_MAX}`);
    this.nodes = Object.freeze(nodes);

    const points = _placePoints(
      nodes.map((url) => options.tokens?.get(url) ?? url),
      vnodes,
    );
    this.#positions = new Uint32Array(points.length);
    this.#owners = new Uint16Array(points.length);
    for (let i = 0; i < points.length; i++) {
      const point = points[i]!;
      this.#positions[i] = Math.floor(point / OWNER_SPAN);
      this.#owners[i] = point % OWNER_SPAN;
    }
    this.#depth = Math.min(nodes.length, DEPTH_PRECOMPUTED_MAX);
    this.#arcs = _walkArcs(this.nodes, this.#owners, this.#depth);
  }

  /**
   * The first `from` distinct nodes clockwise from the key's hash; `from` is
   * 1..nodes.length (callers validate user input before). The array is shared
   * and frozen: do not modify it.
   *
   * Example: new Ring(['http://a:1', 'http://b:1']).replicas(Buffer.from('k'), 2)
   * is either ['http://a:1', 'http://b:1'] or ['http://b:1', 'http://a:1'].
   */
  replicas(key: Uint8Array, from: number): readonly string[] {
    return this.pointReplicas(this.#pointIndex(hash32(key)), from);
  }

  /** The key's first replica. */
  primary(key: Uint8Array): string {
    return this.replicas(key, 1)[0]!;
  }

  /**
   * Each node's share of the circle as primary (first replica), 0..1: the
   * arcs that end at its points. Every key falls in exactly one arc, so the
   * shares add up to 1; with V points per node each is within about
   * 1/sqrt(V) of the even share (the balance note above).
   */
  primaryShares(): Map<string, number> {
    const positions = this.#positions;
    const arcs = new Float64Array(this.nodes.length);
    for (let i = 0; i < positions.length; i++) {
      // A key at hash h belongs to the first point at or after h: point i owns (positions[i - 1], positions[i]].
      const previous = i === 0 ? positions[positions.length - 1]! - RING_SPAN : positions[i - 1]!;
      arcs[this.#owners[i]!]! += positions[i]! - previous;
    }
    return new Map(this.nodes.map((url, owner) => [url, arcs[owner]! / RING_SPAN]));
  }

  /**
   * The hash ranges in which `url` is among a key's first `depth` replicas:
   * sorted, disjoint [start, end) pairs of hash32 values, flattened
   * ([s0, e0, s1, e1, ...], end up to 2^32), adjacent ones merged. A key is
   * in them exactly when replicas(key, depth) includes url (the test checks
   * it against lookups). `depth` is at most min(nodes, 8).
   */
  ranges(url: string, depth: number): number[] {
    assert(Number.isInteger(depth) && depth >= 1 && depth <= this.#depth, `depth out of range: ${depth}`);
    const out: number[] = [];
    const add = (start: number, end: number): void => {
      if (start >= end) return;
      if (out.length > 0 && out[out.length - 1] === start) out[out.length - 1] = end;
      else out.push(start, end);
    };
    const positions = this.#positions;
    const last = positions.length - 1;
    const holds = (point: number): boolean => {
      const index = this.#arcs[point]!.order.indexOf(url);
      return index >= 0 && index < depth;
    };
    // Point 0 also covers the hashes after the last point, wrapping past 2^32 - 1.
    if (holds(0)) add(0, positions[0]! + 1);
    for (let i = 1; i <= last; i++) if (holds(i)) add(positions[i - 1]! + 1, positions[i]! + 1);
    if (holds(0)) add(positions[last]! + 1, RING_SPAN);
    return out;
  }

  /**
   * Points on the circle. Point i's arc holds the hashes in
   * (pointPosition(i - 1), pointPosition(i)], point 0's wrapping past 2^32 - 1;
   * every key of an arc has the same replicas (anti-entropy keeps digests per arc).
   */
  get pointCount(): number {
    return this.#positions.length;
  }

  pointPosition(point: number): number {
    return this.#positions[point]!;
  }

  /** The point whose arc holds `hash`: the first at or after it, wrapping to 0. */
  pointOf(hash: number): number {
    return this.#pointIndex(hash);
  }

  /** replicas() of any key in the arc of `point`. */
  pointReplicas(point: number, from: number): readonly string[] {
    // Not assert(): its message would be built on every call of this hot path.
    if (!(Number.isInteger(from) && from >= 1 && from <= this.nodes.length)) {
      throw new AssertionError(`from out of range: ${from}`);
    }
    if (from > this.#depth) return this.#walk(point, from);
    const arc = this.#arcs[point]!;
    const cached = arc.prefixes[from - 1];
    if (cached !== undefined) return cached;
    const prefix = Object.freeze(arc.order.slice(0, from));
    arc.prefixes[from - 1] = prefix;
    return prefix;
  }

  /**
   * A 32-bit identity of the ring's points and owners: two rings with the
   * same fingerprint place every key alike (up to a 2^-32 chance).
   */
  get fingerprint(): number {
    if (this.#fingerprint === undefined) {
      const positions = Buffer.from(
        this.#positions.buffer,
        this.#positions.byteOffset,
        this.#positions.byteLength,
      );
      const owners = Buffer.from(this.#owners.buffer, this.#owners.byteOffset, this.#owners.byteLength);
      const names = Buffer.from(this.nodes.join('\n'));
      this.#fingerprint = hash32(names, hash32(owners, hash32(positions)));
    }
    return this.#fingerprint;
  }

  /** The slow path for `from` beyond the precomputed depth: walk the points. */
  #walk(point: number, from: number): readonly string[] {
    const seen = new Set<number>();
    const urls: string[] = [];
    for (let step = 0; urls.length < from; step++) {
      const owner = this.#owners[(point + step) % this.#owners.length]!;
      if (!seen.has(owner)) {
        seen.add(owner);
        urls.push(this.nodes[owner]!);
      }
    }
    return Object.freeze(urls);
  }

  /** Index of the first point at or after `position`, wrapping to 0. */
  #pointIndex(position: number): number {
    const positions = this.#positions;
    let low = 0;
    let high = positions.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (positions[mid]! < position) low = mid + 1;
      else high = mid;
    }
    return low === positions.length ? 0 : low;
  }
}

/**
 * Places every node's points (by its token: its URL unless it replaced
 * another node) and sorts them. A point is packed into one
 * double, position * 2^16 + owner (exact below 2^53), so a typed-array sort
 * orders by position and breaks ties by URL (owners index the sorted nodes).
 */
function _placePoints(tokens: readonly string[], vnodes: number): Float64Array {
  const points = new Float64Array(tokens.length * vnodes);
  let scratch = Buffer.alloc(256);
  let count = 0;
  for (let owner = 0; owner < tokens.length; owner++) {
    const url = tokens[owner]!;
    const need = Buffer.byteLength(url) + 12;
    if (scratch.length < need) scratch = Buffer.alloc(need);
    const prefixBytes = scratch.write(`${url}#`);
    for (let index = 0; index < vnodes; index++) {
      const bytes = prefixBytes + scratch.write(String(index), prefixBytes);
      points[count++] = hash32(scratch.subarray(0, bytes)) * OWNER_SPAN + owner;
    }
  }
  return points.sort();
}

/** The clockwise order of distinct nodes from one point (its first `depth` nodes), shared by every point that has it. */
interface _Arc {
  readonly order: readonly string[];
  /** prefixes[from - 1], built on first use and frozen. */
  readonly prefixes: (readonly string[] | undefined)[];
}

/**
 * For every point, the first `depth` distinct owners met walking clockwise
 * from it, interned. Steps: (1) walk forward from the last point once until
 * every node was seen; (2) go backwards: the order from point i is its owner
 * followed by the order from point i + 1 without that owner; (3) intern each
 * order by a string of its first `depth` owner indexes. O(points x nodes).
 */
function _walkArcs(nodes: readonly string[], owners: Uint16Array, depth: number): _Arc[] {
  const pointCount = owners.length;
  const interned = new Map<string, _Arc>();
  const arcs: _Arc[] = new Array(pointCount);

  let order: number[] = [];
  const seen = new Uint8Array(nodes.length);
  for (let step = 0; order.length < nodes.length; step++) {
    // INVARIANT: every node owns at least one point, so the walk ends within one lap.
    assert(step < pointCount, 'ring walk did not meet every node');
    const owner = owners[(pointCount - 1 + step) % pointCount]!;
    if (seen[owner] === 0) {
      seen[owner] = 1;
      order.push(owner);
    }
  }

  let arc: _Arc | undefined;
  for (let i = pointCount - 1; i >= 0; i--) {
    const owner = owners[i]!;
    if (arc === undefined || order[0] !== owner) {
      if (arc !== undefined) order = [owner, ...order.filter((o) => o !== owner)];
      const head = order.slice(0, depth);
      const id = String.fromCharCode(...head);
      arc = interned.get(id);
      if (arc === undefined) {
        arc = { order: Object.freeze(head.map((o) => nodes[o]!)), prefixes: new Array(depth) };
        interned.set(id, arc);
      }
    }
    arcs[i] = arc;
  }
  return arcs;
}
