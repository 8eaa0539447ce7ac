/**
 * The bytes of a hint file: writes a peer missed, kept by the coordinator
 * until they are handed to it (docs/formats/hints.md draws the same). Every
 * function that knows the layout lives here.
 *
 *   <data>/hints/<base64url(peer URL)>/<sequence, 10 digits>.hint
 *
 *   file:
 *   +----------------+----------+----------+-----+
 *   | header (8 B)   | record 0 | record 1 | ... |
 *   +----------------+----------+----------+-----+
 *
 *   header:  magic "RKVH" (u32 BE) | format version (u32 BE)
 *
 *   record:
 *   0                4                8                     8 + L
 *   +----------------+----------------+---------------------+
 *   | payload length | crc32(payload) | payload (L bytes)   |
 *   |   L, u32 BE    |    u32 BE      | one encoded entry   |
 *   +----------------+----------------+---------------------+
 *
 * The record framing is the write-ahead log's, and the payload is one entry
 * as storage/entry/codec.ts encodes it, which must end exactly at L. Files
 * are only appended to, and a file is never reused once deleted (sequence
 * numbers only grow), so a crash can only damage a file's tail.
 */
import { limits } from '../../config/limits.js';
import {
  decodeEntry,
  ENTRY_FIXED_BYTES,
  type Entry,
  EntryKind,
  encodedEntryBytes,
  encodeEntry,
} from '../../storage/index.js';
import { crc32, varintBytes } from '../../util/bytes.js';

/** "RKVH" in ASCII. On-disk value: never change. */
export const HINT_MAGIC = 0x524b5648;
/** The layout drawn above. On-disk value: never renumber; a new layout takes the next number. */
export const HINT_FORMAT_VERSION = 1;
export const HINT_HEADER_BYTES = 8;
export const HINT_RECORD_HEADER_BYTES = 8;
/** File name suffix of a hint file, and of one set aside after corruption was found in it. */
export const HINT_FILE_SUFFIX = '.hint';
export const HINT_CORRUPT_SUFFIX = '.hint.corrupt';

/** The smallest encoded entry: fixed fields plus two one-byte varints. */
export const HINT_PAYLOAD_BYTES_MIN = ENTRY_FIXED_BYTES + 2;
/** The largest encoded entry a writer can produce (hard key and value maxima). */
export const HINT_PAYLOAD_BYTES_MAX =
  ENTRY_FIXED_BYTES +
  varintBytes(limits.keyBytesHardMax) +
  limits.keyBytesHardMax +
  varintBytes(limits.valueBytesHardMax) +
  limits.valueBytesHardMax;

export function encodeHintHeader(): Buffer {
  const header = Buffer.alloc(HINT_HEADER_BYTES);
  header.writeUInt32BE(HINT_MAGIC, 0);
  header.writeUInt32BE(HINT_FORMAT_VERSION, 4);
  return header;
}

/** Undefined when `buf` starts with an intact header; a reason otherwise. */
export function checkHintHeader(buf: Buffer): string | undefined {
  if (buf.length < HINT_HEADER_BYTES) return `file of ${buf.length} bytes is shorter than its header`;
  const magic = buf.readUInt32BE(0);
  if (magic !== HINT_MAGIC) return `bad magic 0x${magic.toString(16)}, expected 0x${HINT_MAGIC.toString(16)}`;
  const version = buf.readUInt32BE(4);
  if (version !== HINT_FORMAT_VERSION) {
    return `unsupported format version ${version}, expected ${HINT_FORMAT_VERSION}`;
  }
  return undefined;
}

/** Bytes the record of `entry` takes, framing included. */
export function hintRecordBytes(entry: Entry): number {
  return HINT_RECORD_HEADER_BYTES + encodedEntryBytes(entry);
}

/** Writes the record of `entry` at `offset` (sized by hintRecordBytes); returns the end offset. */
export function encodeHintRecord(entry: Entry, buf: Buffer, offset: number): number {
  const payloadStart = offset + HINT_RECORD_HEADER_BYTES;
  const end = encodeEntry(entry, buf, payloadStart);
  buf.writeUInt32BE(end - payloadStart, offset);
  buf.writeUInt32BE(crc32(buf.subarray(payloadStart, end)), offset + 4);
  return end;
}

export type HintRecordRead =
  | { readonly entry: Entry; readonly end: number }
  /** 'incomplete': the record runs past `end`; 'length': out of range; 'checksum'/'entry': bad bytes. */
  | { readonly problem: 'incomplete' | 'length' | 'checksum' | 'entry'; readonly detail: string };

/**
 * Reads the record at `offset`, no further than `end`. The entry's key and
 * value are views into `buf`.
 */
