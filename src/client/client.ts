/**
 * RingkvClient: a typed client of ringkv's HTTP API (docs/api.md) for a list
 * of nodes, any of which can serve any request.
 *
 *   const client = new RingkvClient({ nodes: ['http://127.0.0.1:8080', 'http://127.0.0.1:8081'] });
 *   await client.put('greeting', 'hello', { ttl: 60_000 });
 *   (await client.get('greeting'))?.toString();          // 'hello'
 *   await client.get('greeting', { encoding: 'utf8' });   // 'hello'
 *   for await (const { key, value } of client.scan('a', 'b')) console.log(key.toString(), value.length);
 *   await client.delete('greeting');
 *
 * Transport: get, put, delete and status go through Node's global fetch,
 * whose dispatcher (undici's Agent, built into Node 20) keeps a pool of
 * keep-alive connections per node and reuses them: no pool of its own here,
 * and no dependency (client.test.ts checks that sequential requests share one
 * connection). The node's `Keep-Alive: timeout=5` makes the pool drop an
 * idle connection a second before the node would. A scan reads its answer
 * off a socket of its own (range-stream.ts), since fetch hides the chunk
 * boundaries that frame the entries.
 *
 * Failover: a request goes first to the node that answered last (at first,
 * the first of the list); if that node refuses the connection, resets or
 * closes it before an answer, or answers 503 (a node shutting down answers
 * `503 Node is shutting down` with `Connection: close`), it goes to the next,
 * each node once. Every other answer is final: 504 means too few replicas
 * answered, and another coordinator would ask the same ones. Retrying a put
 * or delete elsewhere is safe: each is idempotent (the newer version wins).
 * Once a node's answer head (other than 503) has come, a put or delete is
 * never sent again, even when the connection breaks before the body: the
 * node has acted on it (a 201 whose body is cut stored the value), and a
 * second write would carry a newer version over writes made since. A
 * refusal's status stands too (a node answers a value over its limit with
 * 413 at once, and may cut the connection while the value is still being
 * sent). A value cut short is read again from the next node. An answer that cannot be read (not HTTP, a broken body) is final
 * too: ServerError RINGKV_PROTOCOL. A redirect is never followed (a node sends
 * none; following one would store a value under another key, or on another
 * server): like any status the client does not expect, it is a ServerError.
 *
 * Deadlines: `timeoutMs` bounds a whole get, put, delete or status call, its
 * failovers included (TimeoutError); for a scan it bounds each wait for the
 * node (the answer's head, then each next piece), since a scan may rightly
 * last long. It is at most 2,147,483,647 ms (about 24.8 days), the longest
 * a Node.js timer holds; a longer one is refused (RINGKV_CONFIG), since the
 * timer would fire at once. An AbortSignal stops any call: it rejects with
 * the signal's reason, as fetch does.
 */
import { RingkvError } from '../util/errors.js';
import {
  answerFailure,
  connectionFailureReason,
  errorForStatus,
  isConnectionFailure,
  type RequestErrorFields,
  TimeoutError,
  UnavailableError,
  unreadableAnswer,
} from './errors.js';
import { isNodeStatus, type NodeStatus } from './node-status.js';
import { type Key, target } from './query.js';
import { type RawEntry, streamRange } from './range-stream.js';

/** A value: bytes, or a string sent as UTF-8. */
export type Value = string | Uint8Array;

export interface ClientOptions {
  /** Node URLs (`http://host:port`), as an array or one comma-separated string. */
  readonly nodes: readonly string[] | string;
  /** Default deadline of a call, in milliseconds (default 10,000; at most 2,147,483,647). */
  readonly timeoutMs?: number;
  /** Default `ack` of every get, put and delete (default: the node's, a quorum of `from`). */
  readonly ack?: number;
  /** Default `from` (default: the node's, the cluster's size). */
  readonly from?: number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
  /** This call's deadline, in milliseconds (default: the client's; at most 2,147,483,647). */
  readonly timeoutMs?: number;
}

export interface ReplicaOptions extends CallOptions {
  /** How many replicas must answer (the client's default if not given). */
  readonly ack?: number;
  /** How many replicas the key has (the client's default if not given). */
  readonly from?: number;
}

export interface GetOptions extends ReplicaOptions {
  /** 'utf8': the value as a string instead of a Buffer. */
  readonly encoding?: 'utf8';
}

export interface PutOptions extends ReplicaOptions {
  /** Time to live in milliseconds: the value reads as absent once it has passed. */
  readonly ttl?: number;
}

export interface ScanOptions extends CallOptions {
  /**
   * 'cluster' (default): every live key of the cluster once, at its newest
   * version. 'local': the entries held by the first node of the list, with
   * no failover (another node holds other entries).
   */
  readonly scope?: 'cluster' | 'local';
  /** 'utf8': keys and values as strings instead of Buffers. */
  readonly encoding?: 'utf8';
}

export interface ScanEntry<T extends Buffer | string = Buffer> {
  readonly key: T;
  readonly value: T;
}

