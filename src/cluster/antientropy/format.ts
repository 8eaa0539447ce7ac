/**
 * The bytes of anti-entropy requests and answers. They travel as the opaque
 * body of the internode ANTI_ENTROPY message (transport/format.ts); this file
 * owns their layout, drawn in docs/design/anti-entropy.md. All integers are
 * big-endian; varints are unsigned LEB128 (util/bytes.ts).
 *
 *   request:
 *   0   u8   kind: 1 DIGEST, 2 SUMMARY, 3 ARCS
 *   1   u8   format version (3)
 *   2   u8   leafBits (1..16)
 *   3   u8   replication factor R
 *   4   varint + bytes: the requester's node URL (UTF-8)
 *   ..  u32  the requester's ring fingerprint (Ring.fingerprint)
 *   DIGEST  then: u32 count, u32 h1, u32 h2 of the requester's root
 *   ARCS    then: bucket bitmap, 2^leafBits bits (bit b of byte b>>3 is bucket b, LSB first)
 *   SUMMARY then: u32 n, n x u32 arc (ring point index, ascending),
 *                 varint + bytes start position, u32 limit (summaries)
 *
 *   DIGEST answer:  u8 0 (roots equal, nothing follows)
 *                 | u8 1, then 2^leafBits x (u32 count, u32 h1, u32 h2)
 *                 | u8 2 (not ready: the answering node's tree is being built, or its ring differs)
 *   ARCS answer:    u32 n, n x (u32 count, u32 h1, u32 h2): the digests of the pair's arcs whose
 *                   point falls in a bucket set, in point order (both sides list the same arcs)
 *   SUMMARY answer: u8 flags (bit 0: more), varint + bytes coveredThrough,
 *                   u32 count, count x (varint + bytes key, u64 version, u8 kind, u32 value hash)
 *
 * Positions are index keys: hash32(key) as u32 big-endian, then the key;
 * summaries come in position order. A SUMMARY answer covers every position
 * from the request's start through coveredThrough (inclusive; to the end
 * when `more` is clear) within the hash ranges of the arcs named
 * (arc-digests.ts), and lists every key there.
 */
import { EntryKind } from '../../storage/index.js';
import { copyBytes, readU64BE, readVarint, varintBytes, writeU64BE, writeVarint } from '../../util/bytes.js';
import { RingkvError } from '../../util/errors.js';
import { DIGEST_WORDS, LeafDigests } from './merkle.js';

/** On-wire values: never renumber. */
export const RequestKind = { Digest: 1, Summary: 2, Arcs: 3 } as const;
export type RequestKind = (typeof RequestKind)[keyof typeof RequestKind];
/**
 * The layout drawn above; a new layout, or a new meaning of the hashes peers
 * compare (3: value hashes cover the expiry), takes the next number.
 */
export const AE_FORMAT_VERSION = 3;

interface _Common {
  readonly leafBits: number;
  readonly replicationFactor: number;
  /** The node asking: the responder compares with the keys this pair shares. */
  readonly from: string;
  /** The ring the requester compares over: the answering node's must be the same. */
  readonly ringFingerprint: number;
}

export interface DigestRequest extends _Common {
  readonly kind: typeof RequestKind.Digest;
  readonly root: readonly [number, number, number];
}

export interface ArcsRequest extends _Common {
  readonly kind: typeof RequestKind.Arcs;
  /** One bit per bucket: set for the buckets whose arcs' digests are wanted. */
  readonly buckets: Uint8Array;
}

export interface SummaryRequest extends _Common {
  readonly kind: typeof RequestKind.Summary;
  /** The arcs to list (ring point indexes, ascending). */
  readonly arcs: readonly number[];
  /** Index position to list from (inclusive); empty: the beginning. */
  readonly start: Buffer;
  readonly limit: number;
}

export type Request = DigestRequest | ArcsRequest | SummaryRequest;

/** One key of a summary: enough to tell which side is newer, or that one version holds two values. */
export interface KeySummary {
  readonly key: Buffer;
  readonly version: bigint;
  readonly kind: EntryKind;
  /** valueHash (merkle.ts) of the value: 0 for a tombstone. */
  readonly valueHash: number;
}

export interface SummaryPage {
  readonly summaries: KeySummary[];
  readonly more: boolean;
  /** The position of the last key the page covers; meaningful when `more`. */
  readonly coveredThrough: Buffer;
}

export function bitmapBytes(leafBits: number): number {
  return Math.ceil((1 << leafBits) / 8);
}

export function bitmapHas(bitmap: Uint8Array, bucket: number): boolean {
  return ((bitmap[bucket >> 3]! >> (bucket & 7)) & 1) === 1;
}

