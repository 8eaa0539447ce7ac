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
import { readVarint, varintBytes, writeVarint } from '../../util/bytes.js';
import { type Entry, EntryKind } from './entry.js';

export const ENTRY_FIXED_BYTES = 15;

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
  buf.writeBigUInt64BE(entry.version, offset + 1);
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
 */
export function decodeEntry(buf: Buffer, offset: number, end: number): [Entry, number] | string {
  if (end - offset < ENTRY_FIXED_BYTES + 2) return 'entry shorter than its fixed header';
  const kind = buf[offset];
  if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) return `unknown entry kind ${kind}`;
  const version = buf.readBigUInt64BE(offset + 1);
  const expiresAtMs = buf.readUIntBE(offset + 9, 6);
  const keyLen = readVarint(buf, offset + ENTRY_FIXED_BYTES, end);
  if (keyLen === undefined) return 'bad key length';
  const keyStart = keyLen[1];
  const keyEnd = keyStart + keyLen[0];
  if (keyEnd > end) return 'key runs past the end';
  const valueLen = readVarint(buf, keyEnd, end);
  if (valueLen === undefined) return 'bad value length';
  const valueStart = valueLen[1];
  const valueEnd = valueStart + valueLen[0];
  if (valueEnd > end) return 'value runs past the end';
  const entry: Entry = {
    key: buf.subarray(keyStart, keyEnd),
    version,
    kind,
    expiresAtMs,
    value: buf.subarray(valueStart, valueEnd),
  };
  return [entry, valueEnd];
}