export function readHintRecord(buf: Buffer, offset: number, end: number): HintRecordRead {
  if (end - offset < HINT_RECORD_HEADER_BYTES) {
    return { problem: 'incomplete', detail: `record header cut off after ${end - offset} bytes` };
  }
  const length = buf.readUInt32BE(offset);
  if (length < HINT_PAYLOAD_BYTES_MIN || length > HINT_PAYLOAD_BYTES_MAX) {
    return { problem: 'length', detail: `record length ${length} out of range` };
  }
  const payloadStart = offset + HINT_RECORD_HEADER_BYTES;
  const payloadEnd = payloadStart + length;
  if (payloadEnd > end) {
    return { problem: 'incomplete', detail: `record of ${length} bytes cut off after ${end - payloadStart}` };
  }
  const expected = buf.readUInt32BE(offset + 4);
  const actual = crc32(buf.subarray(payloadStart, payloadEnd));
  if (actual !== expected) {
    return {
      problem: 'checksum',
      detail: `checksum 0x${actual.toString(16)}, expected 0x${expected.toString(16)}`,
    };
  }
  const decoded = decodeEntry(buf, payloadStart, payloadEnd);
  if (typeof decoded === 'string') return { problem: 'entry', detail: `undecodable entry: ${decoded}` };
  if (decoded[1] !== payloadEnd) return { problem: 'entry', detail: 'entry ends before its record' };
  return { entry: decoded[0], end: payloadEnd };
}

/** The result of checking a whole file: its records and where the intact part ends. */
export interface HintFileCheck {
  readonly entries: number;
  /** Header and intact records from the start of the file. */
  readonly validBytes: number;
  /** Set when the damage is not a torn tail: the offset and what is wrong there. */
  readonly corruption?: { readonly offset: number; readonly detail: string };
}

/**
 * Checks a hint file's bytes. A damaged record followed by no intact record
 * is a torn tail (cut at validBytes); one followed by an intact record, a
 * length no writer produces, or a bad header on a file that is not all zeros
 * is corruption. A file shorter than a header whose bytes are a prefix of
 * one (or zeros) is a torn create and holds nothing.
 */
export function checkHintFile(buf: Buffer): HintFileCheck {
  if (buf.length < HINT_HEADER_BYTES) {
    if (_isZero(buf) || encodeHintHeader().subarray(0, buf.length).equals(buf)) {
      return { entries: 0, validBytes: 0 };
    }
    return { entries: 0, validBytes: 0, corruption: { offset: 0, detail: 'not the start of a hint header' } };
  }
  const problem = checkHintHeader(buf);
  if (problem !== undefined) {
    if (_isZero(buf)) return { entries: 0, validBytes: 0 };
    return { entries: 0, validBytes: 0, corruption: { offset: 0, detail: problem } };
  }
  let offset = HINT_HEADER_BYTES;
  let entries = 0;
  while (offset < buf.length) {
    const read = readHintRecord(buf, offset, buf.length);
    if ('entry' in read) {
      entries++;
      offset = read.end;
      continue;
    }
    const length = buf.length - offset >= 4 ? buf.readUInt32BE(offset) : 0;
    if (read.problem === 'length' && length > HINT_PAYLOAD_BYTES_MAX) {
      return { entries, validBytes: offset, corruption: { offset, detail: read.detail } };
    }
    const intact = _findIntactRecord(buf, offset + 1);
    if (intact === -1) break;
    return {
      entries,
      validBytes: offset,
      corruption: { offset, detail: `${read.detail}, and an intact record follows at offset ${intact}` },
    };
  }
  return { entries, validBytes: offset };
}

/** The first offset at or after `from` where a complete, intact record starts; -1 if none. */
function _findIntactRecord(buf: Buffer, from: number): number {
  const last = buf.length - HINT_RECORD_HEADER_BYTES - HINT_PAYLOAD_BYTES_MIN;
  for (let at = from; at <= last; at++) {
    // Cheapest tests first: zeros and random bytes fail the length or kind check.
    const length = buf.readUInt32BE(at);
    if (length < HINT_PAYLOAD_BYTES_MIN || at + HINT_RECORD_HEADER_BYTES + length > buf.length) continue;
    const kind = buf[at + HINT_RECORD_HEADER_BYTES];
    if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) continue;
    if ('entry' in readHintRecord(buf, at, buf.length)) return at;
  }
  return -1;
}

function _isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** The directory name of a peer's hints: its URL in base64url, safe in any file system. */
export function peerDirName(peer: string): string {
  return Buffer.from(peer, 'utf8').toString('base64url');
}

/** The peer URL a directory name stands for, or undefined when it is not one peerDirName makes. */
export function peerFromDirName(name: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(name)) return undefined;
  const peer = Buffer.from(name, 'base64url').toString('utf8');
  return peerDirName(peer) === name ? peer : undefined;
}

/** The file name of a peer's hint file number `sequence`. */
export function hintFileName(sequence: number): string {
  return `${String(sequence).padStart(10, '0')}${HINT_FILE_SUFFIX}`;
}

/** The sequence number of a hint file name, or undefined for other names. */
export function hintFileSequence(name: string): number | undefined {
  const match = /^(\d{10})\.hint$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}
