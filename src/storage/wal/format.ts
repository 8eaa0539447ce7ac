/**
 * The bytes of a write-ahead log file. Everything that knows the layout lives
 * here; writer.ts and reader.ts only call it.
 *
 *   file:
 *   +----------------+----------+----------+-----+----------+
 *   | header (8 B)   | record 0 | record 1 | ... | record n |
 *   +----------------+----------+----------+-----+----------+
 *
 *   header:
 *   0       4               8
 *   +-------+---------------+
 *   | magic | format version|   both u32 big-endian
 *   +-------+---------------+
 *
 *   record:
 *   0                4                8                     8 + L
 *   +----------------+----------------+---------------------+
 *   | payload length | crc32(payload) | payload (L bytes)   |
 *   |   L, u32 BE    |    u32 BE      | entries             |
 *   +----------------+----------------+---------------------+
 *
 * A record is one batch, the entries of one group commit back to back as
 * storage/entry/codec.ts encodes them, the last ending exactly at L. One
 * checksum covers the whole batch, so a batch that a power loss wrote only
 * in part is one damaged record at the end of the log, never damage
 * followed by intact records (reader.ts). Version 1 held exactly one entry
 * per record; a version-1 record reads as a batch of one, so both read the
 * same way (readBatch). Other logs that reuse the framing (hint files) keep
 * one entry per record (readRecord).
 *
 * Version 3 (what the writer writes) is version 2 plus the close record: a
 * writer that closes its log cleanly appends one last record whose payload
 * is not entries but
 *
 *   0        1                 9             13            17
 *   +--------+-----------------+-------------+-------------+
 *   | 0xFF   | records end     | batches     | entries     |
 *   |        | u64 BE          | u32 BE      | u32 BE      |
 *   +--------+-----------------+-------------+-------------+
 *
 * framed and checksummed like any record. "records end" is the offset the
 * close record itself starts at, the counts are those of the records before
 * it. It tells the reader that the log was closed, not cut short by a
 * crash: its records were all written and synced, so a damaged one is
 * corruption, never a torn write (reader.ts). 0xFF is never an entry kind.
 *
 * The checksum covers the payload only; the length is checked by range
 * (PAYLOAD_BYTES_MIN..PAYLOAD_BYTES_MAX), by the entries it frames having to
 * end exactly at L, and by the reader's search for intact records after a
 * failure (reader.ts explains why that matters).
 *
 * A file is written once, front to back, by one writer and never reused for
 * another log, so bytes from an older life of the file cannot appear in it.
 */
import { limits } from '../../config/limits.js';
import { assert } from '../../util/assert.js';
import { crc32, varintBytes } from '../../util/bytes.js';
import { decodeEntry, ENTRY_FIXED_BYTES, encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import type { Entry } from '../entry/entry.js';

/** "RKVW" in ASCII. On-disk value: never change. */
export const WAL_MAGIC = 0x524b5657;
/** The layout drawn above. On-disk value: never renumber; a new layout takes the next number. */
export const WAL_FORMAT_VERSION = 3;
/** Versions a reader accepts: 1 (one entry per record) reads as batches of one; 2 has no close record. */
export const WAL_FORMAT_VERSIONS_READ: readonly number[] = [1, 2, 3];
/** The first version whose logs end with a close record when closed cleanly. */
export const WAL_CLOSE_RECORD_VERSION = 3;
export const FILE_HEADER_BYTES = 8;
/** Length and checksum in front of each payload. */
export const RECORD_HEADER_BYTES = 8;

/** The smallest encoded entry: fixed fields plus two one-byte varints (empty key, empty value). */
export const PAYLOAD_BYTES_MIN = ENTRY_FIXED_BYTES + 2;
/**
 * The largest encoded entry any writer may produce: the hard key and value
 * maxima with their varint lengths, 15 + 3 + 65,535 + 5 + 268,435,456 bytes.
 * A length above it cannot come from a writer, nor from a torn write (which
 * leaves a mix of intended bytes and zeros, and so only ever a smaller length).
 * It bounds a batch too: a writer closes a batch at far fewer bytes
 * (limits.walBatchBytesMax), and a single larger entry goes alone.
 */
export const PAYLOAD_BYTES_MAX =
  ENTRY_FIXED_BYTES +
  varintBytes(limits.keyBytesHardMax) +
  limits.keyBytesHardMax +
  varintBytes(limits.valueBytesHardMax) +
  limits.valueBytesHardMax;

/** The first payload byte of a close record. On-disk value: never an EntryKind. */
export const CLOSE_RECORD_KIND = 0xff;
/** Payload bytes of a close record: kind, records end (u64), batches (u32), entries (u32). */
export const CLOSE_PAYLOAD_BYTES = 17;
/** A close record in the file, framing included. */
export const CLOSE_RECORD_BYTES = RECORD_HEADER_BYTES + CLOSE_PAYLOAD_BYTES;

/** What a close record says about the records before it. */
export interface CloseFacts {
  /** Where the records end: the offset the close record starts at. */
  readonly recordsEnd: number;
  /** Records (batches) before it. */
  readonly batches: number;
  /** Entries in those records. */
  readonly entries: number;
}

/** A fresh header. */
export function encodeFileHeader(): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  header.writeUInt32BE(WAL_MAGIC, 0);
  header.writeUInt32BE(WAL_FORMAT_VERSION, 4);
  return header;
}

