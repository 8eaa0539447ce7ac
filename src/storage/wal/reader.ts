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
 * Clean close. Its bytes alone do not tell a damaged last record from a
 * torn one; whether a crash happened does. A writer that closes its log
 * cleanly ends it with a close record (format.ts, version 3), so a log
 * that has one was not cut short, and nothing in it may be cut: it is read
 * whole or refused. The close record must start where the records end and
 * count them, and only zeros may follow it; a damaged record before it is
 * found by rule 4 below (the close record is an intact record after the
 * damage). Without a close record (a crash, a kill, or a version-1 or -2
 * file) the rules below decide.
 *
 * The rule, applied at the first record that is not intact (cut off by EOF,
 * length out of range, checksum mismatch, or a payload that is not whole
 * entries), at offset p:
 *   1. Its length is over PAYLOAD_BYTES_MAX: corruption at p. No writer
 *      writes such a length, and a torn write, a mix of the intended bytes
 *      and zeros, can only make a length smaller.
 *   2. Its checksum matches but the payload is not whole entries (WAL):
 *      corruption at p. Those bytes are what was written; a torn write
 *      does not keep a checksum.
 *   3. Only zeros from p to EOF (a prefilled log's unused space, or pages
 *      that never reached the disk): the end of the log, nothing cut.
 *   4. A complete, intact record (a batch, or a close record) starts
 *      somewhere after p: corruption at p, naming it.
 *   5. The record at p is complete (its length in range and inside the
 *      file) and fails its checksum, and a non-zero byte follows its end
 *      (WAL): corruption at p. A crash tears only the last write, and
 *      after the last write there is nothing but zeros (the prefill) or
 *      the end of the file.
 *   6. Otherwise a torn tail: the entries before p are the log, validBytes
 *      = p, and one record is cut (cutRecords, cutBytes). This covers a
 *      record header or payload cut off by EOF, a checksum failure on the
 *      last record, and a last record with zeros inside it.
 * Hint files, which reuse the framing, have no close records and skip
 * rules 2 and 5 (parseRecordLog); their reader applies rule 2 itself.
 *
 * Why rule 4 looks at every byte offset after p, and not only where the bad
 * record says the next one starts: the length field is not covered by the
 * checksum, so a flipped bit in a middle record's length points past the
 * following records, maybe past EOF; trusting it would call the rest of the
 * file a torn tail and drop it without a word. An intact record is a length
 * in range, entries that end exactly there, and a matching CRC-32, which
 * random bytes or zeros practically never form, so the search costs a few
 * cheap tests per byte of the damaged tail (and is capped, below, against
 * values crafted to look like records).
 *
 * Known false alarms, loud rather than silent, none involving a write
 * acknowledged with sync on: with sync off, a power loss that put several
 * unsynced batches on disk out of order (a later batch whole or in part, an
 * earlier one lost); in a version-1 file, one batch of several records torn
 * that way; and a torn last record whose value itself contains a validly
 * framed log record. An operator who judges the tail expendable can
 * truncate the file at the reported offset.
 *
 * A damaged close record (the only damage in a cleanly closed log that
 * loses nothing, as every record before it is intact) reads as a torn tail
 * of one record.
 *
 * The file header follows the same idea: a file that holds a prefix of a
 * header (maybe none of it) and then only zeros, or nothing more, is a torn
 * create (no entry was ever acknowledged in it: create() makes the header
 * durable before any append) and reads as empty, validBytes 0. A wrong magic
 * or format version is corruption at offset 0.
 *
 * With repair, a torn file is truncated to validBytes and fsynced, so the
 * next writer or reader sees a clean end.
 */
import { crc32 } from '../../util/bytes.js';
import { CorruptionError, errorMessage, RingkvError } from '../../util/errors.js';
import { decodeEntry } from '../entry/codec.js';
import { type Entry, EntryKind } from '../entry/entry.js';
import { nodeVfs, truncateDurably, type Vfs } from '../vfs/index.js';
import {
  CLOSE_PAYLOAD_BYTES,
  CLOSE_RECORD_KIND,
  type CloseFacts,
  checkFileHeader,
  decodeEntries,
  encodeFileHeader,
  FILE_HEADER_BYTES,
  PAYLOAD_BYTES_MAX,
  PAYLOAD_BYTES_MIN,
  RECORD_HEADER_BYTES,
  readRecord,
  readWalRecord,
  WAL_CLOSE_RECORD_VERSION,
} from './format.js';

/** What reading a log found: its entries and how it ended. */
export interface LogRead {
  /** In file order; keys and values are views into the file's bytes. */
  readonly entries: Entry[];
  /** Bytes of intact header and records (and close record) from the start of the file. */
  readonly validBytes: number;
  /** Intact records read (batches in a WAL); a close record is not counted. */
  readonly records: number;
  /** The log ends with its close record: it was closed cleanly, and nothing is cut but zeros. */
  readonly closed: boolean;
  /** Damaged records cut off as a torn tail: 1 or 0 (a torn tail is one record: module comment). */
  readonly cutRecords: number;
  /**
   * Bytes of the torn record cut off: its whole length when its header is
   * intact and its payload inside the file, else up to the last non-zero
   * byte (as far as it reached the disk). The zeros after it are unused log
   * space, not data, and are not counted.
   */
  readonly cutBytes: number;
}

