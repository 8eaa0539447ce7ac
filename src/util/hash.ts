/**
 * MurmurHash3, x86 32-bit variant, over bytes: a plain loop with 32-bit
 * multiplies, no allocation. Both the ring (key placement) and SSTable bloom
 * filters use it, each with its own seed; in both the output is part of a
 * contract (placement across nodes, filter bits on disk), so it never changes.
 *
 *   murmur3(Buffer.from('hello'), 0) === 613153351
 *   murmur3(Buffer.from('(hello)'), 0, 1, 6) === 613153351   // a range, read in place
 */
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

export function murmur3(data: Uint8Array, seed: number, start = 0, end = data.length): number {
  const length = end - start;
  const blocksEnd = start + (length & ~3);
  let h = seed | 0;
  let i = start;
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
