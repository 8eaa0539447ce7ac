/**
 * /v0/entities?start=S[&end=E][&scope=cluster][&format=ndjson]: the live
 * entries with S <= key < E in key order, as a chunked answer with one chunk
 * per entry, each exactly key '\n' value; or, asked for with format=ndjson
 * or an Accept header, one JSON object per line (range-format.ts).
 *
 * Streamed with back-pressure so that memory stays flat however large the
 * range: one cursor batch at a time, and when the socket's buffer is full
 * (write() returns false) the loop waits for 'drain' before going on. A client
 * that stops reading stalls only its own answer; one that goes away ends the
 * loop and closes the cursor.
 *
 * The first batch is read before the 200 is sent, so that a failure to open
 * the range still gets a proper status. A failure after that can only cut the
 * answer short: the connection is destroyed, which a client sees as a chunked
 * body without its final empty chunk.
 *
 * Cluster ranges (scope=cluster) each hold a page per node until they end,
 * so at most ctx.clusterScansMax run at once on a node: one more is answered
 * 503 with Retry-After and opens nothing (a client may try another node). A
 * range gives its place back once its cursor is closed, however it ended:
 * finished, failed, its client gone, or its socket closed for idling
 * (limits.httpSocketIdleTimeoutMs), which ends the wait for 'drain'.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { limits } from '../../config/limits.js';
import type { EntryCursor } from '../../storage/index.js';
import { isLive } from '../../storage/index.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import { parseRangeParams, type RangeParams } from '../params.js';
import { NodeReply, type RouteContext, sendError, sendText } from './context.js';
import { type RangeEncoding, rangeEncoding } from './range-format.js';

/** Resolves once the answer is finished or abandoned and the cursor is closed; never rejects. */
export async function handleEntities(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  ctx.counters.range++;
  // A range is streamed in chunks (API.md), which HTTP/1.0 has not: its entries would run
  // together, and an answer cut short would look whole.
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) {
    sendText(ctx, new NodeReply(res), 505, 'A range is answered in chunks: ask with HTTP/1.1');
    return;
  }
  let cursor: EntryCursor;
  let encoding: RangeEncoding;
  let holdsPlace = false;
  try {
    const params = parseRangeParams(req.url!, ctx.paramLimits);
    encoding = rangeEncoding(params.format, req.headers.accept);
    if (isClusterScan(ctx, params)) {
      if (ctx.counters.clusterScansOpen >= ctx.clusterScansMax) {
        refuseClusterScan(ctx, res);
        return;
      }
      ctx.counters.clusterScansOpen++;
      holdsPlace = true;
    }
    cursor = openCursor(ctx, params);
  } catch (err) {
    if (holdsPlace) ctx.counters.clusterScansOpen--;
    sendError(ctx, new NodeReply(res), err);
    return;
  }
  try {
    await stream(ctx, res, cursor, encoding);
  } catch (err) {
    if (!res.headersSent) {
      sendError(ctx, new NodeReply(res), err);
    } else {
      ctx.counters.internalErrors++;
      ctx.log(`Range answer cut short: ${errorMessage(err)}`);
      res.destroy();
    }
  } finally {
    await cursor
      .close()
      .catch((err: unknown) => ctx.log(`Closing a range cursor failed: ${errorMessage(err)}`));
    if (holdsPlace) ctx.counters.clusterScansOpen--;
  }
}

/** Whether openCursor() opens a range across the cluster (a page per node held), which takes a place. */
function isClusterScan(ctx: RouteContext, params: RangeParams): boolean {
  return params.scope !== 'local' && ctx.store.scanCluster !== undefined;
}

function refuseClusterScan(ctx: RouteContext, res: ServerResponse): void {
  ctx.counters.clusterScansRefused++;
  sendText(
    ctx,
    new NodeReply(res),
    503,
    `Too many cluster ranges under way on this node: ${ctx.clusterScansMax} (the most at once); retry later or on another node`,
    ['retry-after', String(limits.clusterScanRetryAfterS)],
  );
}

function openCursor(ctx: RouteContext, params: RangeParams): EntryCursor {
  const range = { start: params.start, end: params.end };
  if (params.scope === 'local') return ctx.store.scanLocal(range);
  // A store that has scanCluster is asked even when its ring has one node: that node may be
  // another one (this node joining it, or leaving it), whose keys this one does not all hold.
  if (ctx.store.scanCluster !== undefined) return ctx.store.scanCluster(range);
  if (ctx.store.clusterSize === 1) return ctx.store.scanLocal(range);
  throw new RingkvError('RINGKV_UNAVAILABLE', 'Cluster ranges are not available on this node');
}

async function stream(
  ctx: RouteContext,
  res: ServerResponse,
  cursor: EntryCursor,
  encoding: RangeEncoding,
): Promise<void> {
  const encode = encoding.encode;
  let batch = await cursor.next();
  if (res.destroyed) return;
  ctx.counters.countResponse(200);
  res.writeHead(200, { 'content-type': encoding.contentType });
  while (batch !== undefined) {
    // A batch of tombstones writes nothing, so check here too that someone still listens.
    if (res.destroyed) return;
    const nowMs = ctx.wallMs();
    for (const entry of batch) {
      if (!isLive(entry, nowMs)) continue;
      if (!res.write(encode(entry)) && !(await drained(res))) return;
    }
    batch = await cursor.next();
  }
  if (!res.destroyed) res.end();
}

/** Waits until the response can take more (true) or the connection is gone (false). */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const onDrain = () => {
      res.off('close', onClose);
      resolve(true);
    };
    const onClose = () => {
      res.off('drain', onDrain);
      resolve(false);
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
