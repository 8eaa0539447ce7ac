/**
 * A strict reader of HTTP/1.1 request heads, for the fast path: it accepts
 * only the plain requests the entity routes get under load, and says
 * HAND_OVER for anything else, which node:http then reads and answers (or
 * refuses) as it always does. It never answers anything itself, so it cannot
 * differ from node:http on a request it is unsure of.
 *
 * Taken: `GET|PUT|DELETE /v0/entity[?...] HTTP/1.1`, a target of visible
 * ASCII, CRLF line ends, header names that are tokens, values of visible
 * bytes, spaces and tabs, exactly one Host, at most one Content-Length of
 * digits with no tab around them (and none but 0 on GET and DELETE),
 * `Connection: keep-alive` if any. Handed over: any other method, path or
 * version, Transfer-Encoding, Expect, Upgrade, Proxy-Connection, any other
 * Connection, a bare CR or LF, folded lines, no Host or two (server.ts
 * answers two with 400), or a head longer than the server's header limit;
 * an unfinished head as soon as its first bytes show it is none of these.
 * Whatever it takes, node:http takes too (a property test sends the heads
 * it takes to node:http).
 */

/** The head is not complete yet: read more. */
export const NEED_MORE = 0;
/** Not a request the fast path takes: give the connection to node:http. */
export const HAND_OVER = 1;

export enum Method {
  Get = 1,
  Put = 2,
  Delete = 3,
}

