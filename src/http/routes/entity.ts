/**
 * /v0/entity: GET, PUT and DELETE of one key.
 *
 * A PUT body is collected into one buffer of exactly the value's size, so
 * the store keeps a compact copy rather than views into 64 KiB socket chunks:
 * with a Content-Length it is allocated up front and filled as chunks arrive;
 * a chunked body's chunks are held until the end and copied once.
 *
 * A value over the limit is answered 413 as soon as it is known (from the
 * Content-Length, or once a chunked body passes the limit), and the rest of
 * the body is read and discarded so that the keep-alive connection can carry
 * the next request. Discarding is bounded (limits.httpDrainBytesMax): past it
 * the connection is closed instead. A body declared past that bound is
 * answered with `Connection: close`, and the body is still read (to the same
 * bound) after the answer, so that the client reads the 413 before the
 * connection is cut.
 *
 * getEntity, deleteEntity and putValue are shared with the fast path
 * (../fast/), which reads requests off the socket itself and calls them with
 * its own Reply.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { limits } from '../../config/limits.js';
import { EMPTY, isLive } from '../../storage/index.js';
import { RingkvError } from '../../util/errors.js';
import { SizedBody } from '../../util/sized-body.js';
import { type EntityParams, parseEntityParams } from '../params.js';
import {
  NodeReply,
  type Reply,
  type RouteContext,
  sendBytes,
  sendEmpty,
  sendError,
  sendText,
} from './context.js';
import { receiptFor, receiptHeaders, storeOptions } from './receipt.js';

/** /v0/entity through node:http. */
export function handleEntity(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  const method = req.method;
  const reply = new NodeReply(res);
  if (method === 'GET') {
    getEntity(ctx, req.url!, reply);
  } else if (method === 'PUT') {
    ctx.counters.put++;
    putEntity(ctx, req, res, reply);
  } else if (method === 'DELETE') {
    deleteEntity(ctx, req.url!, reply);
  } else {
    ctx.counters.unknown++;
    res.setHeader('allow', 'GET, PUT, DELETE');
    sendText(ctx, reply, 405, `Method ${method} not allowed: use GET, PUT or DELETE`);
  }
}

/** The request's parameters, or undefined once a 4xx naming the problem has been sent. */
function entityParamsOrAnswer(ctx: RouteContext, url: string, reply: Reply): EntityParams | undefined {
  try {
    return parseEntityParams(url, ctx.paramLimits);
  } catch (err) {
    sendError(ctx, reply, err);
    return undefined;
  }
}

/**
 * GET of the key in `url` (the request target), answered through `reply`.
 * With `trace=1` the store fills in a receipt, and the answer (200, 404 or
 * an error such as 504) carries it (receipt.ts).
 */
export function getEntity(ctx: RouteContext, url: string, reply: Reply): void {
  ctx.counters.get++;
  const params = entityParamsOrAnswer(ctx, url, reply);
  if (params === undefined) return;
  const receipt = receiptFor(params);
  ctx.store.get(params.key, storeOptions(params, receipt)).then(
    (entry) => {
      const headers = receiptHeaders(receipt);
      if (entry !== undefined && isLive(entry, ctx.wallMs()))
        sendBytes(ctx, reply, 200, entry.value, headers);
      else sendText(ctx, reply, 404, 'Not found', headers);
    },
    (err: unknown) => sendError(ctx, reply, err, receiptHeaders(receipt)),
  );
}

/** DELETE of the key in `url`. */
export function deleteEntity(ctx: RouteContext, url: string, reply: Reply): void {
  ctx.counters.delete++;
  const params = entityParamsOrAnswer(ctx, url, reply);
  if (params === undefined) return;
  const receipt = receiptFor(params);
  ctx.store.delete(params.key, storeOptions(params, receipt)).then(
    () => sendEmpty(ctx, reply, 202, receiptHeaders(receipt)),
    (err: unknown) => sendError(ctx, reply, err, receiptHeaders(receipt)),
  );
}

/**
 * PUT of `value` (the whole body, a buffer of its own) under the key in
 * `url`, for a caller that has read the body already. The caller counts the
 * request and has checked the value's size.
 */
export function putValue(ctx: RouteContext, url: string, value: Buffer, reply: Reply): void {
  const params = entityParamsOrAnswer(ctx, url, reply);
  if (params !== undefined) store(ctx, reply, params, value);
}

/**
 * Why a PUT would be refused before its body is read: bad parameters, or a
 * declared value over the limit. For a client that waits for 100
 * (Continue) before sending the value, which it then need not send.
 */
