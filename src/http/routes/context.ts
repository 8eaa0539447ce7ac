/**
 * What every route shares: the store, the limits, the counters behind
 * /v0/status, and the helpers that write an answer. Answers go through
 * sendText/sendError so that every status is counted and every error is
 * mapped in one place (errors.ts).
 *
 * Routes answer through a Reply, so that one route serves both ways a request
 * arrives: node:http (NodeReply) and the fast path's connections (fast/).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Store } from '../../cluster/store.js';
import { isRingkvError } from '../../util/errors.js';
import { errorAnswer } from '../errors.js';
import type { ParamLimits } from '../params.js';
import type { RequestMetrics } from '../request-metrics.js';

export class RequestCounters {
  get = 0;
  put = 0;
  delete = 0;
  range = 0;
  status = 0;
  health = 0;
  metrics = 0;
  /** The dashboard's page and its /ui/cluster polls (each poll also asks every member's /v0/status). */
  dashboard = 0;
  internode = 0;
  /** Requests answered 400 for an unknown path or method. */
  unknown = 0;
  /** Unexpected errors answered 500. */
  internalErrors = 0;
  /** Requests answered 503 because a file of this node is damaged (RINGKV_CORRUPTION). */
  corruption = 0;
  /** Client requests answered 503 because the node is leaving (HttpServer.beginLeaving). */
  refusedLeaving = 0;
  /** Requests of each kind answered by the fast path (fast/) rather than node:http. */
  fastPath = 0;
  /** Connections the fast path passed to node:http (a request it does not take). */
  fastPathHandovers = 0;
  /** Cluster ranges (scope=cluster) under way: at most RouteContext.clusterScansMax. */
  clusterScansOpen = 0;
  /** Cluster ranges answered 503 because clusterScansMax were under way. */
  clusterScansRefused = 0;
  readonly #responses = new Map<number, number>();

  countResponse(status: number): void {
    this.#responses.set(status, (this.#responses.get(status) ?? 0) + 1);
  }

  toJSON(): Record<string, unknown> {
    return {
      get: this.get,
      put: this.put,
      delete: this.delete,
      range: this.range,
      status: this.status,
      health: this.health,
      metrics: this.metrics,
      dashboard: this.dashboard,
      internode: this.internode,
      unknown: this.unknown,
      internalErrors: this.internalErrors,
      corruption: this.corruption,
      refusedLeaving: this.refusedLeaving,
      fastPath: this.fastPath,
      fastPathHandovers: this.fastPathHandovers,
      clusterScansOpen: this.clusterScansOpen,
      clusterScansRefused: this.clusterScansRefused,
      responses: Object.fromEntries([...this.#responses].sort((a, b) => a[0] - b[0])),
    };
  }
}

export interface RouteContext {
  readonly store: Store;
  readonly paramLimits: ParamLimits;
  readonly valueBytesMax: number;
  readonly counters: RequestCounters;
  /** Requests by operation and status, with their latency: /metrics. */
  readonly requestMetrics: RequestMetrics;
  readonly nodeUrl: string;
  readonly cluster: readonly string[];
  readonly startedAtMs: number;
  /**
   * The node's wall clock (its HybridClock's): what a TTL's expiry was stamped
   * with, so what reads judge it by. Date.now() moved by RINGKV_CLOCK_OFFSET_MS.
   */
  readonly wallMs: () => number;
  readonly log: (line: string) => void;
  /**
   * Set when the node starts leaving (before closing): new client requests
   * then get 503 and a closed connection; health, status and internode are
   * still served.
   */
  leaving: boolean;
  /** Set when the server starts closing: answers then tell the client to close the connection (as while leaving). */
  closing: boolean;
  /** Cluster ranges this node coordinates at once (limits.clusterScansMax); more are answered 503. */
  readonly clusterScansMax: number;
}

/**
 * More header fields for one answer, names and values alternating (as
 * rawHeaders): names in lower case, values visible ASCII. Only traced
 * answers have any (receipt.ts); the others pass undefined.
 */
export type ExtraHeaders = readonly string[];

/** An answer's body: bytes, or text sent as UTF-8. */
export type Body = Buffer | string;

/** Where a route's one answer goes. */
export interface Reply {
  /**
   * Sends the whole answer: the status, a content type (none for an empty
   * body) and the body; `close` asks the client to close the connection;
   * `headers`, when given, are sent too.
   * Does nothing once the connection is gone or an answer was sent.
   */
  send(status: number, type: string | undefined, body: Body, close: boolean, headers?: ExtraHeaders): void;
}

/** A Reply on a node:http response. */
export class NodeReply implements Reply {
  readonly #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  send(status: number, type: string | undefined, body: Body, close: boolean, headers?: ExtraHeaders): void {
    const res = this.#res;
    if (res.headersSent || res.destroyed) return;
    if (close) res.setHeader('connection', 'close');
    if (headers !== undefined) {
      for (let i = 0; i < headers.length; i += 2) res.setHeader(headers[i]!, headers[i + 1]!);
    }
    const length = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    res.writeHead(
      status,
      type === undefined ? { 'content-length': length } : { 'content-type': type, 'content-length': length },
    );
    res.end(body);
  }
}