export interface RequestHead {
  readonly method: Method;
  /** The request target, e.g. "/v0/entity?id=a". */
  readonly target: string;
  /** The body's length; 0 without Content-Length. */
  readonly contentLength: number;
  /** Offset just past the blank line that ends the head. */
  readonly headEnd: number;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const QUESTION = 0x3f;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const GET = Buffer.from('GET ', 'latin1');
const PUT = Buffer.from('PUT ', 'latin1');
const DELETE = Buffer.from('DELETE ', 'latin1');
const PATH = Buffer.from('/v0/entity', 'latin1');
const VERSION = Buffer.from(' HTTP/1.1\r\n', 'latin1');
/** Longest Content-Length taken: 15 digits stay exact as a double. */
const LENGTH_DIGITS_MAX = 15;

/** RFC 9110 tchar. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

/** Bytes allowed in a header value: HTAB, SP, visible ASCII, obs-text. */
const VALUE = new Uint8Array(256);
VALUE[HTAB] = 1;
for (let c = 0x20; c <= 0x7e; c++) VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VALUE[c] = 1;

/**
 * Reads the head of the request starting at `start` in `buf` (which ends at
 * buf.length).
 *
 *   parseRequestHead(Buffer.from('GET /v0/entity?id=a HTTP/1.1\r\nHost: x\r\n\r\n'), 0, 16384)
 *   // -> { method: Method.Get, target: '/v0/entity?id=a', contentLength: 0, headEnd: 41 }
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  headBytesMax: number,
): RequestHead | typeof NEED_MORE | typeof HAND_OVER {
  const blank = buf.indexOf(HEAD_END, start);
  if (blank < 0) {
    // Bytes that cannot start a request taken here (another method or path, or not HTTP at all: a
    // TLS handshake), and a head ending its lines in bare LF (or CR), which never shows CRLFCRLF,
    // go to node:http at once: it refuses a malformed one there and then, rather than at the
    // head's deadline.
    return !mayStartTaken(buf, start) || buf.length - start > headBytesMax || hasBareLineEnd(buf, start)
      ? HAND_OVER
      : NEED_MORE;
  }
  const headEnd = blank + HEAD_END.length;
  if (headEnd - start > headBytesMax) return HAND_OVER;

  let at = start;
  let method: Method;
  if (matches(buf, at, GET)) {
    method = Method.Get;
    at += GET.length;
  } else if (matches(buf, at, PUT)) {
    method = Method.Put;
    at += PUT.length;
  } else if (matches(buf, at, DELETE)) {
    method = Method.Delete;
    at += DELETE.length;
  } else {
    return HAND_OVER;
  }

  const targetStart = at;
  if (!matches(buf, at, PATH)) return HAND_OVER;
  at += PATH.length;
  if (buf[at] !== QUESTION && buf[at] !== SP) return HAND_OVER;
  while (at < blank && buf[at]! > SP && buf[at]! < 0x7f) at++;
  const targetEnd = at;
  if (!matches(buf, at, VERSION)) return HAND_OVER;
  at += VERSION.length;

  let contentLength = -1;
  let hosts = 0;
  // Header lines, each ending in CRLF; the last one's CRLF is the blank line's first half.
  while (at < blank + 2) {
    const nameStart = at;
    while (TOKEN[buf[at]!] === 1) at++;
    const nameEnd = at;
    if (nameEnd === nameStart || buf[at] !== COLON) return HAND_OVER;
    at++;
    while (buf[at] === SP || buf[at] === HTAB) at++;
    const valueStart = at;
    while (VALUE[buf[at]!] === 1) at++;
    let valueEnd = at;
    if (buf[at] !== CR || buf[at + 1] !== LF) return HAND_OVER;
    at += 2;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) valueEnd--;

    switch (nameEnd - nameStart) {
      case 4:
        if (nameIs(buf, nameStart, 'host')) hosts++;
        break;
      case 6:
        if (nameIs(buf, nameStart, 'expect')) return HAND_OVER;
        break;
      case 7:
        if (nameIs(buf, nameStart, 'upgrade')) return HAND_OVER;
        break;
      case 10:
        if (nameIs(buf, nameStart, 'connection') && !valueIs(buf, valueStart, valueEnd, 'keep-alive'))
          return HAND_OVER;
        break;
      case 14:
        if (nameIs(buf, nameStart, 'content-length')) {
          // llhttp allows only spaces around the digits; a tab there is its 400.
          if (contentLength >= 0 || hasByte(buf, HTAB, nameEnd, at - 2)) return HAND_OVER;
          contentLength = digits(buf, valueStart, valueEnd);
          if (contentLength < 0) return HAND_OVER;
        }
        break;
      case 16:
        // llhttp reads Proxy-Connection as Connection.
        if (nameIs(buf, nameStart, 'proxy-connection')) return HAND_OVER;
        break;
      case 17:
        if (nameIs(buf, nameStart, 'transfer-encoding')) return HAND_OVER;
        break;
    }
  }
  if (hosts !== 1) return HAND_OVER;
  if (contentLength < 0) contentLength = 0;
  else if (contentLength > 0 && method !== Method.Put) return HAND_OVER;
  return { method, target: buf.toString('latin1', targetStart, targetEnd), contentLength, headEnd };
}

/** How every request line taken starts. */
const TAKEN_STARTS = [GET, PUT, DELETE].map((method) => Buffer.concat([method, PATH]));

/** Whether buf[start..] (all of it, or as much as there is) is how a taken request line starts. */
function mayStartTaken(buf: Buffer, start: number): boolean {
  const length = buf.length - start;
  for (const prefix of TAKEN_STARTS) {
    const end = Math.min(length, prefix.length);
    let i = 0;
    while (i < end && buf[start + i] === prefix[i]) i++;
    if (i === end) return true;
  }
  return false;
}

/** Whether an LF without a CR before it, or a CR with something other than LF after it, is in buf[start..]. */
function hasBareLineEnd(buf: Buffer, start: number): boolean {
  for (let i = buf.indexOf(LF, start); i >= 0; i = buf.indexOf(LF, i + 1)) {
    if (i === start || buf[i - 1] !== CR) return true;
  }
  for (let i = buf.indexOf(CR, start); i >= 0 && i + 1 < buf.length; i = buf.indexOf(CR, i + 1)) {
    if (buf[i + 1] !== LF) return true;
  }
  return false;
}

function hasByte(buf: Buffer, byte: number, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] === byte) return true;
  return false;
}

/** Whether `pattern` is at `at` in `buf` (false where `buf` ends first). */
function matches(buf: Buffer, at: number, pattern: Buffer): boolean {
  for (let i = 0; i < pattern.length; i++) if (buf[at + i] !== pattern[i]) return false;
  return true;
}

/** Whether the header name at `at` is `lower` (lower-case ASCII letters and '-'), in any case. */
function nameIs(buf: Buffer, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) if ((buf[at + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

function valueIs(buf: Buffer, start: number, end: number, lower: string): boolean {
  return end - start === lower.length && nameIs(buf, start, lower);
}

/** The decimal number in [start, end), or -1 unless it is 1 to 15 digits. */
function digits(buf: Buffer, start: number, end: number): number {
  if (end === start || end - start > LENGTH_DIGITS_MAX) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
