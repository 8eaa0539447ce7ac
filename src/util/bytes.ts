/**
 * Byte helpers shared by every on-disk and on-wire format: checksums, varints,
 * and key comparison. Keys are compared as unsigned bytes (Buffer.compare).
 */
import { crc32 as zlibCrc32 } from 'node:zlib';

/** CRC-32 (IEEE) of `data`, as an unsigned 32-bit number. Built into Node >= 20.15. */
export function crc32(data: Uint8Array, initial = 0): number {
  return zlibCrc32(data, initial) >>> 0;
}

/**
 * Unsigned byte-wise comparison: <0, 0, >0. Keys usually differ within their
 * first bytes, so a plain loop over up to 32 of them beats the native
 * Buffer.compare, whose call overhead dominates for short keys (bench/micro).
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const common = Math.min(a.length, b.length);
  const inline = Math.min(common, 32);
  for (let i = 0; i < inline; i++) {
    const diff = a[i]! - b[i]!;
    if (diff !== 0) return diff;
  }
  if (inline === common) return a.length - b.length;
  // Positional, not two subarrays: each view would be an allocation per comparison.
  return bufferCompare.call(a, b, inline, b.length, inline, a.length);
}

/** Bytes an unsigned varint (LEB128) of `value` takes; value < 2^53. */
export function varintBytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

/** Writes an unsigned varint at `offset`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    buf[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[offset++] = value;
  return offset;
}

/**
 * Reads an unsigned varint at `offset`. Returns the value and the next offset,
 * or undefined when the buffer ends first or the varint is longer than 8 bytes.
 */
export function readVarint(buf: Uint8Array, offset: number, end = buf.length): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (offset >= end) return undefined;
    const byte = buf[offset++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, offset];
    scale *= 128;
  }
  return undefined;
}

/**
 * A copy that does not pin the (possibly large) buffer `view` points into: a
 * 20-byte key must not keep a 64 KiB socket chunk alive in the memtable.
 * Small copies come from Node's shared 8 KiB pool, large ones get their own memory.
 */
export function copyBytes(view: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(view.length);
  out.set(view);
  return out;
}

/**
 * Four bytes of the key in key[start, start + length) from `at`, big-endian,
 * zero-padded past its end. Unequal words of two keys order them as the keys
 * order; equal words say nothing (a short key and its zero-extension share
 * one), and the bytes are compared.
 */
export function keyWord(key: Uint8Array, start: number, length: number, at: number): number {
  const b0 = at < length ? key[start + at]! : 0;
  const b1 = at + 1 < length ? key[start + at + 1]! : 0;
  const b2 = at + 2 < length ? key[start + at + 2]! : 0;
  const b3 = at + 3 < length ? key[start + at + 3]! : 0;
  return ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0;
}

/**
 * Unsigned byte-wise comparison of a[aStart..aEnd) with b[bStart..bEnd): <0, 0, >0.
 * For binary searches over keys packed in one buffer: the first 32 bytes are
 * compared in JavaScript, several times faster than a call into Buffer#compare
 * for short keys, and without allocating; only a longer common prefix goes to
 * Buffer#compare (by position). Positional ranges, like Buffer#compare's, because
 * an options object per probe would be the allocation this exists to avoid.
 */
export function compareRange(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): number {
  const aBytes = aEnd - aStart;
  const bBytes = bEnd - bStart;
  const common = Math.min(aBytes, bBytes);
  const inline = Math.min(common, 32);
  for (let i = 0; i < inline; i++) {
    const diff = a[aStart + i]! - b[bStart + i]!;
    if (diff !== 0) return diff;
  }
  if (inline === common) return aBytes - bBytes;
  return bufferCompare.call(a, b, bStart + inline, bEnd, aStart + inline, aEnd);
}

/** Buffer#compare, called on any Uint8Array: it compares ranges given by position, allocating nothing. */
const bufferCompare = Buffer.prototype.compare as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  targetEnd: number,
  sourceStart: number,
  sourceEnd: number,
) => number;

/** Scratch for 64-bit conversions: DataView's BigInt accessors make no intermediate BigInts. */
const u64 = new DataView(new ArrayBuffer(8));
const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * Writes `value` (0 ≤ value < 2^64) big-endian at `offset`, as Buffer#writeBigUInt64BE
 * does, but about three times faster: that one makes three BigInts per call
 * (masks and shifts), garbage on every write path that stamps a version.
 */
export function writeU64BE(buf: Uint8Array, offset: number, value: bigint): void {
  if (value < 0n || value > U64_MAX) throw new RangeError(`Not an unsigned 64-bit value: ${value}`);
  if (offset < 0 || offset + 8 > buf.length)
    throw new RangeError(`Offset ${offset} + 8 is outside 0..${buf.length}`);
  u64.setBigUint64(0, value);
  const high = u64.getUint32(0);
  const low = u64.getUint32(4);
  buf[offset] = high >>> 24;
  buf[offset + 1] = high >>> 16;
  buf[offset + 2] = high >>> 8;
  buf[offset + 3] = high;
  buf[offset + 4] = low >>> 24;
  buf[offset + 5] = low >>> 16;
  buf[offset + 6] = low >>> 8;
  buf[offset + 7] = low;
}

/** The unsigned 64-bit value whose high and low 32 bits these are: one BigInt made (the result). */
export function u64FromHalves(high: number, low: number): bigint {
  u64.setUint32(0, high);
  u64.setUint32(4, low);
  return u64.getBigUint64(0);
}

/** Reads an unsigned 64-bit big-endian value at `offset` (as Buffer#readBigUInt64BE, making one BigInt). */
export function readU64BE(buf: Uint8Array, offset: number): bigint {
  if (offset < 0 || offset + 8 > buf.length)
    throw new RangeError(`Offset ${offset} + 8 is outside 0..${buf.length}`);
  return u64FromHalves(
    buf[offset]! * 0x1000000 + ((buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!),
    buf[offset + 4]! * 0x1000000 + ((buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!),
  );
}
