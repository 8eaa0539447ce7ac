/**
 * A range (GET /v0/entities) read as a stream of entries, straight off a TCP
 * socket with ResponseDecoder (response-decoder.ts says why fetch cannot be
 * used). It asks for ndjson, one entry per line: in the chunk form (an
 * entry per chunk, `key` '\n' `value`) a key that holds a newline cannot be
 * told from its value. An answer in chunks (a node that ignores Accept) is
 * read as chunks. One connection
 * per range, `Connection: close`: a range is long, and one abandoned midway
 * cannot go back to a pool.
 *
 * Flow: the socket is read only when the caller asks for the next entry, so
 * a caller that stops reading stops the socket (TCP back-pressure reaches the
 * node, which stalls only this answer), and at most one socket read and one
 * entry are held at a time.
 *
 * Failover: a node that refuses, resets or closes the connection before an
 * answer, or answers 503, is replaced by the next one. Any other status is
 * final (errorForStatus: a redirect is never followed, as in client.ts), and
 * so is an answer that cannot be read: the decoder's protocol errors become
 * a ServerError RINGKV_PROTOCOL naming the node. A cluster range cut short
 * after some entries goes on at another node from the key after the last
 * one delivered (key + 0x00, the smallest key above it), so the caller sees
 * each key once, in order. A range gives up once every node has failed in a
 * row without an entry in between.
 */
import { connect, type Socket } from 'node:net';
import { isRingkvError } from '../util/errors.js';
import {
  ConnectionLost,
  connectionFailureReason,
  errorForStatus,
  isConnectionFailure,
  RequestError,
  type RequestErrorFields,
  type ServerError,
  TimeoutError,
  UnavailableError,
  unreadableAnswer,
} from './errors.js';
import { type Key, target } from './query.js';
import { type DecoderEvent, ResponseDecoder } from './response-decoder.js';

const NDJSON_TYPE = 'application/x-ndjson';

export interface RawEntry {
  readonly key: Buffer;
  readonly value: Buffer;
}

export interface RangePlan {
  /** The nodes in the order to try them. */
  readonly nodes: readonly string[];
  readonly start: Key;
  readonly end: Key | undefined;
  readonly scope: 'cluster' | 'local';
  /**
   * The longest wait for the node: for the answer's head, then for each next
   * piece of the body. At most 2^31 - 1 ms (a timer's longest; the client checks it).
   */
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** Told which node answered with 200, so that the client tries it first next time. */
  readonly onAnswer: (node: string) => void;
}

/** Resolves each entry of the range in key order; see the module comment for failover. */
export async function* streamRange(plan: RangePlan): AsyncGenerator<RawEntry, void, undefined> {
  let start: Key = plan.start;
  let failuresInARow = 0;
  let last: RequestErrorFields = { reason: 'No node to ask' };
  for (let attempt = 0; failuresInARow < plan.nodes.length; attempt++) {
    // Before each attempt, not only the first: an abort that came while the
    // last connection was already closed destroyed nothing, and a signal
    // already aborted never fires its 'abort' event for the next one.
    plan.signal?.throwIfAborted();
    const node = plan.nodes[attempt % plan.nodes.length]!;
    const path = target('/v0/entities', { start, end: plan.end, scope: plan.scope });
    const answer = new RangeAnswer(node, path, plan);
    try {
      const status = await answer.status();
      if (status === 503) {
        last = { status, reason: await answer.text(), node };
        failuresInARow++;
        continue;
      }
      if (status !== 200) throw errorForStatus(status, await answer.text(), node);
      plan.onAnswer(node);
      for (;;) {
        // Entries already read off the connection are held in memory, and an abort stops those too.
        plan.signal?.throwIfAborted();
        const entry = await answer.entry();
        if (entry === undefined) return;
        failuresInARow = 0;
        start = keyAfter(entry.key);
        yield entry;
      }
    } catch (err) {
      if (!isConnectionFailure(err)) throw err;
      last = { reason: connectionFailureReason(err), node, cause: err };
      failuresInARow++;
    } finally {
      answer.close();
    }
  }
  throw new UnavailableError('RINGKV_UNAVAILABLE', last);
}

/** The smallest key above `key`. */
function keyAfter(key: Buffer): Buffer {
  const next = Buffer.allocUnsafe(key.length + 1);
  key.copy(next, 0);
  next[key.length] = 0;
  return next;
}

/** One range request on its own connection, read event by event. */
class RangeAnswer {
  readonly #socket: Socket;
  readonly #reads: AsyncIterator<Buffer>;
  readonly #decoder = new ResponseDecoder();
  readonly #node: string;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort: () => void;
  /** Events the decoder gave at the connection's end. */
  #atEnd: DecoderEvent[] | undefined;
  /** The answer's status, once its head was read. */
  #status: number | undefined;
  /** The answer is ndjson (what is asked for); otherwise chunks, as from a node that ignores Accept. */
  #ndjson = false;
  /** Bytes of an ndjson answer past the last whole line. */
  #pending: Buffer = Buffer.alloc(0);

