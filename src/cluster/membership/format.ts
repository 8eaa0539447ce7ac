/**
 * The bytes of membership: the view (kept in the data directory's MEMBERSHIP
 * file and carried by the internode MEMBERSHIP message), and the bodies of
 * the STREAM and MOVE messages. The transport frames them as opaque bodies
 * (transport/format.ts); this file owns their layout, drawn in
 * docs/formats/internode.md. Integers are big-endian; varints are unsigned
 * LEB128 (util/bytes.ts).
 *
 *   view:
 *   0    4   magic "RKVM"
 *   4    1   format version (1)
 *   5    8   epoch, u64, at most EPOCH_MAX (0 only for the empty view)
 *   13   2   member count N, u16, at most MEMBERS_MAX
 *   15   ..  N members, sorted by URL:
 *              u8 state (1 joining, 2 normal, 3 leaving, 4 removed)
 *              u8 flags (bit 0: dead)
 *              u64 since (epoch of its last state change, 1..epoch)
 *              u16 URL length, URL (UTF-8; spelled as nodeAddress() spells it)
 *              u16 token length, token (UTF-8; 0: the URL itself; else spelled so too)
 *   ..   4   CRC-32 of every byte before it
 *
 *   STREAM request:  u64 epoch, u64 view digest, u16 + target URL, varint + start key,
 *                    u32 limit (entries)
 *   STREAM answer:   u8 flags (bit 0: more), u64 epoch, u64 view digest, u64 estimated bytes,
 *                    varint + coveredThrough key, u32 count, count entries (storage entry codec)
 *   MOVE request:    u8 kind (1 progress, 2 decommission, 3 remove, 4 cancel), argument (UTF-8)
 *   MOVE answer:     a JSON object (UTF-8)
 *
 * A STREAM answer covers every key from the request's start through
 * coveredThrough (inclusive; through the last key when `more` is clear).
 * Decoded keys, values and strings are copies: nothing pins a socket buffer.
 */

import { nodeAddress } from '../../config/options.js';
import { type Entry, encodedEntryBytes, encodeEntry } from '../../storage/index.js';
import { copyBytes, crc32, readVarint, varintBytes, writeVarint } from '../../util/bytes.js';
import { RingkvError } from '../../util/errors.js';
import { decodeEntries } from '../transport/index.js';
import { MEMBERS_MAX, type Member, MemberState, type Membership } from './membership.js';

const MAGIC = Buffer.from('RKVM', 'latin1');
/** The view layout drawn above; a new layout takes the next number. */
export const MEMBERSHIP_FORMAT_VERSION = 1;
const HEADER_BYTES = 15;
const CRC_BYTES = 4;
/** A URL or token is at most this long (a LEAVING body's bound too). */
const URL_BYTES_MAX = 2048;
/**
 * A view's epoch is at most this (2^53 - 1): one change at a time, no cluster
 * comes near it, and a view beyond it (a peer's bug or damage the checksum
 * missed) would win every merge while leaving no room for the next change.
 */
export const EPOCH_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** How decodeMembership's refusal of another format version begins: not damage, another ringkv wrote it. */
export const UNKNOWN_FORMAT_VERSION = 'unknown format version';

/** On-wire values: never renumber. */
export const MoveKind = { Progress: 1, Decommission: 2, Remove: 3, Cancel: 4 } as const;
export type MoveKind = (typeof MoveKind)[keyof typeof MoveKind];

export function encodeMembership(view: Membership): Buffer {
  const urls = view.members.map((m) => Buffer.from(m.url, 'utf8'));
  const tokens = view.members.map((m) => Buffer.from(m.token === m.url ? '' : m.token, 'utf8'));
  let bytes = HEADER_BYTES + CRC_BYTES;
  for (let i = 0; i < urls.length; i++) bytes += 14 + urls[i]!.length + tokens[i]!.length;
  const buf = Buffer.alloc(bytes);
  MAGIC.copy(buf, 0);
  buf[4] = MEMBERSHIP_FORMAT_VERSION;
  buf.writeBigUInt64BE(view.epoch, 5);
  buf.writeUInt16BE(view.members.length, 13);
  let at = HEADER_BYTES;
  view.members.forEach((member, i) => {
    buf[at] = member.state;
    buf[at + 1] = member.dead ? 1 : 0;
    buf.writeBigUInt64BE(member.since, at + 2);
    at = _writeShortBytes(buf, at + 10, urls[i]!);
    at = _writeShortBytes(buf, at, tokens[i]!);
  });
  buf.writeUInt32BE(crc32(buf.subarray(0, at)), at);
  return buf;
}

