/**
 * Request parameters: the query string of req.url, decoded and validated by
 * hand on the hot path (no URL or URLSearchParams object per request).
 *
 * Decoding follows application/x-www-form-urlencoded, as URLSearchParams does:
 * '&' separates pairs, the first '=' splits name from value, '+' is a space,
 * %XX is a byte; the first occurrence of a name wins; unknown names are
 * ignored. Stricter than URLSearchParams in two ways, both answered 400: a '%'
 * not followed by two hex digits, and text that does not decode to valid UTF-8
 * (a key is a string, compared as its UTF-8 bytes).
 *
 * Numbers (ack, from, ttl) are positive integers written in canonical decimal:
 * digits only, no sign, no leading zero ('01' is refused). `ack` and `from`
 * have at most 15 digits, so that every accepted value is exact as a double
 * (a longer one is larger than any cluster anyway). A `ttl` may be any
 * positive integer: one over limits.ttlMsMax is kept as that bound.
 *
 * Every failure is a RingkvError: RINGKV_BAD_REQUEST (400) or
 * RINGKV_KEY_TOO_LONG (414), with a short message for the response body.
 */
import { isUtf8 } from 'node:buffer';
import { limits as defaults } from '../config/limits.js';
import { RingkvError } from '../util/errors.js';

export interface ParamLimits {
  /** Longest key, in bytes; longer ones are 414. */
  readonly keyBytesMax: number;
  /** Nodes in the cluster: the default and the largest `from`. */
  readonly clusterSize: number;
}

export interface EntityParams {
  readonly key: Buffer;
  readonly ack: number;
  readonly from: number;
  /** Present only when the request gave one. */
  readonly ttlMs: number | undefined;
  /** `trace=1`: the answer carries the request's receipt (replicas, version, read repair). */
  readonly trace: boolean;
}

export type RangeScope = 'local' | 'cluster';

/** A range answer's body: `key \n value` chunks (the default), or one JSON object per line. */
export type RangeFormat = 'chunks' | 'ndjson';

export interface RangeParams {
  readonly start: Buffer;
  /** Exclusive; undefined: to the last key. */
  readonly end: Buffer | undefined;
  readonly scope: RangeScope;
  /** From `format=`; undefined when the query has none (the Accept header decides). */
  readonly format: RangeFormat | undefined;
}

/** The query's raw (still encoded) values of the names ringkv knows. */
interface RawQuery {
  id: string | undefined;
  ack: string | undefined;
  from: string | undefined;
  ttl: string | undefined;
  start: string | undefined;
  end: string | undefined;
  scope: string | undefined;
  ready: string | undefined;
  trace: string | undefined;
  format: string | undefined;
  dir: string | undefined;
}

/** Largest number of digits in ack and from (a ttl may have more: it is capped): 10^15 - 1 < 2^53. */
const DIGITS_MAX = 15;

/**
 * The path part of a request target: everything before '?'.
 *
 *   pathOf('/v0/entity?id=a') === '/v0/entity'
 */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** Parameters of /v0/entity: id, ack, from, ttl. `url` is the whole request target. */
export function parseEntityParams(url: string, limits: ParamLimits): EntityParams {
  const raw = scanQuery(url);
  if (raw.id === undefined) throw badRequest('Missing id');
  const key = decodeKey(raw.id, 'id', limits);
  const from = raw.from === undefined ? limits.clusterSize : positiveInteger(raw.from, 'from');
  if (from > limits.clusterSize) {
    throw badRequest(`Bad from: larger than the cluster (${limits.clusterSize} nodes)`);
  }
  const ack = raw.ack === undefined ? quorum(from) : positiveInteger(raw.ack, 'ack');
  if (ack > from) throw badRequest('Bad ack: larger than from');
  const ttlMs = raw.ttl === undefined ? undefined : positiveInteger(raw.ttl, 'ttl', defaults.ttlMsMax);
  const trace = raw.trace !== undefined && flagOn(raw.trace, 'trace');
  return { key, ack, from, ttlMs, trace };
}

