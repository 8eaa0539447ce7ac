/**
 * A minimal HTTP/1.1 response parser for the load generator: just enough to
 * find where each response ends (Content-Length or chunked framing) and its
 * status, reading bytes in place with no per-response strings. It is not a
 * general client: no 1xx handling beyond skipping, no bodies read to EOF.
 *
 * Contract: feed() takes socket chunks in order (any split, including in the
 * middle of a header or a chunk-size line) and calls onResponse(status,
 * bodyBytes, close) once per complete response. A malformed response throws
 * ParseError; the caller drops the connection.
 */
const CR = 13;
const LF = 10;

const HEAD = 0;
const BODY = 1;
const CHUNK_SIZE = 2;
const CHUNK_EXT = 3;
const CHUNK_DATA = 4;
const CHUNK_DATA_CR = 5;
const CHUNK_DATA_LF = 6;
const TRAILER = 7;

const HEAD_BYTES_MAX = 16 * 1024;

export class ParseError extends Error {}

const NAME_CONTENT_LENGTH = Buffer.from('content-length');
const NAME_TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const NAME_CONNECTION = Buffer.from('connection');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Case-insensitive match of header name `name` (lowercase) at buf[start..]. */
function nameIs(buf, start, end, name) {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if ((buf[start + i] | 0x20) !== name[i]) return false;
  return true;
}

/** Case-insensitive: does buf[start..end) contain `word` (lowercase ASCII)? */
function valueHas(buf, start, end, word) {
  const n = word.length;
  outer: for (let i = start; i + n <= end; i++) {
    for (let j = 0; j < n; j++) if ((buf[i + j] | 0x20) !== word.charCodeAt(j)) continue outer;
    return true;
  }
  return false;
}

export class ResponseParser {
  #onResponse;
  #state = HEAD;
  /** Bytes of a head split across chunks (rare: heads are ~100 bytes). */
  #partial = null;
  #status = 0;
  #close = false;
  #remaining = 0;
  #bodyBytes = 0;
  #chunkSize = 0;
  #chunkDigits = 0;
  #lineBytes = 0;

  constructor(onResponse) {
    this.#onResponse = onResponse;
  }

  /** True between responses: no bytes of an unfinished response are held. */
  get idle() {
    return this.#state === HEAD && this.#partial === null;
  }

  reset() {
    this.#state = HEAD;
    this.#partial = null;
  }

