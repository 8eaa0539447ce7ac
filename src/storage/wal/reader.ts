/**
 * Reads a whole write-ahead log file back, for recovery: the entries in file
 * (= append) order, and where the intact part ends.
 *
 * A log holds at most about one memtable's worth of records (a few MiB), so
 * it is read in one piece. Entries' keys and values are views into that
 * buffer, which nothing reuses; copy what is kept long (copyBytes) if pinning
 * the whole buffer matters.
 *
 * Torn tail or corruption. The writer only appends, batch after batch (into
 * zeros it wrote ahead, with sync on: writer.ts), and a file is never
 * reused, so a crash can damage only the bytes after the last
 * completed fsync (with sync off: after the last completed write), which are
 * always the end of the file. What a crash leaves there is a prefix of the
 * last write, with zeros where pages never reached the disk, or a file that
 * ends early. Damage followed by intact records is something else: a bad
 * disk, a stray write, a bug. Dropping the records after it would silently
 * lose writes that were acknowledged, so the reader refuses.
 *
 * A record is one batch (one write of the writer, format.ts), covered by one
 * checksum: the unsynced last batch, whatever part of it a power loss put on
 * disk, is one damaged record at the end. (In version-1 files each entry had
 * its own record, so a batch whose pages reached the disk out of order could
 * leave an intact record after a damaged one: a false alarm, below.)
 *
 * The rule, applied at the first record that is not intact (cut off by EOF,
 * length out of range, checksum mismatch, or a payload that is not whole
 * entries), at offset p:
 *   1. Its length is over PAYLOAD_BYTES_MAX: corruption at p. No writer
 *      writes such a length, and a torn write, a mix of the intended bytes
 *      and zeros, can only make a length smaller.
 *   2. No complete, intact record starts anywhere after p: a torn tail. The
 *      entries before p are the log; validBytes = p. This covers a record
 *      header or payload cut off by EOF, a checksum failure on the last
 *      record, and zeros from p (or from inside the last record) to EOF.
 *   3. Otherwise: corruption at p, naming the intact record found after it.
 *
 * Why rule 2 looks at every byte offset after p, and not only where the bad
 * record says the next one starts: the length field is not covered by the
 * checksum, so a flipped bit in a middle record's length points past the
 * following records, maybe past EOF; trusting it would call the rest of the
 * file a torn tail and drop it without a word. An intact record is a length
 * in range, entries that end exactly there, and a matching CRC-32, which
 * random bytes or zeros practically never form, so the search costs a few
 * cheap tests per byte of the damaged tail (and is capped, below, against
 * values crafted to look like records).
 *
 * Known false alarms, loud rather than silent, none involving an
 * acknowledged write: with sync off, a power loss that put several unsynced
 * batches on disk out of order (a later batch whole, an earlier one lost);
 * in a version-1 file, one batch of several records torn that way; and a
 * torn last record whose value itself contains a validly framed log record.
 * An operator who judges the tail expendable can truncate the file at the
 * reported offset.
 *
 * The file header follows the same idea: a file shorter than the header
 * whose bytes are a prefix of a header (or zeros), or a file of only zeros,
 * is a torn create (no entry was ever acknowledged in it: create() makes the
 * header durable before any append) and reads as empty, validBytes 0. A
 * wrong magic or format version is corruption at offset 0.
 *
 * With repair, a torn file is truncated to validBytes and fsynced, so the
 * next writer or reader sees a clean end.
 */
import { open, readFile } from 'node:fs/promises';
import { crc32 } from '../../util/bytes.js';
import { CorruptionError, errorMessage, RingkvError } from '../../util/errors.js';
import { decodeEntry } from '../entry/codec.js';
import { type Entry, EntryKind } from '../entry/entry.js';
import {
  checkFileHeader,
  decodeEntries,
  encodeFileHeader,
  FILE_HEADER_BYTES,
  PAYLOAD_BYTES_MAX,
  PAYLOAD_BYTES_MIN,
  RECORD_HEADER_BYTES,
  readBatch,
  readRecord,
} from './format.js';

export interface WalContents {
  /** In file order; keys and values are views into the file's bytes. */
  readonly entries: Entry[];
  /** Bytes of intact header and records from the start of the file. */
  readonly validBytes: number;
  /** Bytes after validBytes: a torn tail or unused prefill zeros, cut off (and truncated with repair). */
  readonly tornBytes: number;
}

/**
 * Reads the log at `path`. Throws CorruptionError (RINGKV_CORRUPTION) as the
 * module comment says, RINGKV_IO when the file cannot be read or repaired.
 *
 * Example:
 *   const { entries, tornBytes } = await readWal(path, { repair: true });
 *   for (const entry of entries) memtable.insert(entry);
 */
export async function readWal(path: string, options: { repair: boolean }): Promise<WalContents> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw new RingkvError('RINGKV_IO', `Cannot read WAL ${path}: ${errorMessage(err)}`, { cause: err });
  }
  const { entries, validBytes } = parseWal(path, buf);
  const tornBytes = buf.length - validBytes;
  if (options.repair && tornBytes > 0) await _truncateDurably(path, validBytes);
  return { entries, validBytes, tornBytes };
}