export function bitmapOf(leafBits: number, buckets: readonly number[]): Uint8Array {
  const bitmap = new Uint8Array(bitmapBytes(leafBits));
  for (const b of buckets) bitmap[b >> 3] = bitmap[b >> 3]! | (1 << (b & 7));
  return bitmap;
}

export function encodeRequest(request: Request): Buffer {
  const url = Buffer.from(request.from, 'utf8');
  let bytes = 8 + varintBytes(url.length) + url.length;
  if (request.kind === RequestKind.Digest) bytes += 12;
  else if (request.kind === RequestKind.Arcs) bytes += request.buckets.length;
  else bytes += 4 + 4 * request.arcs.length + varintBytes(request.start.length) + request.start.length + 4;
  const buf = Buffer.alloc(bytes);
  buf[0] = request.kind;
  buf[1] = AE_FORMAT_VERSION;
  buf[2] = request.leafBits;
  buf[3] = request.replicationFactor;
  let at = writeVarint(buf, 4, url.length);
  at += url.copy(buf, at);
  buf.writeUInt32BE(request.ringFingerprint >>> 0, at);
  at += 4;
  if (request.kind === RequestKind.Digest) {
    buf.writeUInt32BE(request.root[0], at);
    buf.writeUInt32BE(request.root[1], at + 4);
    buf.writeUInt32BE(request.root[2], at + 8);
    return buf;
  }
  if (request.kind === RequestKind.Arcs) {
    buf.set(request.buckets, at);
    return buf;
  }
  buf.writeUInt32BE(request.arcs.length, at);
  at += 4;
  for (const arc of request.arcs) {
    buf.writeUInt32BE(arc, at);
    at += 4;
  }
  at = writeVarint(buf, at, request.start.length);
  at += request.start.copy(buf, at);
  buf.writeUInt32BE(request.limit, at);
  return buf;
}

/** Decodes a request; throws RINGKV_BAD_REQUEST for bytes that are not one. */
export function decodeRequest(buf: Buffer): Request {
  if (buf.length < 5) throw _bad('request too short');
  const kind = buf[0]!;
  if (buf[1] !== AE_FORMAT_VERSION) throw _bad(`unsupported format version ${buf[1]}`);
  const leafBits = buf[2]!;
  if (leafBits < 1 || leafBits > 16) throw _bad(`leafBits out of range: ${leafBits}`);
  const replicationFactor = buf[3]!;
  const url = _readBytes(buf, 4);
  const from = url[0].toString('utf8');
  let at = url[1];
  if (buf.length < at + 4) throw _bad('ring fingerprint cut off');
  const ringFingerprint = buf.readUInt32BE(at);
  at += 4;
  if (kind === RequestKind.Digest) {
    if (buf.length !== at + 12) throw _bad('digest request of the wrong size');
    const root = [buf.readUInt32BE(at), buf.readUInt32BE(at + 4), buf.readUInt32BE(at + 8)] as const;
    return { kind, leafBits, replicationFactor, from, ringFingerprint, root };
  }
  if (kind === RequestKind.Arcs) {
    if (buf.length !== at + bitmapBytes(leafBits)) throw _bad('arcs request of the wrong size');
    const buckets = new Uint8Array(buf.subarray(at));
    return { kind, leafBits, replicationFactor, from, ringFingerprint, buckets };
  }
  if (kind !== RequestKind.Summary) throw _bad(`unknown request kind ${kind}`);
  if (buf.length < at + 4) throw _bad('summary arc count cut off');
  const count = buf.readUInt32BE(at);
  at += 4;
  if (count > (buf.length - at) / 4) throw _bad(`summary arc count ${count} larger than the request`);
  const arcs: number[] = [];
  for (let i = 0; i < count; i++, at += 4) arcs.push(buf.readUInt32BE(at));
  const start = _readBytes(buf, at);
  at = start[1];
  if (buf.length !== at + 4) throw _bad('summary request of the wrong size');
  return {
    kind,
    leafBits,
    replicationFactor,
    from,
    ringFingerprint,
    arcs,
    start: start[0],
    limit: buf.readUInt32BE(at),
  };
}

/** The DIGEST answer that says the answering node cannot compare now (its tree is not ready for the ring). */
export const NOT_READY = 'not-ready';

/** The DIGEST answer: undefined leaves say the roots were equal. */
export function encodeDigestAnswer(leaves: LeafDigests | undefined | typeof NOT_READY): Buffer {
  if (leaves === undefined) return Buffer.from([0]);
  if (leaves === NOT_READY) return Buffer.from([2]);
  const buf = Buffer.alloc(1 + leaves.words.length * 4);
  buf[0] = 1;
  for (let i = 0; i < leaves.words.length; i++) buf.writeUInt32BE(leaves.words[i]!, 1 + 4 * i);
  return buf;
}

