/**
 * The internode wire format: frames, message types and message bodies. This
 * file owns every byte of it (docs/formats/internode.md draws the same).
 *
 * A connection starts as HTTP/1.1 (`GET /v0/internode`, `Upgrade:
 * ringkv-internode/1`, answered 101) and then carries frames both ways:
 *
 *   offset  size  field
 *   0       4     length L of what follows (type + id + body), u32 big-endian
 *   4       1     message type (MessageType)
 *   5       4     request id, u32 big-endian, chosen by the requesting side
 *   9       L-5   body, laid out per type below
 *
 * Request types are 0x01..0x7f; the answer to request type T is T | 0x80, or
 * ERROR (0xff). Answers carry their request's id and may come in any order.
 * Entries inside bodies use the storage entry codec (storage/entry/codec.ts).
 *
 *   WRITE 0x01  entry                      -> OK 0x81     empty, or u64 newer version (a conflict)
 *   READ  0x02  key (the whole body)       -> ENTRY 0x82  u8 present (0|1), entry if 1
 *   SCAN  0x03  u32 limit, u8 flags (bit 0: has end),
 *               varint start length, start,
 *               [varint end length, end]   -> BATCH 0x83  u8 flags (bit 0: more), u32 count, count entries
 *   PING  0x04  (empty)                    -> PONG 0x84   empty, or u64 sender's wall clock (ms)
 *   ANTI_ENTROPY 0x05  body (opaque)       -> ANTI_ENTROPY_ANSWER 0x85  body (opaque)
 *   LEAVING 0x06  sender's URL (UTF-8)     -> LEAVING_ACK 0x86  (empty)
 *   MEMBERSHIP 0x07  a view (opaque)       -> MEMBERSHIP_ANSWER 0x87  the receiver's view after merging (opaque)
 *   STREAM 0x08  a page request (opaque)   -> STREAM_PAGE 0x88  a page of entries (opaque)
 *   MOVE 0x09  a move request (opaque)     -> MOVE_ANSWER 0x89  JSON (opaque)
 *   any         ...                        -> ERROR 0xff  u8 code length, code (ASCII), message (UTF-8)
 *
 * Decoded keys and values are copies: a 20-byte key must not pin a 64 KiB
 * socket chunk in a memtable.
 */

import {
  decodeEntry,
  EMPTY,
  type Entry,
  EntryKind,
  encodedEntryBytes,
  encodeEntry,
} from '../../storage/index.js';
import { copyBytes, readVarint, varintBytes, writeVarint } from '../../util/bytes.js';
import type { ErrorCode } from '../../util/errors.js';

/** The Upgrade token; a new incompatible format gets a new token, never a changed meaning. */
export const PROTOCOL = 'ringkv-internode/1';
/** Path of the Upgrade request. */
export const UPGRADE_PATH = '/v0/internode';
/** Paths of the plain-HTTP variant (http-transport.ts) start with this. */
export const HTTP_PATH_PREFIX = '/v0/internode/';
/** Request header carrying the cluster-secret proof (auth.ts). */
export const PROOF_HEADER = 'ringkv-proof';
/** Request header naming the sender's own URL (`--url`): a peer that sees it knows that node is up. */
export const NODE_HEADER = 'ringkv-node';
/** Response header naming the error code in the plain-HTTP variant. */
export const ERROR_HEADER = 'ringkv-error';

/** Bytes before a frame's body: length, type, id. */
export const FRAME_HEADER_BYTES = 9;
/** The length field covers type and id at least. */
export const FRAME_LENGTH_MIN = 5;