/** The file header of a log of framed records (the WAL's, or another log that reuses its records). */
export interface LogHeader {
  /** What the file is, for messages: "WAL", "hint". */
  readonly name: string;
  /** Records are batches of one or more entries (the WAL) rather than exactly one (hint files). */
  readonly batched: boolean;
  readonly bytes: number;
  encode(): Buffer;
  /** Undefined when `buf` starts with an intact header; the reason otherwise. */
  check(buf: Buffer): string | undefined;
}

const WAL_HEADER: LogHeader = {
  name: 'WAL',
  batched: true,
  bytes: FILE_HEADER_BYTES,
  encode: encodeFileHeader,
  check: checkFileHeader,
};

/**
 * The decision part of readWal, on bytes already in memory. `file` only
 * names the file in errors.
 */
export function parseWal(file: string, buf: Buffer): { entries: Entry[]; validBytes: number } {
  return parseRecordLog(file, buf, WAL_HEADER);
}

/**
 * Reads a log of records framed as format.ts draws them, after `header`:
 * the intact records, and where they end (a torn tail is cut there). Throws
 * CorruptionError, naming the file and offset, for damage that is not a torn
 * tail (the rule is in this module's comment).
 */
export function parseRecordLog(
  file: string,
  buf: Buffer,
  header: LogHeader,
): { entries: Entry[]; validBytes: number } {
  const entries: Entry[] = [];
  if (_isTornHeader(file, buf, header)) return { entries, validBytes: 0 };
  let offset = header.bytes;
  while (offset < buf.length) {
    const read = header.batched ? readBatch(buf, offset, buf.length) : readRecord(buf, offset, buf.length);
    if ('entries' in read) {
      for (const entry of read.entries) entries.push(entry);
      offset = read.end;
      continue;
    }
    if ('entry' in read) {
      entries.push(read.entry);
      offset = read.end;
      continue;
    }
    if (read.problem === 'length-over-max') throw new CorruptionError(file, offset, read.detail);
    // Zeros to EOF (a log's unused prefill, or pages that never reached the disk): no search needed.
    if (_isZero(buf.subarray(offset))) break;
    const intact = _findIntactRecord(buf, offset + 1, header.batched);
    if (intact === -1) break;
    if (intact === 'undecided') {
      throw new CorruptionError(
        file,
        offset,
        `${read.detail}, and too much of what follows looks like records`,
      );
    }
    throw new CorruptionError(
      file,
      offset,
      `${read.detail}, and an intact record follows at offset ${intact}`,
    );
  }
  return { entries, validBytes: offset };
}

/** True when the header is torn (the file reads as empty); throws when it is corrupt. */
function _isTornHeader(file: string, buf: Buffer, header: LogHeader): boolean {
  if (buf.length < header.bytes) {
    if (_isZero(buf) || header.encode().subarray(0, buf.length).equals(buf)) return true;
    throw new CorruptionError(file, 0, `${buf.length}-byte file is not the start of a ${header.name} header`);
  }
  const problem = header.check(buf);
  if (problem === undefined) return false;
  if (_isZero(buf)) return true;
  throw new CorruptionError(file, 0, problem);
}

/**
 * Bytes the search for an intact record may checksum, per byte searched.
 * Random bytes and zeros almost never get as far as the checksum; only
 * values crafted to look like records do, and those must not turn recovery
 * into hours of CRC: past this budget the tail is not called torn.
 */
const SEARCH_CHECKSUM_BYTES_PER_BYTE = 16;

/**
 * The offset of the first complete, intact record at or after `from`, -1 if
 * there is none, or 'undecided' when the search ran out of its budget.
 */
function _findIntactRecord(buf: Buffer, from: number, batched: boolean): number | 'undecided' {
  const last = buf.length - RECORD_HEADER_BYTES - PAYLOAD_BYTES_MIN;
  let checksumBudget = SEARCH_CHECKSUM_BYTES_PER_BYTE * Math.max(0, buf.length - from);
  for (let at = from; at <= last; at++) {
    // Cheapest tests first, so zeros and random bytes cost a few comparisons each.
    const length = buf.readUInt32BE(at);
    if (length < PAYLOAD_BYTES_MIN || length > PAYLOAD_BYTES_MAX) continue;
    const payloadStart = at + RECORD_HEADER_BYTES;
    const payloadEnd = payloadStart + length;
    if (payloadEnd > buf.length) continue;
    const kind = buf[payloadStart];
    if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) continue;
    if (batched) {
      if (typeof decodeEntries(buf, payloadStart, payloadEnd) === 'string') continue;
    } else {
      const decoded = decodeEntry(buf, payloadStart, payloadEnd);
      if (typeof decoded === 'string' || decoded[1] !== payloadEnd) continue;
    }
    checksumBudget -= length;
    if (checksumBudget < 0) return 'undecided';
    if (crc32(buf.subarray(payloadStart, payloadEnd)) === buf.readUInt32BE(at + 4)) return at;
  }
  return -1;
}

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/** True when every byte is 0; compared a chunk at a time (a prefilled log's tail is MiBs). */
function _isZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZERO_CHUNK.length) {
    const end = Math.min(buf.length, at + ZERO_CHUNK.length);
    if (ZERO_CHUNK.compare(buf, at, end, 0, end - at) !== 0) return false;
  }
  return true;
}

async function _truncateDurably(path: string, validBytes: number): Promise<void> {
  try {
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(validBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new RingkvError(
      'RINGKV_IO',
      `Cannot truncate WAL ${path} to ${validBytes} bytes: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
}