/** Parameters of /v0/entities: start, end, scope, format. */
export function parseRangeParams(url: string, limits: ParamLimits): RangeParams {
  const raw = scanQuery(url);
  if (raw.start === undefined) throw badRequest('Missing start');
  // A bound may be one byte longer than a key: the smallest key after a key K is K and a 0 byte,
  // where a range cut short after K goes on (the client does so), K of the longest length included.
  const bounds = { ...limits, keyBytesMax: limits.keyBytesMax + 1 };
  const start = decodeKey(raw.start, 'start', bounds);
  // An empty end is a bound like any other: no key is below it, so the range is empty ([start, start)).
  const end = raw.end === undefined ? undefined : raw.end === '' ? start : decodeKey(raw.end, 'end', bounds);
  let scope: RangeScope = 'local';
  if (raw.scope !== undefined) {
    const text = decodeText(raw.scope);
    if (text === 'cluster') scope = 'cluster';
    else if (text !== 'local') throw badRequest('Bad scope: expected cluster');
  }
  let format: RangeFormat | undefined;
  if (raw.format !== undefined) {
    const text = decodeText(raw.format);
    if (text === 'ndjson' || text === 'chunks') format = text;
    else throw badRequest('Bad format: expected ndjson or chunks');
  }
  return { start, end, scope, format };
}

/**
 * Parameters of /v0/health: `ready=1` asks whether the node is ready to
 * serve, not only alive. Any other value of `ready` is refused, so that a
 * probe misspelled as `ready=true` is not silently a liveness check.
 */
export function parseHealthParams(url: string): { readonly ready: boolean } {
  const raw = scanQuery(url);
  if (raw.ready === undefined) return { ready: false };
  return { ready: flagOn(raw.ready, 'ready') };
}

/**
 * The `dir` of POST /v0/admin/snapshot, decoded as every parameter is
 * (a malformed escape or text that is not UTF-8 is 400, so `%ff` is refused
 * rather than turned into U+FFFD); undefined when absent.
 */
export function parseSnapshotDir(url: string): string | undefined {
  const raw = scanQuery(url).dir;
  if (raw === undefined) return undefined;
  try {
    return decodeText(raw);
  } catch (err) {
    throw badRequest(`Bad dir: ${(err as Error).message}`);
  }
}

/** A flag parameter that is either absent or exactly `1`: true, or RINGKV_BAD_REQUEST naming it. */
function flagOn(raw: string, name: string): true {
  if (raw !== '1' && decodeText(raw) !== '1') throw badRequest(`Bad ${name}: expected 1`);
  return true;
}

/** The default `ack` for `from` replicas: a majority. */
export function quorum(from: number): number {
  return Math.floor(from / 2) + 1;
}

/**
 * Decodes one form-urlencoded component to bytes: '+' is a space, %XX a byte.
 * Throws RINGKV_BAD_REQUEST on a malformed escape or invalid UTF-8.
 *
 *   decodeComponent('caf%C3%A9+au+lait').toString() === 'café au lait'
 */
export function decodeComponent(raw: string): Buffer {
  const length = raw.length;
  let plain = true;
  for (let i = 0; i < length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 || c === 0x2b || c > 0x7f) {
      plain = false;
      break;
    }
  }
  // Node's parser only lets ASCII through in a request target, so this is the common case.
  if (plain) return Buffer.from(raw, 'latin1');
  // Escapes only shrink the text, except non-ASCII characters (unit tests, never the socket).
  const out = Buffer.allocUnsafe(Buffer.byteLength(raw, 'utf8'));
  let o = 0;
  for (let i = 0; i < length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x2b) {
      out[o++] = 0x20;
    } else if (c === 0x25) {
      const high = i + 2 < length ? hexValue(raw.charCodeAt(i + 1)) : -1;
      const low = high < 0 ? -1 : hexValue(raw.charCodeAt(i + 2));
      if (low < 0) throw badRequest('Bad percent-encoding: % must be followed by two hex digits');
      out[o++] = high * 16 + low;
      i += 2;
    } else if (c <= 0x7f) {
      out[o++] = c;
    } else {
      // A whole UTF-16 character (a pair for astral ones) written as UTF-8.
      const width = c >= 0xd800 && c <= 0xdbff && i + 1 < length ? 2 : 1;
      o += out.write(raw.slice(i, i + width), o, 'utf8');
      i += width - 1;
    }
  }
  const bytes = out.subarray(0, o);
  if (!isUtf8(bytes)) throw badRequest('Bad percent-encoding: not valid UTF-8');
  return bytes;
}

