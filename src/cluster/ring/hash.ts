/**
 * The ring's hash: MurmurHash3 (x86, 32-bit) over bytes. It is on the path of
 * every request (one key hash per request), so it is a plain loop over the
 * bytes with 32-bit multiplies, no allocation and no crypto. Its output is
 * part of the cluster's contract: every node must place keys the same way, so
 * changing it (or the seed) moves every key and needs a data migration.
 *
 * Example: hash32(Buffer.from('hello')) === 613153351 (seed 0).
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** MurmurHash3 x86_32 of `data`, as an unsigned 32-bit number. */
export function hash32(data: Uint8Array, seed = 0): number {
  const length = data.length;
  const blocksEnd = length & ~3;
  let h = seed | 0;
  let i = 0;
  for (; i < blocksEnd; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail !== 0) {
    let k = data[i]!;
    if (tail >= 2) k |= data[i + 1]! << 8;
    if (tail === 3) k |= data[i + 2]! << 16;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