/** Decodes a view; a reason string when the bytes are not one (bad checksum included). */
export function decodeMembership(buf: Buffer): Membership | string {
  if (buf.length < HEADER_BYTES + CRC_BYTES) return `${buf.length} bytes, shorter than a header`;
  if (!buf.subarray(0, 4).equals(MAGIC)) return 'not a membership (bad magic)';
  // Before the checksum: another version may lay out its bytes (and its checksum) otherwise.
  if (buf[4] !== MEMBERSHIP_FORMAT_VERSION) {
    return `${UNKNOWN_FORMAT_VERSION} ${buf[4]} (this node reads version ${MEMBERSHIP_FORMAT_VERSION})`;
  }
  const body = buf.length - CRC_BYTES;
  if (crc32(buf.subarray(0, body)) !== buf.readUInt32BE(body)) return 'checksum mismatch';
  const epoch = buf.readBigUInt64BE(5);
  if (epoch > EPOCH_MAX) return `epoch ${epoch}, more than ${EPOCH_MAX}`;
  const count = buf.readUInt16BE(13);
  if (count > MEMBERS_MAX) return `${count} members, more than ${MEMBERS_MAX}`;
  if (epoch === 0n && count > 0) return `${count} members at epoch 0`;
  const members: Member[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + 14 > body) return `member ${i} runs past the end`;
    const state = buf[at]! as MemberState;
    const flags = buf[at + 1]!;
    if (state < MemberState.Joining || state > MemberState.Removed) return `member ${i}: bad state ${state}`;
    if (flags > 1) return `member ${i}: unknown flags ${flags}`;
    const since = buf.readBigUInt64BE(at + 2);
    if (since < 1n || since > epoch) return `member ${i}: changed at epoch ${since}, outside 1..${epoch}`;
    const url = _readShortString(buf, at + 10, body);
    if (url === undefined) return `member ${i}: bad URL`;
    if (!_normalUrl(url[0])) return `member ${i}: URL ${JSON.stringify(url[0])} is not spelled as a node URL`;
    const token = _readShortString(buf, url[1], body);
    if (token === undefined) return `member ${i}: bad token`;
    if (token[0] !== '' && !_normalUrl(token[0])) {
      return `member ${i}: token ${JSON.stringify(token[0])} is not spelled as a node URL`;
    }
    at = token[1];
    const previous = members[members.length - 1];
    if (previous !== undefined && !(previous.url < url[0]))
      return `member ${i}: URLs not sorted and distinct`;
    members.push({
      url: url[0],
      state,
      dead: flags === 1,
      token: token[0] === '' ? url[0] : token[0],
      since,
    });
  }
  if (at !== body) return 'trailing bytes after the members';
  return { epoch, members };
}

export interface StreamRequest {
  /** The epoch of the view the move is computed from: both sides must hold it. */
  readonly epoch: bigint;
  /** That view's digest (membership.ts's viewDigest): two views can share an epoch. */
  readonly view: bigint;
  /** The node the entries are for (a future owner). */
  readonly target: string;
  readonly start: Buffer;
  readonly limit: number;
}

export interface StreamPage {
  /** The source's view: the request's when the page holds entries. */
  readonly epoch: bigint;
  readonly view: bigint;
  readonly more: boolean;
  /** The source's estimate of the whole transfer's bytes (keys and values), for progress. */
  readonly estimatedBytes: number;
  /** The last key examined: the next request starts just after it. */
  readonly coveredThrough: Buffer;
  readonly entries: Entry[];
}

export function encodeStreamRequest(request: StreamRequest): Buffer {
  const target = Buffer.from(request.target, 'utf8');
  const buf = Buffer.alloc(
    16 + 2 + target.length + varintBytes(request.start.length) + request.start.length + 4,
  );
  buf.writeBigUInt64BE(request.epoch, 0);
  buf.writeBigUInt64BE(request.view, 8);
  let at = _writeShortBytes(buf, 16, target);
  at = writeVarint(buf, at, request.start.length);
  at += request.start.copy(buf, at);
  buf.writeUInt32BE(request.limit, at);
  return buf;
}