/** On-wire values: never renumber. Requests 0x01..0x7f; answers set bit 7. */
export const MessageType = {
  Write: 0x01,
  Read: 0x02,
  Scan: 0x03,
  Ping: 0x04,
  /** An anti-entropy request; its body is laid out by cluster/antientropy/format.ts. */
  AntiEntropy: 0x05,
  /** The sender shuts down: send it nothing new, route around it (docs/formats/internode.md). */
  Leaving: 0x06,
  /** A membership view (push or exchange); its layout belongs to cluster/membership/format.ts, as STREAM's and MOVE's. */
  Membership: 0x07,
  /** A page of the entries a move hands a new owner. */
  Stream: 0x08,
  /** An operator's move request (decommission, remove, cancel) or a move's progress. */
  Move: 0x09,
  Ok: 0x81,
  Entry: 0x82,
  Batch: 0x83,
  Pong: 0x84,
  AntiEntropyAnswer: 0x85,
  LeavingAck: 0x86,
  MembershipAnswer: 0x87,
  StreamPage: 0x88,
  MoveAnswer: 0x89,
  Error: 0xff,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** The messages whose body is opaque to the transport: another package owns its layout. */
export type OpaqueType =
  | typeof MessageType.AntiEntropy
  | typeof MessageType.AntiEntropyAnswer
  | typeof MessageType.Membership
  | typeof MessageType.MembershipAnswer
  | typeof MessageType.Stream
  | typeof MessageType.StreamPage
  | typeof MessageType.Move
  | typeof MessageType.MoveAnswer;

/**
 * Requests whose answer may take seconds (the peer scans its store, paced):
 * they do not count as waiting when the link checks that its peer answers.
 */
export function isSlowRequest(type: number): boolean {
  return type === MessageType.AntiEntropy || type === MessageType.Stream;
}

export type Message =
  | { readonly type: typeof MessageType.Write; readonly entry: Entry }
  | { readonly type: typeof MessageType.Read; readonly key: Buffer }
  | {
      readonly type: typeof MessageType.Scan;
      readonly start: Buffer;
      readonly end: Buffer | undefined;
      readonly limit: number;
    }
  | { readonly type: typeof MessageType.Ping }
  | { readonly type: OpaqueType; readonly body: Buffer }
  | { readonly type: typeof MessageType.Leaving; readonly node: string }
  | {
      readonly type: typeof MessageType.Ok;
      /**
       * Set in the answer to a WRITE when the replica already knew a version
       * of the key at least as new as the one written (contract.ts).
       */
      readonly newerVersion?: bigint;
    }
  | { readonly type: typeof MessageType.Entry; readonly entry: Entry | undefined }
  | { readonly type: typeof MessageType.Batch; readonly entries: Entry[]; readonly more: boolean }
  | {
      readonly type: typeof MessageType.Pong;
      /** The answering node's wall clock when it answered (ms); absent from older nodes. */
      readonly wallMs?: number;
    }
  | { readonly type: typeof MessageType.LeavingAck }
  | { readonly type: typeof MessageType.Error; readonly code: ErrorCode; readonly message: string };

export function isRequestType(type: number): boolean {
  return type >= 0x01 && type <= 0x7f;
}

/** The answer type expected for a request type. */
export function answerType(requestType: number): number {
  return requestType | 0x80;
}

/** Error codes an ERROR frame may carry; others decode as RINGKV_UNAVAILABLE. */
const WIRE_ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'RINGKV_CORRUPTION',
  'RINGKV_IO',
  'RINGKV_CLOSED',
  'RINGKV_LOCKED',
  'RINGKV_BAD_REQUEST',
  'RINGKV_KEY_TOO_LONG',
  'RINGKV_VALUE_TOO_LARGE',
  'RINGKV_NOT_ENOUGH_REPLICAS',
  'RINGKV_TIMEOUT',
  'RINGKV_UNAVAILABLE',
  'RINGKV_UNAUTHORIZED',
  'RINGKV_PROTOCOL',
  'RINGKV_CONFIG',
]);

export function toWireErrorCode(code: string): ErrorCode {
  return WIRE_ERROR_CODES.has(code) ? (code as ErrorCode) : 'RINGKV_UNAVAILABLE';
}

/** Bytes of an OK body that carries a newer version: one u64. */
const OK_VERSION_BYTES = 8;

/** Bytes of a PONG body that carries a wall clock: one u64. */
const PONG_CLOCK_BYTES = 8;

