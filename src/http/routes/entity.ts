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
 * the connection is closed instead.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { limits } from '../../config/limits.js';
import { EMPTY, isLive } from '../../storage/index.js';
import { RingkvError } from '../../util/errors.js';
import { type EntityParams, parseEntityParams } from '../params.js';
import { type RouteContext, sendBytes, sendEmpty, sendError, sendText } from './context.js';

export function handleEntity(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  const method = req.method;
  if (method === 'GET') {
    ctx.counters.get++;
    getEntity(ctx, req, res);
  } else if (method === 'PUT') {
    ctx.counters.put++;
    putEntity(ctx, req, res);
  } else if (method === 'DELETE') {
    ctx.counters.delete++;
    deleteEntity(ctx, req, res);
  } else {
    ctx.counters.unknown++;
    res.setHeader('allow', 'GET, PUT, DELETE');
    sendText(ctx, res, 405, `Method ${method} not allowed: use GET, PUT or DELETE`);
  }
}

/** The request's parameters, or undefined once a 4xx naming the problem has been sent. */
function entityParamsOrAnswer(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): EntityParams | undefined {
  try {
    return parseEntityParams(req.url!, ctx.paramLimits);
  } catch (err) {
    sendError(ctx, res, err);
    return undefined;
  }
}

function getEntity(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  const params = entityParamsOrAnswer(ctx, req, res);
  if (params === undefined) return;
  ctx.store.get(params.key, params).then(
    (entry) => {
      if (entry !== undefined && isLive(entry, Date.now())) sendBytes(ctx, res, 200, entry.value);
      else sendText(ctx, res, 404, 'Not found');
    },
    (err: unknown) => sendError(ctx, res, err),
  );
}

function deleteEntity(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  const params = entityParamsOrAnswer(ctx, req, res);
  if (params === undefined) return;
  ctx.store.delete(params.key, params).then(
    () => sendEmpty(ctx, res, 202),
    (err: unknown) => sendError(ctx, res, err),
  );
}

function putEntity(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): void {
  let params: EntityParams;
  try {
    params = parseEntityParams(req.url!, ctx.paramLimits);
  } catch (err) {
    // The body is not wanted, but must be read (bounded) for the connection to carry on.
    discardBody(req, 0);
    sendError(ctx, res, err);
    return;
  }
  const declared = contentLength(req);
  if (declared > ctx.valueBytesMax) {
    if (declared > limits.httpDrainBytesMax) res.setHeader('connection', 'close');
    discardBody(req, 0);
    sendError(ctx, res, tooLarge(ctx));
    return;
  }
  if (declared === 0 || (declared < 0 && req.complete)) {
    store(ctx, res, params, EMPTY);
  } else if (declared > 0) {
    readSizedBody(ctx, req, res, params, declared);
  } else {
    readChunkedBody(ctx, req, res, params);
  }
}

/** Content-Length: the value's size known up front. */
function readSizedBody(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  params: EntityParams,
  declared: number,
): void {
  const value = Buffer.allocUnsafe(declared);
  let offset = 0;
  // INVARIANT: Node's parser hands over exactly Content-Length bytes before 'end'.
  req.on('data', (chunk: Buffer) => {
    offset += chunk.copy(value, offset);
  });
  req.on('end', () => {
    if (offset === declared) store(ctx, res, params, value);
    else sendText(ctx, res, 400, 'Body shorter than Content-Length');
  });
}

/** Transfer-Encoding: chunked; the size shows only at the end. */
function readChunkedBody(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  params: EntityParams,
): void {
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
    sendError(ctx, res, tooLarge(ctx));
  };
  req.on('data', onData);
  req.on('end', () => {
    if (overflowed) return;
    const value = chunks.length === 1 ? Buffer.from(chunks[0]!) : Buffer.concat(chunks, total);
    store(ctx, res, params, value);
  });
}

function store(ctx: RouteContext, res: ServerResponse, params: EntityParams, value: Buffer): void {
  ctx.store.put(params.key, value, params).then(
    () => sendEmpty(ctx, res, 201),
    (err: unknown) => sendError(ctx, res, err),
  );
}

/**
 * Reads and drops the rest of a body. `received` bytes were already read.
 * Past limits.httpDrainBytesMax the socket is closed: a client sending
 * gigabytes after a 413 does not get to keep the connection busy.
 */
function discardBody(req: IncomingMessage, received: number): void {
  if (req.complete) return;
  let drained = received;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > limits.httpDrainBytesMax) req.socket.destroy();
  });
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
