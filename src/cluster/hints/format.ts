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
 *   0                4                8                               8 + L
 *   +----------------+----------------+-------------------+-----------+
 *   | payload length | crc32(payload) | one encoded entry | from      |
 *   |   L, u32 BE    |    u32 BE      |                   | u16 BE    |
 *   +----------------+----------------+-------------------+-----------+
 *
 * The record framing is the write-ahead log's; the payload is one entry as
 * storage/entry/codec.ts encodes it, then the `from` of the write the hint
 * is of (0: not known), ending exactly at L. Delivery places a hint by its
 * `from` (handoff.ts). Version-1 files, whose records end with the entry
 * (no `from`), are still read; new files are version 2. Files are only
 * appended to, and a file is never reused once deleted (sequence numbers
 * only grow), so a crash can only damage a file's tail.
 */
import {
  type Entry,
  encodeEntry,
  type LogHeader,
  parseRecordLog,
  RECORD_HEADER_BYTES,
  type RecordRead,
  readRecord,
  recordBytes,
  sealRecord,
} from '../../storage/index.js';
import { CorruptionError } from '../../util/errors.js';

/** "RKVH" in ASCII. On-disk value: never change. */
export const HINT_MAGIC = 0x524b5648;
/** The layout drawn above. On-disk value: never renumber; a new layout takes the next number. */
export const HINT_FORMAT_VERSION = 2;
/** Versions read: 1 has no `from` after the entry. */
export const HINT_FORMAT_VERSIONS_READ: readonly number[] = [1, 2];
/** Bytes after the entry in a version-2 record: the write's `from`, u16 BE (a ring holds at most 0xffff nodes). */
export const HINT_FROM_BYTES = 2;
export const HINT_HEADER_BYTES = 8;
/** File name suffix of a hint file, and of one set aside after corruption was found in it. */
export const HINT_FILE_SUFFIX = '.hint';
export const HINT_CORRUPT_SUFFIX = '.hint.corrupt';

/** A new hint file's header. */
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
  if (!HINT_FORMAT_VERSIONS_READ.includes(version)) {
    return `unsupported format version ${version}, expected one of ${HINT_FORMAT_VERSIONS_READ.join(', ')}`;
  }
  return undefined;
}

/** The format version of a file whose header is intact (checkHintHeader). */
export function hintFileVersion(buf: Buffer): number {
  return buf.readUInt32BE(4);
}

export const HINT_RECORD_HEADER_BYTES = RECORD_HEADER_BYTES;

/** Bytes the record of `entry` takes in a new file, framing included (the WAL's framing). */
export function hintRecordBytes(entry: Entry): number {
  return recordBytes(entry) + HINT_FROM_BYTES;
}

/**
 * Writes the record of `entry`, a hint of a write made with `from`
 * (undefined: not known), at `offset` (sized by hintRecordBytes); returns
 * the end offset.
 */
export function encodeHintRecord(
  entry: Entry,
  from: number | undefined,
  buf: Buffer,
  offset: number,
): number {
  const entryEnd = encodeEntry(entry, buf, offset + RECORD_HEADER_BYTES);
  const known = from !== undefined && Number.isInteger(from) && from >= 1 && from <= 0xffff;
  buf.writeUInt16BE(known ? from : 0, entryEnd);
  const end = entryEnd + HINT_FROM_BYTES;
  sealRecord(buf, offset, end);
  return end;
}

export type HintRecordRead =
  | { readonly entry: Entry; readonly from: number | undefined; readonly end: number }
  | Exclude<RecordRead, { readonly entry: Entry }>;

/**
 * Reads the record at `offset` of a file of format `version`, no further
 * than `end`; key and value are views into `buf`. `from` is undefined when
 * not known (a version-1 file has none).
 */
export function readHintRecord(buf: Buffer, offset: number, end: number, version: number): HintRecordRead {
  const trailer = _trailerBytes(version);
  const read = readRecord(buf, offset, end, trailer);
  if (!('entry' in read)) return read;
  const from = trailer === 0 ? 0 : buf.readUInt16BE(read.end - trailer);
  return { entry: read.entry, from: from === 0 ? undefined : from, end: read.end };
}

function _trailerBytes(version: number): number {
  return version >= 2 ? HINT_FROM_BYTES : 0;
}

function _logHeader(version: number): LogHeader {
  return {
    name: 'hint',
    batched: false,
    trailerBytes: _trailerBytes(version),
    bytes: HINT_HEADER_BYTES,
    encode: encodeHintHeader,
    check: checkHintHeader,
  };
}

/** The result of checking a whole file: its records and where the intact part ends. */
export interface HintFileCheck {
  /** The format version its records are read in (the current one when the header is not intact). */
  readonly version: number;
  /** The intact records' entries, in file order (keys and values are views into the file's bytes). */
  readonly entries: readonly Entry[];
  /** Header and intact records from the start of the file. */
  readonly validBytes: number;
  /** Set when the damage is not a torn tail: the offset and what is wrong there. */
  readonly corruption?: { readonly offset: number; readonly detail: string };
}

/**
 * Checks a hint file's bytes. A damaged record followed by no intact record
 * is a torn tail (cut at validBytes); one followed by an intact record, a
 * length no writer produces, a matching checksum over a payload that is not
 * one record of the header's version, or a bad header on a file that is not
 * all zeros is corruption. A file shorter than a header whose bytes are a
 * prefix of one (or zeros) is a torn create and holds nothing.
 */
export function checkHintFile(buf: Buffer): HintFileCheck {
  // The header's version picks the record layout; a torn or wrong header is parseRecordLog's to judge.
  const version = checkHintHeader(buf) === undefined ? hintFileVersion(buf) : HINT_FORMAT_VERSION;
  try {
    const { entries, validBytes } = parseRecordLog('hint file', buf, _logHeader(version));
    // A cut record whose checksum matches was written so, not torn: most likely a header whose
    // version does not match its records (1 and 2 differ only in the `from`), which would cut them all.
    const cut = validBytes >= HINT_HEADER_BYTES && validBytes < buf.length;
    const read = cut ? readHintRecord(buf, validBytes, buf.length, version) : undefined;
    if (read !== undefined && 'problem' in read && read.problem === 'entry') {
      const detail = `${read.detail}, under a matching checksum (format version ${version}): written so, not torn`;
      return { version, entries: [], validBytes: 0, corruption: { offset: validBytes, detail } };
    }
    return { version, entries, validBytes };
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    const detail = err.message.slice(err.message.indexOf(': ') + 2);
    return { version, entries: [], validBytes: 0, corruption: { offset: err.offset, detail } };
  }
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
