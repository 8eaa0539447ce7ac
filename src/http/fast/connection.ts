/**
 * One client connection on the fast path: reads requests off the socket,
 * answers the plain entity requests itself (through the same routes as
 * node:http), and hands the connection to node:http at the first request it
 * does not take (request-head.ts decides), for good.
 *
 * One request at a time, in order: while a request is being answered, or
 * while the socket will not take more (write() returned false, until
 * 'drain'), bytes that arrive are kept unread, and past a bound the socket is
 * paused, so a client that pipelines without reading its answers is held
 * back by TCP rather than by the node's memory.
 *
 * A connection hands over only between requests, with nothing being
 * answered, so node:http's answers never overtake the fast path's.
 *
 * A request whose head arrives once the node is leaving is answered 503 and
 * the connection closed, like node:http's; a PUT's body is read first, so
 * that no unread bytes turn the close into a reset.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { limits } from '../../config/limits.js';
import { SizedBody } from '../../util/sized-body.js';
import { RequestOp } from '../request-metrics.js';
import {
  type ExtraHeaders,
  type Reply,
  type RouteContext,
  sendError,
  sendLeaving,
} from '../routes/context.js';
import { deleteEntity, getEntity, putValue } from '../routes/entity.js';
import { HAND_OVER, Method, NEED_MORE, parseRequestHead } from './request-head.js';
import { CLOSE_LINES, encodeResponse, headerLines } from './response.js';

/** What a connection needs from the fast path that owns it (fast-path.ts). */
export interface ConnectionHost {
  readonly ctx: RouteContext;
  readonly headBytesMax: number;
  /** Connection header lines of an answer that keeps the connection. */
  readonly keepAliveLines: string;
  /** Gives the socket to node:http, with the bytes already read and not yet used. */
  handOver(socket: Socket, unread: Buffer | undefined): void;
  /** The connection is closed or handed over. */
  forget(connection: FastConnection): void;
}

enum Phase {
  /** Waiting for (the rest of) a request head; idle when nothing is unread. */
  Head,
  /** Reading a PUT body. */
  Body,
  /** A route is answering. */
  Answering,
  /** Closed, closing, or handed over: nothing more to do. */
  Done,
}

/** The /metrics operation of each Method (request-head.ts), indexed by its value. */
const METHOD_OPS: readonly RequestOp[] = [RequestOp.Other, RequestOp.Get, RequestOp.Put, RequestOp.Delete];

/** Unread bytes past which the socket is paused while the connection cannot read them. */
const UNREAD_PAUSE_BYTES = 64 * 1024;

export class FastConnection {
  readonly #socket: Socket;
  readonly #host: ConnectionHost;
  #phase = Phase.Head;
  /** Bytes received and not yet used, from #at on. */
  #unread: Buffer | undefined;
  #at = 0;
  /** The PUT whose body is being read. */
  #bodyTarget = '';
  /** ...and whether it is to be refused: its head arrived while the node was leaving. */
  #bodyRefused = false;
  #body: SizedBody | undefined;
  /** write() returned false: read no further request until 'drain'. */
  #writeBlocked = false;
  #paused = false;
  /** The client has ended its side. */
  #ended = false;
  /** Inside #drive(): an answer given synchronously lets the loop go on instead of recursing. */
  #driving = false;
  /** Requests answered or being answered on this connection. */
  #requests = 0;
  /** When the current wait began: for the idle, head, body and write timeouts. */
  #sinceMs = performance.now();
  /** The request being answered: its operation and when its head was read (for /metrics). */
  #op: RequestOp = RequestOp.Get;
  #answerStartMs = 0;