const TIMEOUT_MS_DEFAULT = 10_000;
/** The longest delay setTimeout holds (2^31 - 1 ms, about 24.8 days): a longer one fires at once. */
const TIMEOUT_MS_MAX = 2 ** 31 - 1;

interface Call {
  readonly method: 'GET' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly body?: Value;
  /** Whether a 404 answers the call (a read of a key without a value); otherwise only a 2xx does. */
  readonly absentOk: boolean;
}

interface Answer {
  readonly node: string;
  readonly status: number;
  readonly body: Buffer;
}

export class RingkvClient {
  /** The node URLs, without a trailing slash. */
  readonly nodes: readonly string[];
  readonly #timeoutMs: number;
  readonly #ack: number | undefined;
  readonly #from: number | undefined;
  /** Index of the node that answered last: the first one tried. */
  #preferred = 0;

  constructor(options: ClientOptions) {
    const list = typeof options.nodes === 'string' ? options.nodes.split(',') : options.nodes;
    this.nodes = Object.freeze(
      list
        .map((url) => url.trim())
        .filter((url) => url !== '')
        .map(nodeUrl),
    );
    if (this.nodes.length === 0) throw new RingkvError('RINGKV_CONFIG', 'No node URL given');
    this.#timeoutMs = positive(options.timeoutMs ?? TIMEOUT_MS_DEFAULT, 'timeoutMs');
    this.#ack = options.ack;
    this.#from = options.from;
  }

  /** The key's value, or undefined if it has none (never written, deleted, or expired: 404). */
  get(key: Key, options: GetOptions & { readonly encoding: 'utf8' }): Promise<string | undefined>;
  get(key: Key, options?: GetOptions): Promise<Buffer | undefined>;
  async get(key: Key, options: GetOptions = {}): Promise<Buffer | string | undefined> {
    const answer = await this.#call(
      { method: 'GET', path: this.#entityPath(key, options, undefined), absentOk: true },
      options,
    );
    if (answer.status === 404) return undefined;
    return options.encoding === 'utf8' ? answer.body.toString('utf8') : answer.body;
  }

  /** Stores the value once `ack` replicas have it (201). */
  async put(key: Key, value: Value, options: PutOptions = {}): Promise<void> {
    await this.#call(
      { method: 'PUT', path: this.#entityPath(key, options, options.ttl), body: value, absentOk: false },
      options,
    );
  }

  /** Deletes the key once `ack` replicas stored the delete (202); a key without a value too. */
  async delete(key: Key, options: ReplicaOptions = {}): Promise<void> {
    await this.#call(
      { method: 'DELETE', path: this.#entityPath(key, options, undefined), absentOk: false },
      options,
    );
  }

  /**
   * The live entries with `start <= key < end` (no `end`: to the last key),
   * in key order, streamed: each is read off the connection when the loop
   * asks for it, and breaking out of the loop closes the connection. An
   * empty `start` means the first key.
   *
   *   for await (const { key, value } of client.scan('user:', 'user;', { encoding: 'utf8' })) ...
   */
  scan(
    start: Key,
    end: Key | undefined,
    options: ScanOptions & { readonly encoding: 'utf8' },
  ): AsyncGenerator<ScanEntry<string>, void, undefined>;
  scan(start: Key, end?: Key, options?: ScanOptions): AsyncGenerator<ScanEntry<Buffer>, void, undefined>;
  scan(
    start: Key,
    end?: Key,
    options: ScanOptions = {},
  ): AsyncGenerator<ScanEntry<Buffer | string>, void, undefined> {
    const scope = options.scope ?? 'cluster';
    const entries = streamRange({
      nodes: scope === 'local' ? [this.nodes[0]!] : this.#nodesInOrder(),
      // The server takes no empty start; no key is empty, so the smallest key, "\0", starts at the first.
      start: start.length === 0 ? '\0' : start,
      end,
      scope,
      timeoutMs: positive(options.timeoutMs ?? this.#timeoutMs, 'timeoutMs'),
      signal: options.signal,
      onAnswer: (node) => this.#answered(node),
    });
    return options.encoding === 'utf8' ? asStrings(entries) : entries;
  }

  /** The /v0/status of the first node that answers 200 (a node starting or leaving answers 503). */
  async status(options: CallOptions = {}): Promise<NodeStatus> {
    const answer = await this.#call({ method: 'GET', path: '/v0/status', absentOk: false }, options);
    let document: unknown;
    try {
      document = JSON.parse(answer.body.toString('utf8'));
    } catch (err) {
      throw unreadableAnswer({
        status: answer.status,
        reason: 'Status answer is not JSON',
        node: answer.node,
        cause: err,
      });
    }
    // Another server's JSON on the port (`{}`, `{"status":"ok"}`) is not taken for a node's status.
    if (!isNodeStatus(document)) {
      throw unreadableAnswer({
        status: answer.status,
        reason: 'Status answer is not a ringkv status',
        node: answer.node,
      });
    }
    return document;
  }

  #entityPath(key: Key, options: ReplicaOptions, ttl: number | undefined): string {
    const ack = options.ack ?? this.#ack;
    const from = options.from ?? this.#from;
    return target('/v0/entity', { id: key, ack, from, ttl });
  }

