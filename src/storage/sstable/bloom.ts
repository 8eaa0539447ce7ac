/**
 * The table's bloom filter: answers "may this table hold key K?" with no
 * false negatives, so a point read skips tables that cannot hold its key
 * without touching their data blocks.
 *
 * 1. Each key is hashed once to 32 bits (bloomHash, a murmur3-style mix).
 * 2. k probe positions come from double hashing: h1 is the hash, h2 a remix
 *    of it forced odd, probe i sets bit (h1 + i * h2) mod m.
 * 3. m = max(64, n * bitsPerKey) rounded up to whole bytes, and
 *    k = round(bitsPerKey * ln 2), the k that minimizes false positives.
 *
 * Design false-positive rate: (1 - e^(-k n / m))^k. At the default 10 bits
 * per key, k = 7 and the rate is (1 - e^-0.7)^7 ~ 0.82%; 8 bits/key gives
 * ~2.2%, 16 bits/key ~0.05%. A 32-bit hash adds a floor of about n / 2^32
 * (negligible below millions of keys per table).
 *
 * Payload layout (the section crc is added by format.ts): the bit array, bit
 * j in byte j >> 3 at bit position j & 7, then a u8 probe count k. k = 0
 * means "no filter": every key may be present.
 */
import { assert } from '../../util/assert.js';
import { murmur3 } from '../../util/hash.js';
import { FILTER_TRAILER_BYTES } from './format.js';

/** Seed of bloomHash: part of the file format, never change. */
const HASH_SEED = 0x9747b28c;
/** More probes cost more than they save at any sane bits-per-key. */
export const BLOOM_PROBES_MAX = 30;
const FILTER_BITS_MIN = 64;

/** 32-bit murmur3 of `key` (or of its bytes [start, end)) with the filter's seed. Part of the file format. */
export function bloomHash(key: Uint8Array, start = 0, end = key.length): number {
  return murmur3(key, HASH_SEED, start, end);
}

/** MurmurHash3's finalizer: spreads every input bit over the whole word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The probe count for `bitsPerKey`: round(bitsPerKey * ln 2), within [1, BLOOM_PROBES_MAX]; 0 when filtering is off. */
export function bloomProbeCount(bitsPerKey: number): number {
  if (bitsPerKey <= 0) return 0;
  return Math.min(BLOOM_PROBES_MAX, Math.max(1, Math.round(bitsPerKey * Math.LN2)));
}

/** The second hash of the double-hashing scheme: a remix of h1, odd so successive probes differ. */
function secondHash(h1: number): number {
  return (fmix32(h1 ^ 0x5bd1e995) | 1) >>> 0;
}

/** Builds a filter payload over the first `count` hashes (bloomHash of each key). */
export function buildBloomFilter(hashes: Uint32Array, count: number, bitsPerKey: number): Buffer {
  assert(count <= hashes.length, 'more hashes claimed than given');
  const probes = bloomProbeCount(bitsPerKey);
  if (probes === 0) return Buffer.alloc(FILTER_TRAILER_BYTES);
  const bitCount = Math.ceil(Math.max(FILTER_BITS_MIN, count * bitsPerKey) / 8) * 8;
  const bytes = bitCount / 8;
  const out = Buffer.alloc(bytes + FILTER_TRAILER_BYTES);
  for (let i = 0; i < count; i++) {
    const h1 = hashes[i]!;
    const h2 = secondHash(h1);
    let h = h1;
    for (let p = 0; p < probes; p++) {
      const bit = h % bitCount;
      out[bit >>> 3]! |= 1 << (bit & 7);
      h = (h + h2) >>> 0;
    }
  }
  out[bytes] = probes;
  return out;
}

/** A decoded filter; its payload buffer is kept as is (never mutated). */
export class BloomFilter {
  readonly #bits: Buffer;
  readonly #bitCount: number;
  readonly #probes: number;

  private constructor(bits: Buffer, probes: number) {
    this.#bits = bits;
    this.#bitCount = bits.length * 8;
    this.#probes = probes;
  }

  /** Parses a payload (crc already verified); a reason string when it is malformed. */
  static decode(payload: Buffer): BloomFilter | string {
    if (payload.length < FILTER_TRAILER_BYTES) return 'filter payload is empty';
    const bytes = payload.length - FILTER_TRAILER_BYTES;
    const probes = payload[bytes]!;
    if (probes > BLOOM_PROBES_MAX) return `filter probe count ${probes} exceeds ${BLOOM_PROBES_MAX}`;
    if (probes > 0 && bytes === 0) return 'filter has probes but no bits';
    return new BloomFilter(payload.subarray(0, bytes), probes);
  }

  /** Bytes of the bit array, for memory accounting. */
  get bytes(): number {
    return this.#bits.length;
  }

  /** false: the key is certainly absent. true: it may be present. */
  mayContain(key: Uint8Array): boolean {
    return this.#probes === 0 || this.mayContainHash(bloomHash(key));
  }

  mayContainHash(h1: number): boolean {
    if (this.#probes === 0) return true;
    const h2 = secondHash(h1);
    const bits = this.#bits;
    const bitCount = this.#bitCount;
    let h = h1;
    for (let p = 0; p < this.#probes; p++) {
      const bit = h % bitCount;
      if ((bits[bit >>> 3]! & (1 << (bit & 7))) === 0) return false;
      h = (h + h2) >>> 0;
    }
    return true;
  }
}