function decodeText(raw: string): string {
  return decodeComponent(raw).toString('utf8');
}

function decodeKey(raw: string, name: string, limits: ParamLimits): Buffer {
  const key = decodeComponent(raw);
  if (key.length === 0) throw badRequest(`Empty ${name}`);
  if (key.length > limits.keyBytesMax) {
    throw new RingkvError('RINGKV_KEY_TOO_LONG', `Key too long: ${name} is over ${limits.keyBytesMax} bytes`);
  }
  return key;
}

/**
 * A positive integer in canonical decimal, else RINGKV_BAD_REQUEST. With
 * `capAt`, any number of digits is taken and a value over `capAt` (or past
 * what a double holds exactly) is `capAt`; without, at most 15 digits.
 *
 *   positiveInteger('3', 'ack') === 3; positiveInteger('03', 'ack') throws
 *   positiveInteger('9'.repeat(30), 'ttl', limits.ttlMsMax) === limits.ttlMsMax
 */
export function positiveInteger(raw: string, name: string, capAt?: number): number {
  const text = raw.indexOf('%') === -1 && raw.indexOf('+') === -1 ? raw : decodeText(raw);
  const length = text.length;
  if (length === 0 || (capAt === undefined && length > DIGITS_MAX) || text.charCodeAt(0) === 0x30) {
    throw badRequest(`Bad ${name}: not a positive integer`);
  }
  let n = 0;
  for (let i = 0; i < length; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) throw badRequest(`Bad ${name}: not a positive integer`);
    n = n * 10 + digit;
  }
  if (capAt === undefined) return n;
  return length > DIGITS_MAX ? capAt : Math.min(n, capAt);
}

function scanQuery(url: string): RawQuery {
  const raw: RawQuery = {
    id: undefined,
    ack: undefined,
    from: undefined,
    ttl: undefined,
    start: undefined,
    end: undefined,
    scope: undefined,
    ready: undefined,
    trace: undefined,
    format: undefined,
    dir: undefined,
  };
  const q = url.indexOf('?');
  if (q === -1) return raw;
  const length = url.length;
  let i = q + 1;
  while (i < length) {
    let amp = url.indexOf('&', i);
    if (amp === -1) amp = length;
    if (amp > i) {
      let eq = url.indexOf('=', i);
      if (eq === -1 || eq > amp) eq = amp;
      let name = url.slice(i, eq);
      if (name.indexOf('%') !== -1 || name.indexOf('+') !== -1) name = decodeText(name);
      const value = eq < amp ? url.slice(eq + 1, amp) : '';
      assign(raw, name, value);
    }
    i = amp + 1;
  }
  return raw;
}

function assign(raw: RawQuery, name: string, value: string): void {
  switch (name) {
    case 'id':
      raw.id ??= value;
      break;
    case 'ack':
      raw.ack ??= value;
      break;
    case 'from':
      raw.from ??= value;
      break;
    case 'ttl':
      raw.ttl ??= value;
      break;
    case 'start':
      raw.start ??= value;
      break;
    case 'end':
      raw.end ??= value;
      break;
    case 'scope':
      raw.scope ??= value;
      break;
    case 'ready':
      raw.ready ??= value;
      break;
    case 'trace':
      raw.trace ??= value;
      break;
    case 'format':
      raw.format ??= value;
      break;
    case 'dir':
      raw.dir ??= value;
      break;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function badRequest(message: string): RingkvError {
  return new RingkvError('RINGKV_BAD_REQUEST', message);
}