export function putRefusal(ctx: RouteContext, req: IncomingMessage): unknown {
  try {
    parseEntityParams(req.url!, ctx.paramLimits);
  } catch (err) {
    return err;
  }
  return contentLength(req) > ctx.valueBytesMax ? tooLarge(ctx) : undefined;
}

function putEntity(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  let params: EntityParams;
  try {
    params = parseEntityParams(req.url!, ctx.paramLimits);
  } catch (err) {
    // The body is not wanted, but must be read (bounded) for the connection to carry on.
    discardBody(req, 0);
    sendError(ctx, reply, err);
    return;
  }
  const declared = contentLength(req);
  if (declared > ctx.valueBytesMax) {
    if (declared > limits.httpDrainBytesMax) closeAfterAnswer(res);
    discardBody(req, 0);
    sendError(ctx, reply, tooLarge(ctx));
    return;
  }
  // readableEnded, not complete: a request that waited behind another on its connection is
  // complete (all parsed) with its body still unread in the stream.
  if (declared === 0 || (declared < 0 && req.readableEnded)) {
    store(ctx, reply, params, EMPTY);
  } else if (declared > 0) {
    readSizedBody(ctx, req, reply, params, declared);
  } else {
    readChunkedBody(ctx, req, reply, params);
  }
}

/** Content-Length: the value's size known up front. */
function readSizedBody(
  ctx: RouteContext,
  req: IncomingMessage,
  reply: Reply,
  params: EntityParams,
  declared: number,
): void {
  const body = new SizedBody(declared, limits.httpBodyFirstBytes);
  // INVARIANT: Node's parser hands over exactly Content-Length bytes before 'end'.
  req.on('data', (chunk: Buffer) => {
    body.fill(chunk);
  });
  req.on('end', () => {
    if (body.complete) store(ctx, reply, params, body.value());
    else sendText(ctx, reply, 400, 'Body shorter than Content-Length');
  });
}

/** Transfer-Encoding: chunked; the size shows only at the end. */
function readChunkedBody(ctx: RouteContext, req: IncomingMessage, reply: Reply, params: EntityParams): void {
  const chunks: Buffer[] = [];
  let total = 0;
  let overflowed = false;
  const onData = (chunk: Buffer) => {
    total += chunk.length;
    if (total <= ctx.valueBytesMax) {
      chunks.push(chunk);
      return;
    }
    overflowed = true;
    chunks.length = 0;
    req.off('data', onData);
    discardBody(req, total);
    sendError(ctx, reply, tooLarge(ctx));
  };
  req.on('data', onData);
  req.on('end', () => {
    if (overflowed) return;
    const value = chunks.length === 1 ? Buffer.from(chunks[0]!) : Buffer.concat(chunks, total);
    store(ctx, reply, params, value);
  });
}

function store(ctx: RouteContext, reply: Reply, params: EntityParams, value: Buffer): void {
  const receipt = receiptFor(params);
  ctx.store.put(params.key, value, storeOptions(params, receipt)).then(
    () => sendEmpty(ctx, reply, 201, receiptHeaders(receipt)),
    (err: unknown) => sendError(ctx, reply, err, receiptHeaders(receipt)),
  );
}

/**
 * Reads and drops the rest of a body. `received` bytes were already read.
 * Past limits.httpDrainBytesMax the socket is closed: a client sending
 * gigabytes after a 413 does not get to keep the connection busy.
 */
function discardBody(req: IncomingMessage, received: number): void {
  if (req.readableEnded) return;
  let drained = received;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > limits.httpDrainBytesMax) req.socket.destroy();
  });
}

/**
 * Answers with `Connection: close`, and then half-closes the connection
 * instead of cutting it: node:http ends such an answer by destroying the
 * socket (destroySoon), and a socket closed with request bytes unread sends
 * a reset, which may reach a client still sending the body before the
 * client has read the answer (it sees EPIPE or ECONNRESET, not the 413).
 * discardBody goes on reading, and cuts the connection past its bound.
 */
function closeAfterAnswer(res: ServerResponse): void {
  res.setHeader('connection', 'close');
  const socket = res.socket;
  if (socket !== null) socket.destroySoon = () => socket.end();
}

/** The Content-Length header's value, or -1 when absent. Node has validated it already. */
function contentLength(req: IncomingMessage): number {
  // rawHeaders avoids building req.headers on the hot path.
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') return Number(raw[i + 1]);
  }
  return -1;
}

function tooLarge(ctx: RouteContext): RingkvError {
  return new RingkvError('RINGKV_VALUE_TOO_LARGE', `Value too large: over ${ctx.valueBytesMax} bytes`);
}