export function decodeDigestAnswer(
  buf: Buffer,
  leafBits: number,
): LeafDigests | undefined | typeof NOT_READY {
  if (buf.length === 1 && buf[0] === 0) return undefined;
  if (buf.length === 1 && buf[0] === 2) return NOT_READY;
  const words = DIGEST_WORDS << leafBits;
  if (buf[0] !== 1 || buf.length !== 1 + 4 * words) throw _protocol('digest answer of the wrong size');
  const out = new Uint32Array(words);
  for (let i = 0; i < words; i++) out[i] = buf.readUInt32BE(1 + 4 * i);
  return new LeafDigests(leafBits, out);
}

/** The ARCS answer: the digests of the arcs asked for, DIGEST_WORDS words each. */
export function encodeArcsAnswer(words: Uint32Array): Buffer {
  const buf = Buffer.alloc(4 + 4 * words.length);
  buf.writeUInt32BE(words.length / DIGEST_WORDS, 0);
  for (let i = 0; i < words.length; i++) buf.writeUInt32BE(words[i]!, 4 + 4 * i);
  return buf;
}

export function decodeArcsAnswer(buf: Buffer): Uint32Array {
  if (buf.length < 4) throw _protocol('arcs answer too short');
  const count = buf.readUInt32BE(0);
  if (buf.length !== 4 + 4 * DIGEST_WORDS * count) throw _protocol('arcs answer of the wrong size');
  const words = new Uint32Array(DIGEST_WORDS * count);
  for (let i = 0; i < words.length; i++) words[i] = buf.readUInt32BE(4 + 4 * i);
  return words;
}

/** Bytes one summary takes in an answer. */
export function summaryBytes(summary: KeySummary): number {
  return varintBytes(summary.key.length) + summary.key.length + 13;
}

export function encodeSummaryAnswer(page: SummaryPage): Buffer {
  let bytes = 1 + varintBytes(page.coveredThrough.length) + page.coveredThrough.length + 4;
  for (const s of page.summaries) bytes += summaryBytes(s);
  const buf = Buffer.alloc(bytes);
  buf[0] = page.more ? 1 : 0;
  let at = writeVarint(buf, 1, page.coveredThrough.length);
  at += page.coveredThrough.copy(buf, at);
  buf.writeUInt32BE(page.summaries.length, at);
  at += 4;
  for (const s of page.summaries) {
    at = writeVarint(buf, at, s.key.length);
    at += s.key.copy(buf, at);
    writeU64BE(buf, at, s.version);
    buf[at + 8] = s.kind;
    buf.writeUInt32BE(s.valueHash >>> 0, at + 9);
    at += 13;
  }
  return buf;
}

export function decodeSummaryAnswer(buf: Buffer): SummaryPage {
  try {
    if (buf.length < 6 || buf[0]! > 1) throw _protocol('bad summary answer header');
    const covered = _readBytes(buf, 1, _protocol);
    let at = covered[1];
    if (buf.length < at + 4) throw _protocol('summary count cut off');
    const count = buf.readUInt32BE(at);
    at += 4;
    // Each summary takes at least 14 bytes: refuse a count the body cannot hold before allocating.
    if (count > (buf.length - at) / 14) throw _protocol(`summary count ${count} larger than the answer`);
    const summaries: KeySummary[] = [];
    for (let i = 0; i < count; i++) {
      const key = _readBytes(buf, at, _protocol);
      at = key[1];
      if (buf.length < at + 13) throw _protocol('summary cut off');
      const kind = buf[at + 8]!;
      if (kind !== EntryKind.Value && kind !== EntryKind.Tombstone) throw _protocol(`bad entry kind ${kind}`);
      summaries.push({
        key: key[0],
        version: readU64BE(buf, at),
        kind,
        valueHash: buf.readUInt32BE(at + 9),
      });
      at += 13;
    }
    if (at !== buf.length) throw _protocol('trailing bytes after summaries');
    return { summaries, more: buf[0] === 1, coveredThrough: covered[0] };
  } catch (err) {
    if (err instanceof RingkvError) throw err;
    throw _protocol(String(err));
  }
}

function _readBytes(buf: Buffer, offset: number, fail = _bad): [Buffer, number] {
  const length = readVarint(buf, offset);
  if (length === undefined || length[1] + length[0] > buf.length) throw fail('length runs past the end');
  return [copyBytes(buf.subarray(length[1], length[1] + length[0])), length[1] + length[0]];
}

function _bad(detail: string): RingkvError {
  return new RingkvError('RINGKV_BAD_REQUEST', `Bad anti-entropy request: ${detail}`);
}

function _protocol(detail: string): RingkvError {
  return new RingkvError('RINGKV_PROTOCOL', `Bad anti-entropy answer: ${detail}`);
}