  readonly #onData = (chunk: Buffer) => this.#receive(chunk);
  readonly #onEnd = () => this.#clientEnded();
  readonly #onDrain = () => {
    this.#writeBlocked = false;
    this.#sinceMs = performance.now();
    this.#drive();
  };
  readonly #onError = () => this.#socket.destroy();
  readonly #onClose = () => this.#finish();

  constructor(socket: Socket, host: ConnectionHost) {
    this.#socket = socket;
    this.#host = host;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /**
   * For a server shutting down: closes the connection now unless a request is
   * being read (a partial head included) or answered, or an answer is being
   * written; those close after their answer (which says `connection: close`).
   */
  closeIfIdle(): void {
    if (
      this.#phase === Phase.Head &&
      this.#unread === undefined &&
      !this.#writeBlocked &&
      this.#socket.writableLength === 0
    ) {
      this.#socket.destroy();
    }
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * Closes a connection that has waited too long: idle past the keep-alive
   * timeout, a head or a body that is not finished in time (408), or an
   * answer the client does not read.
   */
  checkTimeouts(nowMs: number, timeouts: ConnectionTimeouts): void {
    const waitedMs = nowMs - this.#sinceMs;
    if (this.#phase === Phase.Answering) return;
    if (this.#phase === Phase.Done || this.#writeBlocked) {
      // Closing (its last answer not yet read by the client), or an answer left unread.
      if (waitedMs > timeouts.socketIdleMs) this.#socket.destroy();
    } else if (this.#phase === Phase.Body) {
      if (waitedMs > timeouts.requestMs) this.#timedOut();
    } else if (this.#unread !== undefined) {
      if (waitedMs > timeouts.headersMs) this.#timedOut();
    } else if (waitedMs > timeouts.keepAliveMs) {
      this.#socket.destroy();
    }
  }

  /** The answer to request number `request`; ignored unless that request is the one being answered. */
  #send(
    request: number,
    status: number,
    contentType: string | undefined,
    body: Buffer | string,
    close: boolean,
    headers: ExtraHeaders | undefined,
  ): void {
    if (this.#phase !== Phase.Answering || request !== this.#requests) return;
    const socket = this.#socket;
    if (socket.destroyed) {
      this.#phase = Phase.Done;
      return;
    }
    // A client that has ended its side gets `close` with the answer to its last request.
    const closeAfter = close || (this.#ended && this.#unread === undefined);
    const connectionLines = closeAfter ? CLOSE_LINES : this.#host.keepAliveLines;
    const bytes = encodeResponse(
      status,
      contentType,
      body,
      headers === undefined ? connectionLines : headerLines(headers) + connectionLines,
    );
    const nowMs = performance.now();
    this.#host.ctx.requestMetrics.observe(this.#op, status, (nowMs - this.#answerStartMs) / 1000);
    this.#sinceMs = nowMs;
    if (closeAfter) {
      this.#close(bytes);
      return;
    }
    this.#phase = Phase.Head;
    if (!socket.write(bytes)) this.#writeBlocked = true;
    if (!this.#driving) this.#drive();
  }

  #receive(chunk: Buffer): void {
    if (this.#phase === Phase.Body) {
      const body = this.#body!;
      const used = body.fill(chunk);
      if (!body.complete) return;
      this.#body = undefined;
      if (used < chunk.length) {
        this.#unread = chunk.subarray(used);
        this.#at = 0;
      }
      this.#answer(Method.Put, this.#bodyTarget, body.value(), this.#bodyRefused);
      return;
    }
    if (this.#unread === undefined) {
      this.#unread = chunk;
      this.#at = 0;
      if (this.#phase === Phase.Head) this.#sinceMs = performance.now();
    } else {
      this.#unread = Buffer.concat([this.#unread.subarray(this.#at), chunk]);
      this.#at = 0;
    }
    if (this.#phase === Phase.Head && !this.#writeBlocked) this.#drive();
    else if (this.#unread.length > UNREAD_PAUSE_BYTES && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  /** Reads and answers the requests that are complete, in order, while it can. */
  #drive(): void {
    if (this.#driving) return;
    this.#driving = true;
    let answered = false;
    try {
      while (this.#phase === Phase.Head && !this.#writeBlocked && this.#unread !== undefined) {
        const unread = this.#unread;
        const requestStart = this.#at;
        const head = parseRequestHead(unread, requestStart, this.#host.headBytesMax);
        if (head === NEED_MORE) break;
        if (head === HAND_OVER) {
          this.#handOver(unread.subarray(requestStart));
          return;
        }
        // Decided at the head, as node:http does: a request under way when leaving begins finishes.
        const refused = this.#host.ctx.leaving;
        let at = head.headEnd;
        let value: Buffer | undefined;
        if (head.method === Method.Put) {
          const length = head.contentLength;
          // A value over the limit goes to node:http, which answers 413 and drains the body.
          if (length > this.#host.ctx.valueBytesMax) {
            this.#handOver(unread.subarray(requestStart));
            return;
          }
          // A buffer of the value's own, so the store keeps no view into a socket read.
          const body = new SizedBody(length, limits.httpBodyFirstBytes);
          at += body.fill(unread, at);
          if (!body.complete) {
            this.#enterBody(head.target, body, refused);
            return;
          }
          value = body.value();
        }
        if (at < unread.length) this.#at = at;
        else this.#unread = undefined;
        this.#answer(head.method, head.target, value, refused);
        answered = true;
      }
      this.#afterRequests(answered);
    } finally {
      this.#driving = false;
    }
  }

  /**
   * A PUT whose body has not all arrived. The body's deadline counts from
   * the request's start (#sinceMs is left as it is).
   */
  #enterBody(target: string, body: SizedBody, refused: boolean): void {
    this.#unread = undefined;
    this.#at = 0;
    this.#phase = Phase.Body;
    this.#body = body;
    this.#bodyTarget = target;
    this.#bodyRefused = refused;
    if (this.#ended) {
      // The client will send nothing more: the body cannot arrive.
      this.#cutShort();
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  /**
   * Once no complete request is left: resume reading, close a half-closed
   * connection, or wait (idle, or for the rest of a head).
   */
  #afterRequests(answered: boolean): void {
    if (this.#phase !== Phase.Head || this.#writeBlocked) return;
    if (this.#paused) {
      this.#paused = false;
      this.#socket.resume();
    }
    if (this.#ended) {
      // The client will send nothing more, so a partial request cannot complete.
      if (this.#unread !== undefined && !onlyLineEnds(this.#unread, this.#at)) this.#cutShort();
      else this.#close();
    } else if (answered || this.#unread === undefined) {
      // Idle, or a new partial head: the wait counts from now. A head that is
      // still arriving keeps its start, so dripping bytes does not extend it.
      this.#sinceMs = performance.now();
    }
  }

  #answer(method: Method, target: string, value: Buffer | undefined, refused: boolean): void {
    this.#phase = Phase.Answering;
    this.#op = METHOD_OPS[method]!;
    this.#answerStartMs = performance.now();
    // A Reply of its own per request: an answer given twice, or late, cannot
    // become the answer to the next request.
    const request = ++this.#requests;
    const reply: Reply = {
      send: (status, contentType, body, close, headers) =>
        this.#send(request, status, contentType, body, close, headers),
    };
    const ctx = this.#host.ctx;
    ctx.counters.fastPath++;
    if (refused) {
      sendLeaving(ctx, reply);
      return;
    }
    try {
      if (method === Method.Get) getEntity(ctx, target, reply);
      else if (method === Method.Delete) deleteEntity(ctx, target, reply);
      else {
        ctx.counters.put++;
        putValue(ctx, target, value!, reply);
      }
    } catch (err) {
      sendError(ctx, reply, err);
    }
  }

  #clientEnded(): void {
    this.#ended = true;
    if (this.#phase === Phase.Body) {
      // The body can no longer arrive.
      this.#cutShort();
    } else if (this.#phase === Phase.Head && !this.#writeBlocked) {
      this.#afterRequests(false);
    }
  }

  #timedOut(): void {
    this.#countRefused(408);
    // As node:http's refusal is answered (server.ts), with its reason.
    this.#close(encodeResponse(408, 'text/plain', 'Request not received in time', CLOSE_LINES));
  }

  /** A request cut short by the client's end: answered as node:http's parser refuses it (server.ts). */
  #cutShort(): void {
    this.#countRefused(400);
    this.#close(encodeResponse(400, 'text/plain', 'Malformed request: Invalid EOF state', CLOSE_LINES));
  }

  /** Counted as node:http's parser refusals are (server.ts): `other`, with no latency. */
  #countRefused(status: number): void {
    const ctx = this.#host.ctx;
    ctx.counters.countResponse(status);
    ctx.requestMetrics.observe(RequestOp.Other, status, 0);
  }

  /**
   * Ends the connection after `last` (and whatever answers are still being
   * written). A client that never reads them is cut after the socket idle
   * timeout (checkTimeouts), so it cannot hold the node's buffers.
   */
  #close(last?: Buffer): void {
    this.#phase = Phase.Done;
    this.#sinceMs = performance.now();
    const socket = this.#socket;
    if (last === undefined) socket.end(() => socket.destroy());
    else socket.end(last, () => socket.destroy());
  }

  #handOver(unread: Buffer): void {
    this.#host.ctx.counters.fastPathHandovers++;
    if (this.#ended) {
      // A request pipelined after the client ended its side: node:http cannot
      // be given a stream that has already ended, so the connection closes
      // (after the answers already written) without answering it.
      this.#close();
      return;
    }
    this.#detach();
    this.#host.handOver(this.#socket, unread.length > 0 ? unread : undefined);
  }

  #finish(): void {
    this.#detach();
  }

  #detach(): void {
    this.#phase = Phase.Done;
    this.#unread = undefined;
    this.#body = undefined;
    const socket = this.#socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('drain', this.#onDrain);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
    this.#host.forget(this);
  }
}

export interface ConnectionTimeouts {
  readonly keepAliveMs: number;
  readonly headersMs: number;
  readonly requestMs: number;
  readonly socketIdleMs: number;
}

/** Whether buf[start..] is only CR and LF: the blank lines HTTP/1.1 allows between requests, no request. */
function onlyLineEnds(buf: Buffer, start: number): boolean {
  for (let i = start; i < buf.length; i++) if (buf[i] !== 0x0d && buf[i] !== 0x0a) return false;
  return true;
}