  feed(chunk) {
    let at = 0;
    const end = chunk.length;
    while (at < end) {
      switch (this.#state) {
        case HEAD:
          at = this.#feedHead(chunk, at);
          break;
        case BODY: {
          const take = Math.min(this.#remaining, end - at);
          at += take;
          this.#remaining -= take;
          this.#bodyBytes += take;
          if (this.#remaining === 0) this.#finish();
          break;
        }
        case CHUNK_DATA: {
          const take = Math.min(this.#remaining, end - at);
          at += take;
          this.#remaining -= take;
          this.#bodyBytes += take;
          if (this.#remaining === 0) this.#state = CHUNK_DATA_CR;
          break;
        }
        default:
          at = this.#feedChunkFraming(chunk, at);
      }
    }
  }

  #feedHead(chunk, at) {
    if (this.#partial === null) {
      const headEnd = chunk.indexOf(CRLFCRLF, at);
      if (headEnd >= 0) {
        this.#parseHead(chunk, at, headEnd);
        return headEnd + 4;
      }
      if (chunk.length - at > HEAD_BYTES_MAX) throw new ParseError('response head too large');
      this.#partial = Buffer.from(chunk.subarray(at)); // a copy: the socket may reuse its chunk
      return chunk.length;
    }
    const prev = this.#partial;
    const buf = Buffer.concat([prev, chunk.subarray(at)]);
    const headEnd = buf.indexOf(CRLFCRLF, Math.max(0, prev.length - 3));
    if (headEnd < 0) {
      if (buf.length > HEAD_BYTES_MAX) throw new ParseError('response head too large');
      this.#partial = buf;
      return chunk.length;
    }
    this.#partial = null;
    this.#parseHead(buf, 0, headEnd);
    return at + headEnd + 4 - prev.length;
  }

  #parseHead(buf, start, headEnd) {
    // "HTTP/1.1 200 OK": the status is the three digits after the first space.
    if (headEnd - start < 12 || buf[start] !== 0x48 /* H */) throw new ParseError('bad status line');
    const s = start + 9;
    const d0 = buf[s] - 48;
    const d1 = buf[s + 1] - 48;
    const d2 = buf[s + 2] - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ParseError('bad status code');
    const status = d0 * 100 + d1 * 10 + d2;
    let contentLength = -1;
    let chunked = false;
    let close = false;
    let line = buf.indexOf(LF, start) + 1;
    while (line < headEnd) {
      let lineEnd = buf.indexOf(LF, line);
      if (lineEnd < 0 || lineEnd > headEnd + 2) lineEnd = headEnd + 2;
      const contentEnd = buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
      const colon = buf.indexOf(0x3a, line);
      if (colon > line && colon < contentEnd) {
        let v = colon + 1;
        while (v < contentEnd && (buf[v] === 0x20 || buf[v] === 0x09)) v++;
        if (nameIs(buf, line, colon, NAME_CONTENT_LENGTH)) {
          let n = 0;
          let digits = 0;
          while (v < contentEnd && buf[v] >= 48 && buf[v] <= 57) {
            n = n * 10 + (buf[v] - 48);
            v++;
            digits++;
          }
          if (digits === 0) throw new ParseError('bad content-length');
          contentLength = n;
        } else if (nameIs(buf, line, colon, NAME_TRANSFER_ENCODING)) {
          chunked = valueHas(buf, v, contentEnd, 'chunked');
        } else if (nameIs(buf, line, colon, NAME_CONNECTION)) {
          close = valueHas(buf, v, contentEnd, 'close');
        }
      }
      line = lineEnd + 1;
    }
    this.#status = status;
    this.#close = close;
    this.#bodyBytes = 0;
    if (status < 200) {
      // Informational (100 Continue): another head follows.
      this.#state = HEAD;
      return;
    }
    if (chunked) {
      this.#state = CHUNK_SIZE;
      this.#chunkSize = 0;
      this.#chunkDigits = 0;
    } else if (contentLength > 0) {
      this.#state = BODY;
      this.#remaining = contentLength;
    } else if (contentLength === 0 || status === 204 || status === 304) {
      this.#finish();
    } else {
      throw new ParseError('response without length');
    }
  }

  #feedChunkFraming(chunk, at) {
    const end = chunk.length;
    while (at < end) {
      const b = chunk[at++];
      switch (this.#state) {
        case CHUNK_SIZE: {
          const hex =
            b >= 48 && b <= 57 ? b - 48 : (b | 0x20) >= 97 && (b | 0x20) <= 102 ? (b | 0x20) - 87 : -1;
          if (hex >= 0) {
            if (++this.#chunkDigits > 8) throw new ParseError('chunk size too large');
            this.#chunkSize = this.#chunkSize * 16 + hex;
          } else if (this.#chunkDigits === 0) {
            throw new ParseError('bad chunk size');
          } else if (b === LF) {
            this.#endChunkSize();
            return at;
          } else {
            this.#state = CHUNK_EXT; // ";ext" or the CR before LF
          }
          break;
        }
        case CHUNK_EXT:
          if (b === LF) {
            this.#endChunkSize();
            return at;
          }
          break;
        case CHUNK_DATA_CR:
          if (b !== CR) throw new ParseError('missing CR after chunk');
          this.#state = CHUNK_DATA_LF;
          break;
        case CHUNK_DATA_LF:
          if (b !== LF) throw new ParseError('missing LF after chunk');
          this.#state = CHUNK_SIZE;
          this.#chunkSize = 0;
          this.#chunkDigits = 0;
          break;
        case TRAILER:
          if (b === LF) {
            if (this.#lineBytes === 0) {
              this.#finish();
              return at;
            }
            this.#lineBytes = 0;
          } else if (b !== CR) {
            this.#lineBytes++;
          }
          break;
        default:
          throw new ParseError(`unexpected parser state ${this.#state}`);
      }
    }
    return at;
  }

  #endChunkSize() {
    if (this.#chunkSize === 0) {
      this.#state = TRAILER;
      this.#lineBytes = 0;
    } else {
      this.#state = CHUNK_DATA;
      this.#remaining = this.#chunkSize;
    }
  }

  #finish() {
    this.#state = HEAD;
    this.#onResponse(this.#status, this.#bodyBytes, this.#close);
  }
}
