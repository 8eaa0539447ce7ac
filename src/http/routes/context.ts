/**
 * What every route shares: the store, the limits, the counters behind
 * /v0/status, and the helpers that write an answer. Answers go through
 * sendText/sendError so that every status is counted and every error is
 * mapped in one place (errors.ts).
 */
import type { ServerResponse } from 'node:http';
import type { Store } from '../../cluster/store.js';
import { errorAnswer } from '../errors.js';
import type { ParamLimits } from '../params.js';

export class RequestCounters {
  get = 0;
  put = 0;
  delete = 0;
  range = 0;
  status = 0;
  internode = 0;
  /** Requests answered 400 for an unknown path or method. */
  unknown = 0;
  /** Unexpected errors answered 500. */
  internalErrors = 0;
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
      internode: this.internode,
      unknown: this.unknown,
      internalErrors: this.internalErrors,
      responses: Object.fromEntries([...this.#responses].sort((a, b) => a[0] - b[0])),
    };
  }
}

export interface RouteContext {
  readonly store: Store;
  readonly paramLimits: ParamLimits;
  readonly valueBytesMax: number;
  readonly counters: RequestCounters;
  readonly nodeUrl: string;
  readonly cluster: readonly string[];
  readonly startedAtMs: number;
  readonly log: (line: string) => void;
  /** Set when the server starts closing: answers then tell the client to close the connection. */
  closing: boolean;
}

const TEXT_HEADERS = 'text/plain; charset=utf-8';

/** A short text answer (empty body for 201/202). */
export function sendText(ctx: RouteContext, res: ServerResponse, status: number, body: string): void {
  ctx.counters.countResponse(status);
  if (res.headersSent || res.destroyed) return;
  if (ctx.closing) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-type': TEXT_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendEmpty(ctx: RouteContext, res: ServerResponse, status: number): void {
  ctx.counters.countResponse(status);
  if (res.headersSent || res.destroyed) return;
  if (ctx.closing) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-length': 0 });
  res.end();
}

export function sendBytes(ctx: RouteContext, res: ServerResponse, status: number, body: Buffer): void {
  ctx.counters.countResponse(status);
  if (res.destroyed) return;
  if (ctx.closing) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
}

/** The answer for any thrown error; unexpected ones are logged (one line) and counted. */
export function sendError(ctx: RouteContext, res: ServerResponse, err: unknown): void {
  const answer = errorAnswer(err);
  if (answer.logLine !== undefined) {
    ctx.counters.internalErrors++;
    ctx.log(answer.logLine);
  }
  sendText(ctx, res, answer.status, answer.body);
}