/** A LEAVING body's URL is at most this long. */
const LEAVING_NODE_BYTES_MAX = 2048;

/** An ERROR body's message is cut to this many bytes: it is for a log line. */
const ERROR_MESSAGE_BYTES_MAX = 1024;

/** Body bytes of a message. */
export function messageBodyBytes(message: Message): number {
  switch (message.type) {
    case MessageType.Write:
      return encodedEntryBytes(message.entry);
    case MessageType.Read:
      return message.key.length;
    case MessageType.Scan:
      return (
        5 +
        varintBytes(message.start.length) +
        message.start.length +
        (message.end === undefined ? 0 : varintBytes(message.end.length) + message.end.length)
      );
    case MessageType.Entry:
      return 1 + (message.entry === undefined ? 0 : encodedEntryBytes(message.entry));
    case MessageType.Batch:
      return batchBodyBytes(message.entries);
    case MessageType.Error:
      return 1 + message.code.length + Math.min(Buffer.byteLength(message.message), ERROR_MESSAGE_BYTES_MAX);
    case MessageType.Ok:
      return message.newerVersion === undefined ? 0 : OK_VERSION_BYTES;
    case MessageType.AntiEntropy:
    case MessageType.AntiEntropyAnswer:
    case MessageType.Membership:
    case MessageType.MembershipAnswer:
    case MessageType.Stream:
    case MessageType.StreamPage:
    case MessageType.Move:
    case MessageType.MoveAnswer:
      return message.body.length;
    case MessageType.Pong:
      return message.wallMs === undefined ? 0 : PONG_CLOCK_BYTES;
    case MessageType.Leaving:
      return Buffer.byteLength(message.node);
    case MessageType.Ping:
    case MessageType.LeavingAck:
      return 0;
  }
}

export function batchBodyBytes(entries: readonly Entry[]): number {
  let bytes = 5;
  for (const entry of entries) bytes += encodedEntryBytes(entry);
  return bytes;
}

/** Writes a frame header at `offset`; returns the body's offset. */
export function writeFrameHeader(
  buf: Buffer,
  offset: number,
  type: number,
  id: number,
  bodyBytes: number,
): number {
  buf.writeUInt32BE(FRAME_LENGTH_MIN + bodyBytes, offset);
  buf[offset + 4] = type;
  buf.writeUInt32BE(id, offset + 5);
  return offset + FRAME_HEADER_BYTES;
}

/** Writes the body at `offset`, sized by messageBodyBytes; returns the end offset. */
export function writeMessageBody(message: Message, buf: Buffer, offset: number): number {
  switch (message.type) {
    case MessageType.Write:
      return encodeEntry(message.entry, buf, offset);
    case MessageType.Read:
      return offset + message.key.copy(buf, offset);
    case MessageType.Scan: {
      buf.writeUInt32BE(message.limit, offset);
      buf[offset + 4] = message.end === undefined ? 0 : 1;
      let at = writeVarint(buf, offset + 5, message.start.length);
      at += message.start.copy(buf, at);
      if (message.end !== undefined) {
        at = writeVarint(buf, at, message.end.length);
        at += message.end.copy(buf, at);
      }
      return at;
    }
    case MessageType.Entry:
      if (message.entry === undefined) {
        buf[offset] = 0;
        return offset + 1;
      }
      buf[offset] = 1;
      return encodeEntry(message.entry, buf, offset + 1);
    case MessageType.Batch:
      return _writeBatchBody(message.entries, message.more, buf, offset);
    case MessageType.Error: {
      buf[offset] = message.code.length;
      let at = offset + 1 + buf.write(message.code, offset + 1, 'latin1');
      const text = Buffer.from(message.message);
      at += text.copy(buf, at, 0, Math.min(text.length, ERROR_MESSAGE_BYTES_MAX));
      return at;
    }
    case MessageType.Ok:
      if (message.newerVersion === undefined) return offset;
      buf.writeBigUInt64BE(message.newerVersion, offset);
      return offset + OK_VERSION_BYTES;
    case MessageType.AntiEntropy:
    case MessageType.AntiEntropyAnswer:
    case MessageType.Membership:
    case MessageType.MembershipAnswer:
    case MessageType.Stream:
    case MessageType.StreamPage:
    case MessageType.Move:
    case MessageType.MoveAnswer:
      return offset + message.body.copy(buf, offset);
    case MessageType.Pong:
      if (message.wallMs === undefined) return offset;
      buf.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(message.wallMs))), offset);
      return offset + PONG_CLOCK_BYTES;
    case MessageType.Leaving:
      return offset + buf.write(message.node, offset, 'utf8');
    case MessageType.Ping:
    case MessageType.LeavingAck:
      return offset;
  }
}