export const TEXT_TYPE = 'text/plain; charset=utf-8';
export const BYTES_TYPE = 'application/octet-stream';
export const JSON_TYPE = 'application/json';

/**
 * For routes that take GET only: any other method is answered 405 with
 * `Allow: GET` (counted as unknown), and false returned.
 */
export function onlyGet(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET') return true;
  ctx.counters.unknown++;
  res.setHeader('allow', 'GET');
  sendText(ctx, new NodeReply(res), 405, `Method ${req.method} not allowed: use GET`);
  return false;
}

/** A short text answer. */
export function sendText(
  ctx: RouteContext,
  reply: Reply,
  status: number,
  body: string,
  headers?: ExtraHeaders,
): void {
  ctx.counters.countResponse(status);
  reply.send(status, TEXT_TYPE, body, ctx.closing || ctx.leaving, headers);
}

/** An answer without a body (201, 202). */
export function sendEmpty(ctx: RouteContext, reply: Reply, status: number, headers?: ExtraHeaders): void {
  ctx.counters.countResponse(status);
  reply.send(status, undefined, '', ctx.closing || ctx.leaving, headers);
}

export function sendBytes(
  ctx: RouteContext,
  reply: Reply,
  status: number,
  body: Buffer,
  headers?: ExtraHeaders,
): void {
  ctx.counters.countResponse(status);
  reply.send(status, BYTES_TYPE, body, ctx.closing || ctx.leaving, headers);
}

/** A JSON answer (`body` already serialized). */
export function sendJson(
  ctx: RouteContext,
  reply: Reply,
  status: number,
  body: string,
  headers?: readonly string[],
): void {
  ctx.counters.countResponse(status);
  reply.send(status, JSON_TYPE, body, ctx.closing, headers);
}

/**
 * The answer to a new client request while the node is leaving: 503, and
 * the connection closes, so that the client retries on another node rather
 * than reuse a connection to one that is going away.
 */
export function sendLeaving(ctx: RouteContext, reply: Reply): void {
  ctx.counters.refusedLeaving++;
  ctx.counters.countResponse(503);
  reply.send(503, TEXT_TYPE, 'Node is shutting down', true);
}

/** The answer for any thrown error; unexpected ones and damaged files are logged (one line) and counted. */
export function sendError(ctx: RouteContext, reply: Reply, err: unknown, headers?: ExtraHeaders): void {
  const answer = errorAnswer(err);
  if (answer.logLine !== undefined) {
    if (isRingkvError(err, 'RINGKV_CORRUPTION')) ctx.counters.corruption++;
    else ctx.counters.internalErrors++;
    ctx.log(answer.logLine);
  }
  sendText(ctx, reply, answer.status, answer.body, headers);
}
