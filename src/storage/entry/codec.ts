/**
 * The byte encoding of one entry, shared by the WAL and SSTable blocks (each
 * adds its own framing and checksums around it).
 *
 *   offset  size      field
 *   0       1         kind (EntryKind: 1 value, 2 tombstone)
 *   1       8         version, unsigned 64-bit big-endian
 *   9       6         expiresAtMs, unsigned 48-bit big-endian (0 = never)
 *   15      varint    key length K
 *   ..      K         key bytes
 *   ..      varint    value length V (0 for tombstones)
 *   ..      V         value bytes
 *
 * Decoding returns views into the source buffer (no copies): the caller
 * decides what to keep and copies it (copyBytes) if the source is reused.
 */
import { varintBytes, writeU64BE, writeVarint } from '../../util/bytes.js';
import { EMPTY, type Entry } from './entry.js';
import { ENTRY_FIXED_BYTES, RecordView } from './record.js';

export { ENTRY_FIXED_BYTES };

export function encodedEntryBytes(entry: Entry): number {
  return (
    ENTRY_FIXED_BYTES +
    varintBytes(entry.key.length) +
    entry.key.length +
    varintBytes(entry.value.length) +
    entry.value.length
  );
}

/** Encodes at `offset`; the caller sized `buf` with encodedEntryBytes. Returns the end offset. */
export function encodeEntry(entry: Entry, buf: Buffer, offset: number): number {
  buf[offset] = entry.kind;
  writeU64BE(buf, offset + 1, entry.version);
  buf.writeUIntBE(entry.expiresAtMs, offset + 9, 6);
  let at = writeVarint(buf, offset + ENTRY_FIXED_BYTES, entry.key.length);
  at += entry.key.copy(buf, at);
  at = writeVarint(buf, at, entry.value.length);
  at += entry.value.copy(buf, at);
  return at;
}

/**
 * Decodes the entry at `offset`, reading no further than `end`. Returns the
 * entry and the offset after it, or a reason string when the bytes are not a
 * valid entry (callers turn that into a CorruptionError naming file and offset).
 * The one parser of the format is RecordView's; this hands its fields out as an Entry.
 */
export function decodeEntry(buf: Buffer, offset: number, end: number): [Entry, number] | string {
  const bad = scratch.parse(buf, offset, end);
  if (bad !== undefined) return bad;
  const decoded: [Entry, number] = [scratch.toEntry(), scratch.end];
  scratch.buf = EMPTY; // not to pin the caller's buffer until the next call
  return decoded;
}

/** Reused by every decodeEntry call: parse() overwrites all of its fields. */
const scratch = new RecordView();
