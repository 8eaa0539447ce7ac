/**
 * An incremental HTTP/1.1 response decoder that keeps the chunk boundaries of
 * a chunked body, which fetch and node:http hide. The range answer
 * (GET /v0/entities) frames each entry as exactly one chunk, `key` '\n'
 * `value`, and a value may hold any byte, newlines included: the chunk is the
 * only frame an entry has, so the scan reads the response off the socket
 * with this decoder.
 *
 * Feed it bytes as they arrive (push), take events until it needs more
 * (next() answers undefined), and call end() when the connection ends:
 *
 *   head   the status and the headers (lower-case names), once
 *   chunk  a chunked body: one whole chunk; any other body: all of it, once
 *   end    the body is complete
 *
 * Bodies come as chunked (Transfer-Encoding), Content-Length, or delimited by
 * the connection's end. A chunk is copied into a buffer of its own, so that
 * an entry kept by the caller never pins a 64 KiB socket read. A response
 * without a body by its status (1xx, 204, 304) ends at its head: the server
 * never sends them to these requests, and the caller takes them as statuses
 * it does not expect. Malformed input throws a RingkvError('RINGKV_PROTOCOL'),
 * which range-stream.ts turns into the client's error for an unreadable
 * answer (a ServerError naming the node); a connection that ends before the
 * body does throws ConnectionLost (a range answer cut short by the node).
 */
import { RingkvError } from '../util/errors.js';
import { ConnectionLost } from './errors.js';

export type DecoderEvent =
  | { readonly kind: 'head'; readonly status: number; readonly headers: ReadonlyMap<string, string> }
  | { readonly kind: 'chunk'; readonly data: Buffer }
  | { readonly kind: 'end' };

/** Status line and headers together; a node's are a few hundred bytes. */
const HEAD_BYTES_MAX = 64 * 1024;
/** A chunk-size line with extensions; the size itself is at most 8 hex digits (CHUNK_BYTES_MAX). */
const CHUNK_LINE_BYTES_MAX = 1024;
/** A body that is not chunked is an error's reason text, read whole. */
const PLAIN_BODY_BYTES_MAX = 1024 * 1024;
/** Sizes past this are not allocated: far above any entry the server can send (keys 1 KiB, values 8 MiB by default). */
const CHUNK_BYTES_MAX = 2 ** 31 - 1;

const CR = 0x0d;
const LF = 0x0a;

type State =
  | 'status'
  | 'headers'
  | 'chunk-size'
  | 'chunk-data'
  | 'chunk-crlf'
  | 'trailers'
  | 'length-body'
  | 'close-body'
  | 'end'
  | 'done';

export class ResponseDecoder {
  #state: State = 'status';
  /** Bytes received and not consumed yet: #input from #offset on. */
  #input: Buffer = Buffer.alloc(0);
  #offset = 0;
  #status = 0;
  #headers = new Map<string, string>();
  /** The chunk or length-delimited body being filled, and how much of it is. */
  #body: Buffer | undefined;
  #filled = 0;
  /** A close-delimited body's pieces. */
  #pieces: Buffer[] = [];
  #piecesBytes = 0;

  push(data: Buffer): void {
    if (this.#offset >= this.#input.length) {
      this.#input = data;
    } else {
      // Only a partial line is left over here: chunk data is copied out as soon as it arrives.
      this.#input = Buffer.concat([this.#input.subarray(this.#offset), data]);
    }
    this.#offset = 0;
  }