export interface WalContents extends LogRead {
  /** Bytes after validBytes: a torn tail or unused prefill zeros, cut off (and truncated with repair). */
  readonly tornBytes: number;
}

/**
 * Reads the log at `path`. Throws CorruptionError (RINGKV_CORRUPTION) as the
 * module comment says, RINGKV_IO when the file cannot be read or repaired.
 *
 * Example:
 *   const { entries, closed, cutBytes } = await readWal(path, { repair: true });
 *   for (const entry of entries) memtable.insert(entry);
 */
export async function readWal(
  path: string,
  options: { readonly repair: boolean; readonly vfs?: Vfs | undefined },
): Promise<WalContents> {
  const vfs = options.vfs ?? nodeVfs;
  let buf: Buffer;
  try {
    buf = await vfs.readFile(path);
  } catch (err) {
    throw new RingkvError('RINGKV_IO', `Cannot read WAL ${path}: ${errorMessage(err)}`, { cause: err });
  }
  const read = parseWal(path, buf);
  const tornBytes = buf.length - read.validBytes;
  if (options.repair && tornBytes > 0) await _truncate(vfs, path, read.validBytes);
  return { ...read, tornBytes };
}

/** The file header of a log of framed records (the WAL's, or another log that reuses its records). */
export interface LogHeader {
  /** What the file is, for messages: "WAL", "hint". */
  readonly name: string;
  /** Records are batches of one or more entries (the WAL) rather than exactly one (hint files). */
  readonly batched: boolean;
  /** Unbatched records only: bytes after the entry in each payload, the file's own (default none). */
  readonly trailerBytes?: number;
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
export function parseWal(file: string, buf: Buffer): LogRead {
  return _parseLog(file, buf, WAL_HEADER, true);
}

/**
 * Reads a log of records framed as format.ts draws them, after `header`:
 * the intact records, and where they end (a torn tail is cut there). Throws
 * CorruptionError, naming the file and offset, for damage that is not a torn
 * tail (rules 1, 3, 4 and 6 of this module's comment: such logs have no
 * close records).
 */
export function parseRecordLog(file: string, buf: Buffer, header: LogHeader): LogRead {
  return _parseLog(file, buf, header, false);
}

/** `wal`: close records (in a version that has them) and the WAL's stricter rules 2 and 5. */
function _parseLog(file: string, buf: Buffer, header: LogHeader, wal: boolean): LogRead {
  const entries: Entry[] = [];
  if (_isTornHeader(file, buf, header)) {
    return { entries, validBytes: 0, records: 0, closed: false, cutRecords: 0, cutBytes: _dataEnd(buf, 0) };
  }
  const closable = wal && buf.readUInt32BE(4) >= WAL_CLOSE_RECORD_VERSION;
  let records = 0;
  let offset = header.bytes;
  while (offset < buf.length) {
    const read = header.batched
      ? readWalRecord(buf, offset, buf.length, closable)
      : readRecord(buf, offset, buf.length, header.trailerBytes);
    if ('entries' in read) {
      for (const entry of read.entries) entries.push(entry);
      records++;
      offset = read.end;
      continue;
    }
    if ('entry' in read) {
      entries.push(read.entry);
      records++;
      offset = read.end;
      continue;
    }
    if ('close' in read) {
      _checkClose(file, offset, read.close, records, entries.length);
      const after = _firstNonZero(buf, read.end);
      if (after !== -1) {
        throw new CorruptionError(
          file,
          after,
          `data after the close record at offset ${offset}: nothing is written to a log once it is closed`,
        );
      }
      return { entries, validBytes: read.end, records, closed: true, cutRecords: 0, cutBytes: 0 };
    }
    if (read.problem === 'length-over-max') throw new CorruptionError(file, offset, read.detail);
    if (wal && read.problem === 'entry') {
      throw new CorruptionError(
        file,
        offset,
        `${read.detail}, under a matching checksum: written so, not torn`,
      );
    }
    // Zeros to EOF (a log's unused prefill, or pages that never reached the disk): no search needed.
    if (_firstNonZero(buf, offset) === -1) break;
    const intact = _findIntactRecord(buf, offset + 1, header, closable);
    if (intact === 'undecided') {
      throw new CorruptionError(
        file,
        offset,
        `${read.detail}, and too much of what follows looks like records`,
      );
    }
    if (intact !== -1) {
      const follows = _isCloseRecordAt(buf, intact, closable)
        ? `the log's close record follows at offset ${intact}: the log was closed cleanly, so none of its records can be torn`
        : `an intact record follows at offset ${intact}`;
      throw new CorruptionError(file, offset, `${read.detail}, and ${follows}`);
    }
    // The problem is 'checksum' only for a record whose length is in range and whose payload is in the file.
    const recordEnd =
      read.problem === 'checksum' ? offset + RECORD_HEADER_BYTES + buf.readUInt32BE(offset) : offset;
    if (wal && read.problem === 'checksum') {
      const dataAt = _firstNonZero(buf, recordEnd);
      if (dataAt !== -1) {
        throw new CorruptionError(
          file,
          offset,
          `${read.detail}, and data follows the record at offset ${dataAt}: a crash leaves only zeros after a torn last record`,
        );
      }
    }
    return {
      entries,
      validBytes: offset,
      records,
      closed: false,
      cutRecords: 1,
      cutBytes: Math.max(recordEnd, _dataEnd(buf, offset)) - offset,
    };
  }
  return { entries, validBytes: offset, records, closed: false, cutRecords: 0, cutBytes: 0 };
}

/** A close record must sit where the records end and count them: otherwise records were lost or moved. */
function _checkClose(
  file: string,
  offset: number,
  close: CloseFacts,
  records: number,
  entries: number,
): void {
  if (close.recordsEnd !== offset || close.batches !== records || close.entries !== entries) {
    throw new CorruptionError(
      file,
      offset,
      `close record says ${close.batches} records of ${close.entries} entries ending at offset ${close.recordsEnd}, but ${records} records of ${entries} entries end here`,
    );
  }
}

/** True when the header is torn (the file reads as empty); throws when it is corrupt. */
function _isTornHeader(file: string, buf: Buffer, header: LogHeader): boolean {
  const problem = buf.length < header.bytes ? undefined : header.check(buf);
  if (buf.length >= header.bytes && problem === undefined) return false;
  // What a crash leaves of a create: a prefix of the header, then zeros (pages that never reached the disk) or EOF.
  const intended = header.encode();
  let kept = 0;
  while (kept < buf.length && kept < intended.length && buf[kept] === intended[kept]) kept++;
  if (_firstNonZero(buf, kept) === -1) return true;
  throw new CorruptionError(
    file,
    0,
    problem ?? `${buf.length}-byte file is not the start of a ${header.name} header`,
  );
}

/**
 * Bytes the search for an intact record may checksum, per byte searched.
 * Random bytes and zeros almost never get as far as the checksum; only
 * values crafted to look like records do, and those must not turn recovery
 * into hours of CRC: past this budget the tail is not called torn.
 */
const SEARCH_CHECKSUM_BYTES_PER_BYTE = 16;

/**
 * The offset of the first complete, intact record (a close record too, when
 * `closable`) at or after `from`, -1 if there is none, or 'undecided' when
 * the search ran out of its budget.
 */
function _findIntactRecord(
  buf: Buffer,
  from: number,
  header: LogHeader,
  closable: boolean,
): number | 'undecided' {
  const trailer = header.batched ? 0 : (header.trailerBytes ?? 0);
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
    if (closable && kind === CLOSE_RECORD_KIND) {
      if (length !== CLOSE_PAYLOAD_BYTES) continue;
    } else if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) {
      continue;
    } else if (header.batched) {
      if (typeof decodeEntries(buf, payloadStart, payloadEnd) === 'string') continue;
    } else {
      if (payloadEnd - trailer <= payloadStart) continue;
      const decoded = decodeEntry(buf, payloadStart, payloadEnd - trailer);
      if (typeof decoded === 'string' || decoded[1] !== payloadEnd - trailer) continue;
    }
    checksumBudget -= length;
    if (checksumBudget < 0) return 'undecided';
    if (crc32(buf.subarray(payloadStart, payloadEnd)) === buf.readUInt32BE(at + 4)) return at;
  }
  return -1;
}

