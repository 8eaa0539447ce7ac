/**
 * The ring's hash: MurmurHash3 (x86, 32-bit) over bytes. It is on the path of
 * every request (one key hash per request), so it is a plain loop over the
 * bytes with 32-bit multiplies, no allocation and no crypto. Its output is
 * part of the cluster's contract: every node must place keys the same way, so
 * changing it (or the seed) moves every key and needs a data migration.
 *
 * Example: hash32(Buffer.from('hello')) === 613153351 (seed 0).
 */

import { murmur3 } from '../../util/hash.js';

/** MurmurHash3 x86_32 of `data`, as an unsigned 32-bit number. */
export function hash32(data: Uint8Array, seed = 0): number {
  return murmur3(data, seed);
}