export function decodeStreamRequest(buf: Buffer): StreamRequest {
  if (buf.length < 23) throw _bad('stream request too short');
  const epoch = buf.readBigUInt64BE(0);
  const view = buf.readBigUInt64BE(8);
  const target = _readShortString(buf, 16, buf.length);
  if (target === undefined) throw _bad('bad stream target');
  const start = _readBytes(buf, target[1]);
  if (start === undefined || start[1] + 4 !== buf.length) throw _bad('bad stream start');
  return { epoch, view, target: target[0], start: start[0], limit: buf.readUInt32BE(start[1]) };
}

/** A stream page's bytes besides its entries, when its last key examined is `keyBytes` long. */
export function streamPageFixedBytes(keyBytes: number): number {
  return 25 + varintBytes(keyBytes) + keyBytes + 4;
}

export function encodeStreamPage(page: StreamPage): Buffer {
  let bytes = streamPageFixedBytes(page.coveredThrough.length);
  for (const entry of page.entries) bytes += encodedEntryBytes(entry);
  const buf = Buffer.alloc(bytes);
  buf[0] = page.more ? 1 : 0;
  buf.writeBigUInt64BE(page.epoch, 1);
  buf.writeBigUInt64BE(page.view, 9);
  buf.writeBigUInt64BE(BigInt(Math.max(0, Math.round(page.estimatedBytes))), 17);
  let at = writeVarint(buf, 25, page.coveredThrough.length);
  at += page.coveredThrough.copy(buf, at);
  buf.writeUInt32BE(page.entries.length, at);
  at += 4;
  for (const entry of page.entries) at = encodeEntry(entry, buf, at);
  return buf;
}

export function decodeStreamPage(buf: Buffer): StreamPage {
  if (buf.length < 30 || buf[0]! > 1) throw _bad('bad stream page header');
  const covered = _readBytes(buf, 25);
  if (covered === undefined || covered[1] + 4 > buf.length) throw _bad('bad stream page key');
  const decoded = decodeEntries(buf, covered[1]);
  if (typeof decoded === 'string') throw _bad(`stream page ${decoded}`);
  if (decoded.end !== buf.length) throw _bad('trailing bytes after the stream page');
  return {
    more: buf[0] === 1,
    epoch: buf.readBigUInt64BE(1),
    view: buf.readBigUInt64BE(9),
    estimatedBytes: Number(buf.readBigUInt64BE(17)),
    coveredThrough: covered[0],
    entries: decoded.entries,
  };
}

export function encodeMoveRequest(kind: MoveKind, argument = ''): Buffer {
  const text = Buffer.from(argument, 'utf8');
  const buf = Buffer.alloc(1 + text.length);
  buf[0] = kind;
  text.copy(buf, 1);
  return buf;
}

export function decodeMoveRequest(buf: Buffer): { kind: MoveKind; argument: string } {
  const kind = buf[0];
  if (kind === undefined || kind < MoveKind.Progress || kind > MoveKind.Cancel) {
    throw _bad(`unknown move request kind ${kind}`);
  }
  if (buf.length - 1 > URL_BYTES_MAX) throw _bad('move request argument too long');
  return { kind: kind as MoveKind, argument: buf.toString('utf8', 1) };
}

function _writeShortBytes(buf: Buffer, at: number, bytes: Buffer): number {
  buf.writeUInt16BE(bytes.length, at);
  return at + 2 + bytes.copy(buf, at + 2);
}

function _readShortString(buf: Buffer, at: number, end: number): [string, number] | undefined {
  if (at + 2 > end) return undefined;
  const length = buf.readUInt16BE(at);
  if (length > URL_BYTES_MAX || at + 2 + length > end) return undefined;
  return [buf.toString('utf8', at + 2, at + 2 + length), at + 2 + length];
}

/** Whether `url` is a node URL spelled as every node spells it (config/options.ts's nodeAddress). */
function _normalUrl(url: string): boolean {
  try {
    return nodeAddress(url, 'member URL').url === url;
  } catch {
    return false;
  }
}

function _readBytes(buf: Buffer, at: number): [Buffer, number] | undefined {
  const length = readVarint(buf, at);
  if (length === undefined || length[1] + length[0] > buf.length) return undefined;
  return [copyBytes(buf.subarray(length[1], length[1] + length[0])), length[1] + length[0]];
}

function _bad(message: string): RingkvError {
  return new RingkvError('RINGKV_PROTOCOL', message);
}