function _writeBatchBody(entries: readonly Entry[], more: boolean, buf: Buffer, offset: number): number {
  buf[offset] = more ? 1 : 0;
  buf.writeUInt32BE(entries.length, offset + 1);
  let at = offset + 5;
  for (const entry of entries) at = encodeEntry(entry, buf, at);
  return at;
}

/** A whole message as one buffer: header, then body (tests and the HTTP variant's bodies). */
export function encodeFrame(message: Message, id: number): Buffer {
  const bodyBytes = messageBodyBytes(message);
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyBytes);
  const end = writeMessageBody(message, buf, writeFrameHeader(buf, 0, message.type, id, bodyBytes));
  return buf.subarray(0, end);
}

/** Just the body of a message, as one buffer. */
export function encodeBody(message: Message): Buffer {
  const buf = Buffer.allocUnsafe(messageBodyBytes(message));
  return buf.subarray(0, writeMessageBody(message, buf, 0));
}

/**
 * Decodes a body of the given type. Returns the message, or a reason string
 * when the bytes are not a valid body of that type (the caller answers or
 * closes with RINGKV_PROTOCOL); an unknown type is such a reason too.
 */
export function decodeMessage(type: number, body: Buffer): Message | string {
  switch (type) {
    case MessageType.Write: {
      const entry = _decodeWholeEntry(body, 0);
      return typeof entry === 'string' ? entry : { type, entry };
    }
    case MessageType.Read:
      return { type, key: copyBytes(body) };
    case MessageType.Scan: {
      if (body.length < 6) return 'scan body too short';
      const limit = body.readUInt32BE(0);
      const flags = body[4]!;
      if (flags > 1) return `unknown scan flags ${flags}`;
      const start = _readBytes(body, 5);
      if (start === undefined) return 'bad scan start';
      let end: Buffer | undefined;
      let at = start[1];
      if (flags === 1) {
        const read = _readBytes(body, at);
        if (read === undefined) return 'bad scan end';
        end = read[0];
        at = read[1];
      }
      if (at !== body.length) return 'trailing bytes after scan body';
      return { type, start: start[0], end, limit };
    }
    case MessageType.Entry: {
      if (body.length < 1) return 'entry answer too short';
      if (body[0] === 0)
        return body.length === 1 ? { type, entry: undefined } : 'trailing bytes after absent entry';
      if (body[0] !== 1) return `bad entry presence flag ${body[0]}`;
      const entry = _decodeWholeEntry(body, 1);
      return typeof entry === 'string' ? entry : { type, entry };
    }
    case MessageType.Batch:
      return decodeBatchBody(body);
    case MessageType.Error: {
      if (body.length < 1 || body.length < 1 + body[0]!) return 'error body too short';
      const code = toWireErrorCode(body.toString('latin1', 1, 1 + body[0]!));
      return { type, code, message: body.toString('utf8', 1 + body[0]!) };
    }
    case MessageType.Ok:
      if (body.length === 0) return { type };
      if (body.length !== OK_VERSION_BYTES) return `ok body of ${body.length} bytes`;
      return { type, newerVersion: body.readBigUInt64BE(0) };
    case MessageType.AntiEntropy:
    case MessageType.AntiEntropyAnswer:
    case MessageType.Membership:
    case MessageType.MembershipAnswer:
    case MessageType.Stream:
    case MessageType.StreamPage:
    case MessageType.Move:
    case MessageType.MoveAnswer:
      // Kept past the frame (queued, or stored by the other side): an owned copy.
      return { type, body: copyBytes(body) };
    case MessageType.Pong:
      if (body.length === 0) return { type };
      if (body.length !== PONG_CLOCK_BYTES) return `pong body of ${body.length} bytes`;
      return { type, wallMs: Number(body.readBigUInt64BE(0)) };
    case MessageType.Leaving:
      if (body.length === 0 || body.length > LEAVING_NODE_BYTES_MAX)
        return `leaving body of ${body.length} bytes`;
      return { type, node: body.toString('utf8') };
    case MessageType.Ping:
    case MessageType.LeavingAck:
      return body.length === 0 ? { type } : `non-empty body for type ${type}`;
    default:
      return `unknown message type ${type}`;
  }
}