  /** The next event, or undefined until more bytes are pushed. */
  next(): DecoderEvent | undefined {
    for (;;) {
      switch (this.#state) {
        case 'status': {
          const line = this.#line(HEAD_BYTES_MAX, 'Status line');
          if (line === undefined) return undefined;
          this.#status = parseStatusLine(line);
          this.#state = 'headers';
          break;
        }
        case 'headers': {
          const line = this.#line(HEAD_BYTES_MAX, 'Header');
          if (line === undefined) return undefined;
          if (line.length > 0) {
            this.#addHeader(line);
            break;
          }
          this.#state = this.#bodyState();
          return { kind: 'head', status: this.#status, headers: this.#headers };
        }
        case 'chunk-size': {
          const line = this.#line(CHUNK_LINE_BYTES_MAX, 'Chunk size line');
          if (line === undefined) return undefined;
          const size = parseChunkSize(line);
          if (size === 0) {
            this.#state = 'trailers';
            break;
          }
          this.#body = Buffer.allocUnsafe(size);
          this.#filled = 0;
          this.#state = 'chunk-data';
          break;
        }
        case 'chunk-data': {
          if (!this.#fill()) return undefined;
          const data = this.#body!;
          this.#body = undefined;
          this.#state = 'chunk-crlf';
          return { kind: 'chunk', data };
        }
        case 'chunk-crlf': {
          const line = this.#line(2, 'Chunk end');
          if (line === undefined) return undefined;
          if (line.length !== 0) throw protocolError('Chunk longer than its size');
          this.#state = 'chunk-size';
          break;
        }
        case 'trailers': {
          const line = this.#line(HEAD_BYTES_MAX, 'Trailer');
          if (line === undefined) return undefined;
          if (line.length > 0) break;
          this.#state = 'done';
          return { kind: 'end' };
        }
        case 'length-body': {
          if (!this.#fill()) return undefined;
          const data = this.#body!;
          this.#body = undefined;
          this.#state = 'end';
          if (data.length > 0) return { kind: 'chunk', data };
          break;
        }
        case 'close-body': {
          if (this.#offset < this.#input.length) {
            const piece = Buffer.from(this.#input.subarray(this.#offset));
            this.#offset = this.#input.length;
            this.#piecesBytes += piece.length;
            if (this.#piecesBytes > PLAIN_BODY_BYTES_MAX) throw protocolError('Body too large');
            this.#pieces.push(piece);
          }
          return undefined;
        }
        case 'end':
          this.#state = 'done';
          return { kind: 'end' };
        case 'done':
          return undefined;
      }
    }
  }

  /**
   * The connection has ended: the rest of a close-delimited body and its end,
   * or nothing if the answer was complete. Throws ConnectionLost if it was not.
   */
  end(): DecoderEvent[] {
    if (this.#state === 'done') return [];
    if (this.#state === 'end') {
      this.#state = 'done';
      return [{ kind: 'end' }];
    }
    if (this.#state !== 'close-body') {
      throw new ConnectionLost(
        this.#state === 'status' || this.#state === 'headers'
          ? 'Connection closed before an answer'
          : 'Connection closed before the end of the answer',
      );
    }
    this.#state = 'done';
    const data = Buffer.concat(this.#pieces);
    return data.length === 0 ? [{ kind: 'end' }] : [{ kind: 'chunk', data }, { kind: 'end' }];
  }

  /** The next CRLF-terminated line without its CRLF (a bare LF is accepted too), or undefined. */
  #line(bytesMax: number, what: string): Buffer | undefined {
    const at = this.#input.indexOf(LF, this.#offset);
    if (at === -1) {
      if (this.#input.length - this.#offset > bytesMax) throw protocolError(`${what} too long`);
      return undefined;
    }
    const endOfLine = at > this.#offset && this.#input[at - 1] === CR ? at - 1 : at;
    if (endOfLine - this.#offset > bytesMax) throw protocolError(`${what} too long`);
    const line = this.#input.subarray(this.#offset, endOfLine);
    this.#offset = at + 1;
    return line;
  }

  /** Copies input into #body; true once it is full. */
  #fill(): boolean {
    const body = this.#body!;
    const take = Math.min(body.length - this.#filled, this.#input.length - this.#offset);
    this.#input.copy(body, this.#filled, this.#offset, this.#offset + take);
    this.#filled += take;
    this.#offset += take;
    return this.#filled === body.length;
  }

  #addHeader(line: Buffer): void {
    const text = line.toString('latin1');
    const colon = text.indexOf(':');
    if (colon <= 0) throw protocolError(`Malformed header: ${JSON.stringify(text.slice(0, 80))}`);
    const name = text.slice(0, colon).trim().toLowerCase();
    const value = text.slice(colon + 1).trim();
    const earlier = this.#headers.get(name);
    this.#headers.set(name, earlier === undefined ? value : `${earlier}, ${value}`);
  }

  #bodyState(): State {
    if (this.#status < 200 || this.#status === 204 || this.#status === 304) return 'end';
    const encoding = this.#headers.get('transfer-encoding');
    if (encoding !== undefined) {
      if (!/(^|,)\s*chunked\s*$/i.test(encoding))
        throw protocolError(`Unsupported transfer encoding: ${encoding}`);
      return 'chunk-size';
    }
    const length = this.#headers.get('content-length');
    if (length === undefined) return 'close-body';
    if (!/^\d{1,9}$/.test(length) || Number(length) > PLAIN_BODY_BYTES_MAX) {
      throw protocolError(`Bad Content-Length: ${length}`);
    }
    this.#body = Buffer.allocUnsafe(Number(length));
    this.#filled = 0;
    return 'length-body';
  }
}

/** "HTTP/1.1 200 OK" -> 200 */
function parseStatusLine(line: Buffer): number {
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(line.toString('latin1'));
  if (match === null)
    throw protocolError(`Malformed status line: ${JSON.stringify(line.toString('latin1'))}`);
  return Number(match[1]);
}

/** "1a2;name=value" -> 0x1a2 */
function parseChunkSize(line: Buffer): number {
  const text = line.toString('latin1');
  const semicolon = text.indexOf(';');
  const digits = (semicolon === -1 ? text : text.slice(0, semicolon)).trim();
  if (!/^[0-9a-fA-F]{1,8}$/.test(digits))
    throw protocolError(`Malformed chunk size: ${JSON.stringify(text)}`);
  const size = Number.parseInt(digits, 16);
  if (size > CHUNK_BYTES_MAX) throw protocolError(`Chunk too large: ${size} bytes`);
  return size;
}

function protocolError(message: string): RingkvError {
  return new RingkvError('RINGKV_PROTOCOL', message);
}