/** Whether the intact record at `at` is a close record. */
function _isCloseRecordAt(buf: Buffer, at: number, closable: boolean): boolean {
  return closable && buf[at + RECORD_HEADER_BYTES] === CLOSE_RECORD_KIND;
}

const ZERO_CHUNK = Buffer.alloc(64 * 1024);

/** The offset of the first non-zero byte at or after `from`, or -1; a chunk at a time (a prefilled log's tail is MiBs). */
function _firstNonZero(buf: Buffer, from: number): number {
  for (let at = from; at < buf.length; at += ZERO_CHUNK.length) {
    const end = Math.min(buf.length, at + ZERO_CHUNK.length);
    if (ZERO_CHUNK.compare(buf, at, end, 0, end - at) === 0) continue;
    for (let i = at; i < end; i++) if (buf[i] !== 0) return i;
  }
  return -1;
}

/** The offset just after the last non-zero byte at or after `from` (`from` when there is none). */
function _dataEnd(buf: Buffer, from: number): number {
  for (let end = buf.length; end > from; ) {
    const start = Math.max(from, end - ZERO_CHUNK.length);
    if (ZERO_CHUNK.compare(buf, start, end, 0, end - start) !== 0) {
      for (let i = end - 1; i >= start; i--) if (buf[i] !== 0) return i + 1;
    }
    end = start;
  }
  return from;
}

async function _truncate(vfs: Vfs, path: string, validBytes: number): Promise<void> {
  try {
    await truncateDurably(vfs, path, validBytes);
  } catch (err) {
    throw new RingkvError(
      'RINGKV_IO',
      `Cannot truncate WAL ${path} to ${validBytes} bytes: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}
