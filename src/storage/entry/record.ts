/**
 * RecordView: one encoded entry (codec.ts), read where it lies.
 *
 * Flushes and compactions move entries that are already encoded the way a
 * table block stores them: the memtable's arena, the flush buffer and the
 * input tables' blocks all hold codec records. Decoding each into an Entry
 * (an object, two Buffer views and a BigInt) only to encode it again cost a
 * flush about 5 µs per entry, most of it allocation and the garbage
 * collection after it, and the three replicas of a write flush and compact
 * at the same moment. A view parses the header fields into numbers, so a
 * record is compared and copied without allocating anything.
 *
 * A view is reused: parse() repoints it. The bytes must not change while
 * the view points at them.
 *
 *   const view = new RecordView();
 *   for (let at = 0; at < buf.length; at = view.end) {
 *     const bad = view.parse(buf, at, buf.length);
 *     if (bad !== undefined) throw new Error(bad);
 *     // view.keyStart..view.keyEnd is the key, view.start..view.end the record
 *   }
 */
import { compareRange, u64FromHalves } from '../../util/bytes.js';
import { compareExpiries, EMPTY, type Entry, EntryKind } from './entry.js';
import { LOGICAL_BITS } from './version.js';

/** Bytes before the key's length: kind, version, expiresAtMs (codec.ts). */
export const ENTRY_FIXED_BYTES = 15;

const LOGICAL_SHIFT = Number(LOGICAL_BITS);

export class RecordView {
  buf: Buffer = EMPTY;
  /** The record is buf[start, end). */
  start = 0;
  end = 0;
  kind = 0;
  keyStart = 0;
  keyEnd = 0;
  valueStart = 0;
  /** The version's high and low 32 bits (versions are unsigned 64-bit). */
  versionHigh = 0;
  versionLow = 0;

  /**
   * Points the view at the record at `offset`, reading no further than
   * `limit`. Returns undefined, or the reason the bytes are not a record
   * (the view is then unusable).
   */
  parse(buf: Buffer, offset: number, limit: number): string | undefined {
    if (limit - offset < ENTRY_FIXED_BYTES + 2) return 'entry shorter than its fixed header';
    const kind = buf[offset]!;
    if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) return `unknown entry kind ${kind}`;
    const keyLength = readLength(buf, offset + ENTRY_FIXED_BYTES, limit);
    if (keyLength < 0) return 'bad key length';
    const keyStart = lengthEnd;
    const keyEnd = keyStart + keyLength;
    if (keyEnd > limit) return 'key runs past the end';
    const valueLength = readLength(buf, keyEnd, limit);
    if (valueLength < 0) return 'bad value length';
    const end = lengthEnd + valueLength;
    if (end > limit) return 'value runs past the end';
    this.buf = buf;
    this.start = offset;
    this.end = end;
    this.kind = kind;
    this.keyStart = keyStart;
    this.keyEnd = keyEnd;
    this.valueStart = lengthEnd;
    this.versionHigh = readU32BE(buf, offset + 1);
    this.versionLow = readU32BE(buf, offset + 5);
    return undefined;
  }

  get byteLength(): number {
    return this.end - this.start;
  }

  /** The physical part of the version: ms since the epoch (version.ts). */
  get versionPhysicalMs(): number {
    return this.versionHigh * 2 ** (32 - LOGICAL_SHIFT) + (this.versionLow >>> LOGICAL_SHIFT);
  }

  get expiresAtMs(): number {
    return this.buf.readUIntBE(this.start + 9, 6);
  }

  get version(): bigint {
    return u64FromHalves(this.versionHigh, this.versionLow);
  }

  /** Sign of (this key - other's key). */
  compareKey(other: RecordView): number {
    return compareRange(this.buf, this.keyStart, this.keyEnd, other.buf, other.keyStart, other.keyEnd);
  }

  /**
   * Orders two versions of one key as compareVersions (entry.ts) does: the
   * larger version, then a tombstone over a value, then the larger value
   * bytes, then the later expiry (compareExpiries).
   */
  compareVersion(other: RecordView): number {
    if (this.versionHigh !== other.versionHigh) return this.versionHigh > other.versionHigh ? 1 : -1;
    if (this.versionLow !== other.versionLow) return this.versionLow > other.versionLow ? 1 : -1;
    if (this.kind !== other.kind) return this.kind === EntryKind.Tombstone ? 1 : -1;
    const byValue = compareRange(this.buf, this.valueStart, this.end, other.buf, other.valueStart, other.end);
    return byValue !== 0 ? byValue : compareExpiries(this.expiresAtMs, other.expiresAtMs);
  }

  /** compareVersion against an Entry of the same key, read in place: no Entry is made of the record. */
  compareVersionTo(entry: Entry): number {
    const version = this.version;
    if (version !== entry.version) return version > entry.version ? 1 : -1;
    if (this.kind !== entry.kind) return this.kind === EntryKind.Tombstone ? 1 : -1;
    const byValue = compareRange(this.buf, this.valueStart, this.end, entry.value, 0, entry.value.length);
    return byValue !== 0 ? byValue : compareExpiries(this.expiresAtMs, entry.expiresAtMs);
  }

  /** The record as an Entry whose key and value are views into `buf`. */
  toEntry(): Entry {
    return {
      key: this.buf.subarray(this.keyStart, this.keyEnd),
      version: this.version,
      kind: this.kind as EntryKind,
      expiresAtMs: this.expiresAtMs,
      value: this.buf.subarray(this.valueStart, this.end),
    };
  }
}

/** Where the last readLength() ended: a module slot, so that a read returns one number. */
let lengthEnd = 0;

/** A varint length of at most 8 bytes at `at`, or -1; sets lengthEnd. */
function readLength(buf: Buffer, at: number, limit: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (at >= limit) return -1;
    const byte = buf[at++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      lengthEnd = at;
      return value;
    }
    scale *= 128;
  }
  return -1;
}

function readU32BE(buf: Buffer, at: number): number {
  return buf[at]! * 0x1000000 + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
}