/**
 * Checks the header at the start of `buf`: undefined when it is intact, a
 * reason otherwise. `buf` must hold at least FILE_HEADER_BYTES.
 */
export function checkFileHeader(buf: Buffer): string | undefined {
  const magic = buf.readUInt32BE(0);
  if (magic !== WAL_MAGIC) return `bad magic 0x${hex32(magic)}, expected 0x${hex32(WAL_MAGIC)}`;
  const version = buf.readUInt32BE(4);
  if (!WAL_FORMAT_VERSIONS_READ.includes(version)) {
    return `unsupported format version ${version}, expected one of ${WAL_FORMAT_VERSIONS_READ.join(', ')}`;
  }
  return undefined;
}

/** Bytes the record for `entry` takes in the file, framing included. */
export function recordBytes(entry: Entry): number {
  return RECORD_HEADER_BYTES + encodedEntryBytes(entry);
}

/**
 * Writes the record for `entry` at `offset`; the caller sized `buf` with
 * recordBytes(entry). Returns the end offset.
 */
export function encodeRecord(entry: Entry, buf: Buffer, offset: number): number {
  const end = encodeEntry(entry, buf, offset + RECORD_HEADER_BYTES);
  sealRecord(buf, offset, end);
  return end;
}

/**
 * Fills in the header of the record at `offset` whose payload, already in
 * `buf` from offset + RECORD_HEADER_BYTES to `end`, is one or more encoded
 * entries (a batch: the writer encodes entries after a reserved header and
 * seals the batch once it closes).
 */
export function sealRecord(buf: Buffer, offset: number, end: number): void {
  const payloadStart = offset + RECORD_HEADER_BYTES;
  assert(
    end - payloadStart >= PAYLOAD_BYTES_MIN && end - payloadStart <= PAYLOAD_BYTES_MAX,
    'record length out of range',
  );
  buf.writeUInt32BE(end - payloadStart, offset);
  buf.writeUInt32BE(crc32(buf.subarray(payloadStart, end)), offset + 4);
}

/** Why the bytes at an offset are not an intact record. */
export type RecordProblem =
  /** The record header or payload runs past the end of the bytes. */
  | 'incomplete'
  /** The length is below PAYLOAD_BYTES_MIN (zeros read as length 0). */
  | 'length-short'
  /** The length is above PAYLOAD_BYTES_MAX: never written by a writer nor left by a torn write. */
  | 'length-over-max'
  | 'checksum'
  /**
   * The checksum matches but the payload is not exactly one entry (a batch:
   * not whole entries; a close record: not its layout).
   */
  | 'entry';

export type RecordRead =
  | { readonly entry: Entry; readonly end: number }
  | { readonly problem: RecordProblem; readonly detail: string };

export type BatchRead =
  | { readonly entries: Entry[]; readonly end: number }
  | { readonly problem: RecordProblem; readonly detail: string };

/** A record of a log that may end with a close record (WAL version 3): a batch, the close record, or damage. */
export type WalRecordRead = BatchRead | { readonly close: CloseFacts; readonly end: number };

/** The close record for `facts`, framed and sealed: CLOSE_RECORD_BYTES bytes. */
export function encodeCloseRecord(facts: CloseFacts): Buffer {
  assert(
    Number.isSafeInteger(facts.recordsEnd) && facts.recordsEnd >= FILE_HEADER_BYTES,
    'close record: bad records end',
  );
  assert(facts.batches >= 0 && facts.batches <= 0xffff_ffff, 'close record: batch count out of range');
  assert(facts.entries >= 0 && facts.entries <= 0xffff_ffff, 'close record: entry count out of range');
  const buf = Buffer.alloc(CLOSE_RECORD_BYTES);
  const at = RECORD_HEADER_BYTES;
  buf[at] = CLOSE_RECORD_KIND;
  buf.writeUInt32BE(Math.floor(facts.recordsEnd / 2 ** 32), at + 1);
  buf.writeUInt32BE(facts.recordsEnd % 2 ** 32, at + 5);
  buf.writeUInt32BE(facts.batches, at + 9);
  buf.writeUInt32BE(facts.entries, at + 13);
  sealRecord(buf, 0, buf.length);
  return buf;
}

/** The facts of the close-record payload in [start, end), or why it is not one. */
export function decodeClosePayload(buf: Buffer, start: number, end: number): CloseFacts | string {
  if (end - start !== CLOSE_PAYLOAD_BYTES) {
    return `close record of ${end - start} bytes, expected ${CLOSE_PAYLOAD_BYTES}`;
  }
  if (buf[start] !== CLOSE_RECORD_KIND) return `not a close record (kind ${buf[start]})`;
  return {
    recordsEnd: buf.readUInt32BE(start + 1) * 2 ** 32 + buf.readUInt32BE(start + 5),
    batches: buf.readUInt32BE(start + 9),
    entries: buf.readUInt32BE(start + 13),
  };
}