  /** Sends the call to one node after another (see the module comment) until one answers. */
  async #call(call: Call, options: CallOptions): Promise<Answer> {
    const deadline = new Deadline(
      positive(options.timeoutMs ?? this.#timeoutMs, 'timeoutMs'),
      options.signal,
    );
    try {
      let last: RequestErrorFields = { reason: 'No node to ask' };
      for (const node of this.#nodesInOrder()) {
        let answer: Answer;
        let status: number | undefined;
        try {
          const response = await fetch(`${node}${call.path}`, {
            method: call.method,
            signal: deadline.signal,
            // A 3xx is an answer like any other: one the client does not expect.
            redirect: 'manual',
            ...(call.body === undefined
              ? {}
              : { body: call.body, headers: { 'content-type': 'application/octet-stream' } }),
          });
          status = response.status;
          answer = { node, status, body: Buffer.from(await response.arrayBuffer()) };
        } catch (err) {
          if (deadline.signal.aborted) throw deadline.signal.reason;
          if (status !== undefined && status !== 503 && isConnectionFailure(err)) {
            // The node answered, then the connection broke before the answer's body was read.
            const settled = cutShort(call, { node, status, body: Buffer.alloc(0) }, err);
            if (settled !== undefined) {
              this.#answered(node);
              return settled;
            }
          }
          if (!isConnectionFailure(err)) throw answerFailure(err, node, status);
          last = { reason: connectionFailureReason(err), node, cause: err };
          continue;
        }
        const reason = (): string => answer.body.toString('utf8').trim();
        if (answer.status === 503) {
          last = { status: 503, reason: reason(), node };
          continue;
        }
        this.#answered(node);
        if (isRefusal(answer.status, call)) throw errorForStatus(answer.status, reason(), node);
        return answer;
      }
      throw new UnavailableError('RINGKV_UNAVAILABLE', last);
    } finally {
      deadline.clear();
    }
  }

  /** Every node once, the one that answered last first. */
  #nodesInOrder(): string[] {
    const first = this.#preferred;
    return this.nodes.map((_, i) => this.nodes[(first + i) % this.nodes.length]!);
  }

  #answered(node: string): void {
    this.#preferred = this.nodes.indexOf(node);
  }
}

/**
 * Whether `status` ends `call` with an error: anything but a 2xx, a 404 that
 * answers a read, and a 503 (on which the client fails over).
 */
function isRefusal(status: number, call: Call): boolean {
  const answered = (status >= 200 && status < 300) || (status === 404 && call.absentOk);
  return !answered && status !== 503;
}

/**
 * A call whose answer's body was cut after its head. A write is never sent
 * again, since the node has acted on it: its 2xx stands (a 201 stored the
 * value). A refusal ends the call with its error (a node may cut a
 * connection on which an oversized value is still arriving, after its 413),
 * and a read's 404 answers it. A value or document cut short is undefined:
 * reading it again from the next node is safe.
 */
function cutShort(call: Call, answer: Answer, err: unknown): Answer | undefined {
  if (isRefusal(answer.status, call)) {
    throw errorForStatus(answer.status, `Answer cut short: ${connectionFailureReason(err)}`, answer.node);
  }
  if (call.method === 'GET' && answer.status !== 404) return undefined;
  return answer;
}

/** A call's signal: the caller's, and a timer that aborts it with a TimeoutError. */
class Deadline {
  readonly signal: AbortSignal;
  readonly #timer: NodeJS.Timeout;

  constructor(timeoutMs: number, callerSignal: AbortSignal | undefined) {
    const timer = new AbortController();
    this.#timer = setTimeout(() => {
      timer.abort(new TimeoutError('RINGKV_TIMEOUT', { reason: `No answer within ${timeoutMs} ms` }));
    }, timeoutMs);
    this.signal = callerSignal === undefined ? timer.signal : AbortSignal.any([callerSignal, timer.signal]);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

async function* asStrings(
  entries: AsyncGenerator<RawEntry, void, undefined>,
): AsyncGenerator<ScanEntry<string>, void, undefined> {
  for await (const { key, value } of entries)
    yield { key: key.toString('utf8'), value: value.toString('utf8') };
}

/** 'http://127.0.0.1:8080/' -> 'http://127.0.0.1:8080'; anything but an http URL of a host is refused. */
function nodeUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RingkvError('RINGKV_CONFIG', `Bad node URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:' || url.pathname !== '/' || url.search !== '' || url.username !== '') {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `Bad node URL: ${JSON.stringify(text)}: expected http://host:port`,
    );
  }
  return url.origin;
}

/** A deadline in milliseconds: positive, and no longer than a timer holds (TIMEOUT_MS_MAX). */
function positive(value: number, name: string): number {
  if (!(typeof value === 'number' && value > 0 && value <= TIMEOUT_MS_MAX)) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `Bad ${name}: ${value}: expected a positive number of milliseconds, at most ${TIMEOUT_MS_MAX} (about 24.8 days)`,
    );
  }
  return value;
}