export function decodeBatchBody(
  body: Buffer,
): { type: typeof MessageType.Batch; entries: Entry[]; more: boolean } | string {
  if (body.length < 5) return 'batch body too short';
  const flags = body[0]!;
  if (flags > 1) return `unknown batch flags ${flags}`;
  const decoded = decodeEntries(body, 1);
  if (typeof decoded === 'string') return `batch ${decoded}`;
  if (decoded.end !== body.length) return 'trailing bytes after batch';
  return { type: MessageType.Batch, entries: decoded.entries, more: flags === 1 };
}

/**
 * A u32 count at `offset`, then that many entries back to back (the body of
 * a BATCH, and of a membership STREAM page): each checked as the entry model
 * requires and copied out of `body`. Returns them and the offset after the
 * last, or the reason they do not parse.
 */
export function decodeEntries(body: Buffer, offset: number): { entries: Entry[]; end: number } | string {
  if (offset + 4 > body.length) return 'entry count missing';
  const count = body.readUInt32BE(offset);
  // Each entry takes at least 17 bytes, so a count the body cannot hold is refused before allocating.
  if (count > (body.length - offset - 4) / 17) return `count ${count} larger than its body`;
  const entries: Entry[] = new Array(count);
  let at = offset + 4;
  for (let i = 0; i < count; i++) {
    const decoded = decodeEntry(body, at, body.length);
    if (typeof decoded === 'string') return `entry ${i}: ${decoded}`;
    const bad = _checkEntry(decoded[0]);
    if (bad !== undefined) return `entry ${i}: ${bad}`;
    entries[i] = _ownedEntry(decoded[0]);
    at = decoded[1];
  }
  return { entries, end: at };
}

function _decodeWholeEntry(body: Buffer, offset: number): Entry | string {
  const decoded = decodeEntry(body, offset, body.length);
  if (typeof decoded === 'string') return decoded;
  if (decoded[1] !== body.length) return 'trailing bytes after entry';
  return _checkEntry(decoded[0]) ?? _ownedEntry(decoded[0]);
}

/** The entry model's rule the codec does not check: tombstones carry no value and no expiry. */
function _checkEntry(entry: Entry): string | undefined {
  if (entry.kind === EntryKind.Tombstone && (entry.value.length > 0 || entry.expiresAtMs !== 0)) {
    return 'tombstone with a value or an expiry';
  }
  return undefined;
}

function _ownedEntry(view: Entry): Entry {
  return {
    key: copyBytes(view.key),
    version: view.version,
    kind: view.kind,
    expiresAtMs: view.expiresAtMs,
    value: view.value.length === 0 ? EMPTY : copyBytes(view.value),
  };
}

function _readBytes(buf: Buffer, offset: number): [Buffer, number] | undefined {
  const length = readVarint(buf, offset);
  if (length === undefined) return undefined;
  const end = length[1] + length[0];
  if (end > buf.length) return undefined;
  return [copyBytes(buf.subarray(length[1], end)), end];
}
