/**
 * Version layout: a 64-bit hybrid-logical-clock timestamp.
 *
 *   bits 63..16  physical time, ms since the Unix epoch (48 bits: until year 10889)
 *   bits 15..0   logical counter within that millisecond
 *
 * The storage engine reads the physical part to age tombstones (grace period
 * before compaction may drop them); the cluster's clock produces the values.
 */
export const LOGICAL_BITS = 16n;
export const LOGICAL_MAX = (1 << 16) - 1;
export const VERSION_MAX = (1n << 64n) - 1n;

export function makeVersion(physicalMs: number, logical: number): bigint {
  return (BigInt(physicalMs) << LOGICAL_BITS) | BigInt(logical);
}

export function versionPhysicalMs(version: bigint): number {
  return Number(version >> LOGICAL_BITS);
}

export function versionLogical(version: bigint): number {
  return Number(version & 0xffffn);
}
