/**
 * Data blocks: encoding (BlockBuilder, used by the writer) and the decoded,
 * checksum-verified form that readers search and the block cache keeps.
 * Layout in format.ts.
 *
 * A Block's buffer is never mutated after decode, so the entries it hands out
 * are views into it that stay valid as long as anyone holds them. Lookups
 * compare keys in place (compareRange) so that a binary search allocates
 * nothing.
 */
import { assert, INVARIANTS } from '../../util/assert.js';
import { compareRange, crc32, varintBytes } from '../../util/bytes.js';
import { CorruptionError } from '../../util/errors.js';
import { decodeEntry, ENTRY_FIXED_BYTES, encodeEntry } from '../entry/codec.js';
import type { Entry } from '../entry/entry.js';
import type { RecordView } from '../entry/record.js';
import { BLOCK_OFFSET_BYTES, BLOCK_TRAILER_BYTES } from './format.js';

/**
 * Accumulates encoded entries of one block in a scratch buffer that is reused
 * for the next block. The caller checks key order (compareLastKey) and decides
 * where to cut.
 */
export class BlockBuilder {
  readonly #initialBytes: number;
  #buf: Buffer;
  #bytes = 0;
  #offsets: number[] = [];
  #lastKeyStart = 0;
  #lastKeyEnd = 0;

  constructor(initialBytes: number) {
    this.#initialBytes = Math.max(64, initialBytes);
    this.#buf = Buffer.allocUnsafe(this.#initialBytes);
  }

  get entryCount(): number {
    return this.#offsets.length;
  }

  /** The block's size if it were finished now. */
  get finishedBytes(): number {
    return this.#bytes + this.#offsets.length * BLOCK_OFFSET_BYTES + BLOCK_TRAILER_BYTES;
  }

  /** The block's size after adding an entry of `entryBytes` encoded bytes. */
  bytesWith(entryBytes: number): number {
    return this.finishedBytes + entryBytes + BLOCK_OFFSET_BYTES;
  }