  constructor(node: string, path: string, plan: RangePlan) {
    const url = new URL(node);
    this.#node = node;
    this.#timeoutMs = plan.timeoutMs;
    this.#signal = plan.signal;
    this.#socket = connect({ host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80) });
    this.#socket.setNoDelay(true);
    // Errors reach the reader through #reads; this listener only keeps one that comes before a read from being unhandled.
    this.#socket.on('error', () => {});
    this.#socket.write(
      `GET ${path} HTTP/1.1\r\nhost: ${url.host}\r\naccept: ${NDJSON_TYPE}, application/octet-stream;q=0.5\r\nconnection: close\r\n\r\n`,
    );
    this.#reads = this.#socket[Symbol.asyncIterator]();
    this.#onAbort = () => this.#socket.destroy(plan.signal?.reason as Error);
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  async status(): Promise<number> {
    const event = await this.#next();
    if (event.kind !== 'head') throw this.#unreadable('Answer without a head');
    this.#status = event.status;
    this.#ndjson = event.headers.get('content-type')?.split(';')[0]?.trim() === NDJSON_TYPE;
    return event.status;
  }

  /** The next entry of a 200 answer, or undefined at its end. */
  async entry(): Promise<RawEntry | undefined> {
    if (this.#ndjson) return this.#line();
    const event = await this.#next();
    if (event.kind === 'end') return undefined;
    if (event.kind !== 'chunk') throw this.#unreadable('Unexpected second head');
    const data = event.data;
    const newline = data.indexOf(0x0a);
    if (newline <= 0) throw this.#unreadable('Range entry without a key');
    return { key: data.subarray(0, newline), value: data.subarray(newline + 1) };
  }

  /**
   * The next entry of an ndjson answer. Asked for first: in the chunk form
   * (key, newline, value) a key that holds a newline cannot be told apart
   * from its value, while JSON escapes it. Lines may span chunks.
   */
  async #line(): Promise<RawEntry | undefined> {
    for (;;) {
      const newline = this.#pending.indexOf(0x0a);
      if (newline >= 0) {
        const line = this.#pending.subarray(0, newline);
        this.#pending = this.#pending.subarray(newline + 1);
        return this.#parseLine(line);
      }
      const event = await this.#next();
      if (event.kind === 'end') {
        if (this.#pending.length > 0) throw this.#unreadable('Range line without its newline');
        return undefined;
      }
      if (event.kind !== 'chunk') throw this.#unreadable('Unexpected second head');
      this.#pending = this.#pending.length === 0 ? event.data : Buffer.concat([this.#pending, event.data]);
    }
  }

  #parseLine(line: Buffer): RawEntry {
    let record: unknown;
    try {
      record = JSON.parse(line.toString('utf8'));
    } catch {
      throw this.#unreadable('Range line that is not JSON');
    }
    const fields = (typeof record === 'object' && record !== null ? record : {}) as Record<string, unknown>;
    const bytes = (name: 'key' | 'value'): Buffer => {
      const text = fields[name];
      if (typeof text !== 'string') throw this.#unreadable(`Range line without a "${name}" string`);
      return Buffer.from(text, fields[`${name}Base64`] === true ? 'base64' : 'utf8');
    };
    const key = bytes('key');
    if (key.length === 0) throw this.#unreadable('Range entry without a key');
    return { key, value: bytes('value') };
  }

  /** The whole body as text: the reason of an answer that is not 200. */
  async text(): Promise<string> {
    const parts: Buffer[] = [];
    for (let event = await this.#next(); event.kind !== 'end'; event = await this.#next()) {
      if (event.kind === 'chunk') parts.push(event.data);
    }
    return Buffer.concat(parts).toString('utf8').trim();
  }

  close(): void {
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#socket.destroy();
  }

  async #next(): Promise<DecoderEvent> {
    for (;;) {
      const event =
        this.#atEnd === undefined ? this.#decode(() => this.#decoder.next()) : this.#atEnd.shift();
      if (event !== undefined) return event;
      if (this.#atEnd !== undefined) throw new ConnectionLost('Connection closed after the answer');
      const data = await this.#read();
      if (data === undefined) this.#atEnd = this.#decode(() => this.#decoder.end());
      else this.#decoder.push(data);
    }
  }

  /** A decoder step, whose protocol error (bytes that are not the answer HTTP allows) becomes the library's. */
  #decode<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      if (isRingkvError(err, 'RINGKV_PROTOCOL') && !(err instanceof RequestError)) {
        throw this.#unreadable(err.message, err);
      }
      throw err;
    }
  }

  /** The error for an answer that cannot be read, naming the node and the status if the head came. */
  #unreadable(reason: string, cause?: unknown): ServerError {
    return unreadableAnswer({
      status: this.#status,
      reason: `Unreadable answer: ${reason}`,
      node: this.#node,
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** The next socket read, or undefined at the connection's end; at most #timeoutMs of waiting. */
  async #read(): Promise<Buffer | undefined> {
    const timer = setTimeout(() => {
      const reason = `No answer within ${this.#timeoutMs} ms`;
      this.#socket.destroy(new TimeoutError('RINGKV_TIMEOUT', { reason, node: this.#node }));
    }, this.#timeoutMs);
    try {
      const read = await this.#reads.next();
      return read.done === true ? undefined : read.value;
    } finally {
      clearTimeout(timer);
    }
  }
}