/**
 * Reads the record at `offset`, looking no further than `end`, as exactly
 * one entry (hint files), followed by `trailerBytes` bytes that are the
 * caller's to read (they end at the record's `end`). The entry's key and
 * value are views into `buf`.
 */
export function readRecord(buf: Buffer, offset: number, end: number, trailerBytes = 0): RecordRead {
  const framed = _checkFraming(buf, offset, end);
  if ('problem' in framed) return framed;
  const entryEnd = framed.payloadEnd - trailerBytes;
  const decoded =
    entryEnd > framed.payloadStart ? decodeEntry(buf, framed.payloadStart, entryEnd) : 'too short';
  if (typeof decoded === 'string') return { problem: 'entry', detail: `undecodable entry: ${decoded}` };
  if (decoded[1] !== entryEnd) {
    return {
      problem: 'entry',
      detail: `entry ends ${entryEnd - decoded[1]} bytes before its record${trailerBytes > 0 ? "'s trailer" : ''}`,
    };
  }
  return { entry: decoded[0], end: framed.payloadEnd };
}

/**
 * Reads the record at `offset`, looking no further than `end`, as a batch:
 * one or more entries back to back, the last ending exactly at the record's
 * end (WAL records; a version-1 record is a batch of one). Keys and values
 * are views into `buf`.
 */
export function readBatch(buf: Buffer, offset: number, end: number): BatchRead {
  const framed = _checkFraming(buf, offset, end);
  if ('problem' in framed) return framed;
  const entries = decodeEntries(buf, framed.payloadStart, framed.payloadEnd);
  if (typeof entries === 'string') return { problem: 'entry', detail: entries };
  return { entries, end: framed.payloadEnd };
}

/**
 * Reads the record at `offset`, looking no further than `end`, as a batch
 * or, when `closable` (the file's version has them), a close record.
 */
export function readWalRecord(buf: Buffer, offset: number, end: number, closable: boolean): WalRecordRead {
  const framed = _checkFraming(buf, offset, end);
  if ('problem' in framed) return framed;
  const { payloadStart, payloadEnd } = framed;
  if (closable && buf[payloadStart] === CLOSE_RECORD_KIND) {
    const close = decodeClosePayload(buf, payloadStart, payloadEnd);
    if (typeof close === 'string') return { problem: 'entry', detail: close };
    return { close, end: payloadEnd };
  }
  const entries = decodeEntries(buf, payloadStart, payloadEnd);
  if (typeof entries === 'string') return { problem: 'entry', detail: entries };
  return { entries, end: payloadEnd };
}

/** The entries filling [start, end) exactly, or why they do not. */
export function decodeEntries(buf: Buffer, start: number, end: number): Entry[] | string {
  const entries: Entry[] = [];
  let at = start;
  do {
    const decoded = decodeEntry(buf, at, end);
    if (typeof decoded === 'string') return `undecodable entry ${entries.length} of the batch: ${decoded}`;
    entries.push(decoded[0]);
    at = decoded[1];
  } while (at < end);
  return entries;
}

/** Length in range, payload inside `end`, checksum matching: where the payload is, or the problem. */
function _checkFraming(
  buf: Buffer,
  offset: number,
  end: number,
): { payloadStart: number; payloadEnd: number } | { problem: RecordProblem; detail: string } {
  if (end - offset < RECORD_HEADER_BYTES) {
    return { problem: 'incomplete', detail: `record header cut off after ${end - offset} bytes` };
  }
  const length = buf.readUInt32BE(offset);
  if (length > PAYLOAD_BYTES_MAX) {
    return {
      problem: 'length-over-max',
      detail: `record length ${length} is over the maximum ${PAYLOAD_BYTES_MAX}`,
    };
  }
  if (length < PAYLOAD_BYTES_MIN) {
    return {
      problem: 'length-short',
      detail: `record length ${length} is under the minimum ${PAYLOAD_BYTES_MIN}`,
    };
  }
  const payloadStart = offset + RECORD_HEADER_BYTES;
  const payloadEnd = payloadStart + length;
  if (payloadEnd > end) {
    return { problem: 'incomplete', detail: `record of ${length} bytes cut off after ${end - payloadStart}` };
  }
  const expected = buf.readUInt32BE(offset + 4);
  const actual = crc32(buf.subarray(payloadStart, payloadEnd));
  if (actual !== expected) {
    return { problem: 'checksum', detail: `checksum 0x${hex32(actual)}, expected 0x${hex32(expected)}` };
  }
  return { payloadStart, payloadEnd };
}

function hex32(value: number): string {
  return value.toString(16).padStart(8, '0');
}