  /** Appends `entry`, whose encoded size the caller computed (encodedEntryBytes). */
  add(entry: Entry, entryBytes: number): void {
    this.#reserve(this.#bytes + entryBytes);
    this.#offsets.push(this.#bytes);
    const end = encodeEntry(entry, this.#buf, this.#bytes);
    assert(end === this.#bytes + entryBytes, 'entry size miscomputed');
    this.#lastKeyEnd = end - entry.value.length - varintBytes(entry.value.length);
    this.#lastKeyStart = this.#lastKeyEnd - entry.key.length;
    this.#bytes = end;
  }

  /** Appends an encoded record as it is: a copy of its bytes (record.ts). */
  addRecord(record: RecordView): void {
    const size = record.byteLength;
    this.#reserve(this.#bytes + size);
    this.#offsets.push(this.#bytes);
    record.buf.copy(this.#buf, this.#bytes, record.start, record.end);
    this.#lastKeyStart = this.#bytes + (record.keyStart - record.start);
    this.#lastKeyEnd = this.#bytes + (record.keyEnd - record.start);
    this.#bytes += size;
  }

  /** Sign of (last added key - `key`, or its bytes [start, end)); the block must not be empty. */
  compareLastKey(key: Buffer, start = 0, end = key.length): number {
    assert(this.#offsets.length > 0, 'compareLastKey on an empty block');
    return compareRange(this.#buf, this.#lastKeyStart, this.#lastKeyEnd, key, start, end);
  }

  /** A view of the last added key, valid until reset(). */
  lastKey(): Buffer {
    assert(this.#offsets.length > 0, 'lastKey on an empty block');
    return this.#buf.subarray(this.#lastKeyStart, this.#lastKeyEnd);
  }

  /** Writes the offset array and trailer; returns a view of the whole block, valid until reset(). */
  finish(): Buffer {
    assert(this.#offsets.length > 0, 'cannot finish an empty block');
    const total = this.finishedBytes;
    this.#reserve(total);
    let at = this.#bytes;
    for (const offset of this.#offsets) at = this.#buf.writeUInt32LE(offset, at);
    at = this.#buf.writeUInt32LE(this.#offsets.length, at);
    at = this.#buf.writeUInt32LE(crc32(this.#buf.subarray(0, at)), at);
    assert(at === total, 'block size miscomputed');
    return this.#buf.subarray(0, total);
  }

  reset(): void {
    this.#bytes = 0;
    this.#offsets.length = 0;
    // One huge entry should not pin its scratch for the rest of the table.
    if (this.#buf.length > 4 * this.#initialBytes) this.#buf = Buffer.allocUnsafe(this.#initialBytes);
  }

  #reserve(bytes: number): void {
    if (bytes <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(bytes, 2 * this.#buf.length));
    this.#buf.copy(grown, 0, 0, this.#bytes);
    this.#buf = grown;
  }
}

/** A decoded data block whose checksum has been verified. */
export class Block {
  /** The file the block came from, for error messages. */
  readonly path: string;
  /** Where the block starts in its file. */
  readonly fileOffset: number;
  readonly buf: Buffer;
  readonly entryCount: number;
  /** Entries occupy [0, #offsetsStart); the u32 offset array follows. */
  readonly #offsetsStart: number;
  // Scratch results of #locateKey, so that a probe returns two numbers without allocating.
  #keyStart = 0;
  #keyEnd = 0;

  private constructor(
    path: string,
    fileOffset: number,
    buf: Buffer,
    entryCount: number,
    offsetsStart: number,
  ) {
    this.path = path;
    this.fileOffset = fileOffset;
    this.buf = buf;
    this.entryCount = entryCount;
    this.#offsetsStart = offsetsStart;
  }

  /**
   * Verifies the block's crc and shape. `buf` must be a buffer nobody will
   * mutate: entries handed out are views into it.
   */
  static decode(buf: Buffer, path: string, fileOffset: number): Block {
    if (buf.length < BLOCK_TRAILER_BYTES) {
      throw new CorruptionError(
        path,
        fileOffset,
        `data block of ${buf.length} bytes is shorter than its trailer`,
      );
    }
    const crcAt = buf.length - 4;
    const stored = buf.readUInt32LE(crcAt);
    const computed = crc32(buf.subarray(0, crcAt));
    if (stored !== computed) {
      throw new CorruptionError(
        path,
        fileOffset,
        `data block checksum mismatch: stored ${stored}, computed ${computed}`,
      );
    }
    const count = buf.readUInt32LE(crcAt - 4);
    const offsetsStart = crcAt - 4 - count * BLOCK_OFFSET_BYTES;
    if (count === 0 || offsetsStart < 0) {
      throw new CorruptionError(
        path,
        fileOffset,
        `data block entry count ${count} does not fit its ${buf.length} bytes`,
      );
    }
    const block = new Block(path, fileOffset, buf, count, offsetsStart);
    if (INVARIANTS) block.#checkOrder();
    return block;
  }

  /** The first entry index whose key is >= `key`, or entryCount. */
  lowerBound(key: Buffer): number {
    let lo = 0;
    let hi = this.entryCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareKey(mid, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The entry with exactly `key`, or undefined. */
  find(key: Buffer): Entry | undefined {
    const i = this.lowerBound(key);
    if (i === this.entryCount || this.compareKey(i, key) !== 0) return undefined;
    return this.entryAt(i);
  }

  /** Sign of (key of entry `i` - `key`), without allocating. */
  compareKey(i: number, key: Buffer): number {
    this.#locateKey(i);
    return compareRange(this.buf, this.#keyStart, this.#keyEnd, key, 0, key.length);
  }

  entryAt(i: number): Entry {
    assert(i >= 0 && i < this.entryCount, 'entry index out of range');
    const start = this.#entryStart(i);
    const end = i + 1 < this.entryCount ? this.#entryStart(i + 1) : this.#offsetsStart;
    const decoded = decodeEntry(this.buf, start, end);
    if (typeof decoded === 'string') throw this.#corrupt(start, decoded);
    if (decoded[1] !== end) throw this.#corrupt(start, `entry ends at ${decoded[1]}, next starts at ${end}`);
    return decoded[0];
  }

  /** Points `view` at entry `i`'s record, in place (record.ts). */
  recordAt(i: number, view: RecordView): void {
    assert(i >= 0 && i < this.entryCount, 'entry index out of range');
    const start = this.#entryStart(i);
    const end = i + 1 < this.entryCount ? this.#entryStart(i + 1) : this.#offsetsStart;
    const bad = view.parse(this.buf, start, end);
    if (bad !== undefined) throw this.#corrupt(start, bad);
    if (view.end !== end) throw this.#corrupt(start, `entry ends at ${view.end}, next starts at ${end}`);
  }

  /** Entries [from, to) in key order. */
  entries(from: number, to: number): Entry[] {
    const out: Entry[] = new Array(to - from);
    for (let i = from; i < to; i++) out[i - from] = this.entryAt(i);
    return out;
  }

  #entryStart(i: number): number {
    // The u32 LE read inline: Buffer#readUInt32LE's argument checks were a tenth of a cached read.
    const buf = this.buf;
    const at = this.#offsetsStart + i * BLOCK_OFFSET_BYTES;
    const start = buf[at]! + (buf[at + 1]! << 8) + (buf[at + 2]! << 16) + buf[at + 3]! * 0x1000000;
    if (start + ENTRY_FIXED_BYTES >= this.#offsetsStart)
      throw this.#corrupt(start, `entry ${i} offset out of range`);
    return start;
  }

  /** Sets #keyStart/#keyEnd to entry `i`'s key (an inline varint read: keys are under 2^16 bytes). */
  #locateKey(i: number): void {
    const buf = this.buf;
    const limit = this.#offsetsStart;
    let at = this.#entryStart(i) + ENTRY_FIXED_BYTES;
    let length = 0;
    let scale = 1;
    for (;;) {
      if (at >= limit || scale > 128 * 128) throw this.#corrupt(at, `entry ${i} has a bad key length`);
      const byte = buf[at++]!;
      length += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 128;
    }
    if (at + length > limit) throw this.#corrupt(at, `entry ${i} key runs past the entries`);
    this.#keyStart = at;
    this.#keyEnd = at + length;
  }

  #corrupt(offsetInBlock: number, detail: string): CorruptionError {
    return new CorruptionError(this.path, this.fileOffset, `data block, byte ${offsetInBlock}: ${detail}`);
  }

  /** With RINGKV_INVARIANTS: keys strictly ascending. Keys out of order are the file's fault: corruption. */
  #checkOrder(): void {
    for (let i = 1; i < this.entryCount; i++) {
      const previous = this.entryAt(i - 1).key;
      if (this.compareKey(i, previous) <= 0) {
        throw this.#corrupt(this.#entryStart(i), `entry ${i}'s key is not after the key before it`);
      }
    }
  }
}
