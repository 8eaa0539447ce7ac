/**
 * The serving side of the plain-HTTP internode variant (http-transport.ts):
 * one HTTP/1.1 request per message, bodies in the same byte layout as the
 * binary protocol's (format.ts), so the two differ only in their framing.
 *
 *   POST /v0/internode/write                      body: entry        -> 204, or 200 OK body (a conflict)
 *   GET  /v0/internode/read?key=K                                    -> 200 ENTRY body
 *   GET  /v0/internode/scan?start=S[&end=E]&limit=N                  -> 200 BATCH body
 *   GET  /v0/internode/ping                                          -> 204 (503 while this node leaves)
 *   POST /v0/internode/anti-entropy               body: request      -> 200, answer body
 *   POST /v0/internode/leaving                    body: sender's URL -> 204
 *   POST /v0/internode/membership | stream | move body: request      -> 200, answer body
 *   failures: 4xx/5xx, header ringkv-error: CODE, text body; 401/403 for a missing/bad proof
 *
 * Keys in query strings are base64url. It exists so the benchmark can measure
 * what the binary protocol gains; nodes use it when RINGKV_INTERNODE=http.
 */

import { Buffer } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProofChecker } from './auth.js';
import type { InternodeHandler } from './contract.js';
import {
  decodeMessage,
  ERROR_HEADER,
  encodeBody,
  HTTP_PATH_PREFIX,
  type Message,
  MessageType,
  NODE_HEADER,
  PROOF_HEADER,
} from './format.js';
import { type ServeLimits, serveMessage } from './serve.js';

const _POST_TYPES = {
  write: MessageType.Write,
  'anti-entropy': MessageType.AntiEntropy,
  leaving: MessageType.Leaving,
  membership: MessageType.Membership,
  stream: MessageType.Stream,
  move: MessageType.Move,
} as const;

export function isInternodePath(url: string | undefined): boolean {
  return url?.startsWith(HTTP_PATH_PREFIX) === true;
}

/**
 * Answers one request of the plain-HTTP variant. The caller routed it here
 * (isInternodePath); the answer is always sent, never thrown.
 */
export function serveHttp(
  req: IncomingMessage,
  res: ServerResponse,
  context: {
    handler: InternodeHandler;
    checker: ProofChecker;
    limits: ServeLimits;
    /** This node is shutting down: pings fail, so that peers' probes do not bring it back. */
    leaving: boolean;
    onPeerSeen?: ((peer: string) => void) | undefined;
  },
): void {
  const verdict = context.checker.check(_header(req, PROOF_HEADER), req.headers.host, false);
  if (verdict !== 'accepted') {
    _fail(res, verdict === 'missing' ? 401 : 403, 'RINGKV_UNAUTHORIZED', `Internode proof ${verdict}`);
    req.resume();
    return;
  }
  const sender = _header(req, NODE_HEADER);
  if (sender !== undefined) context.onPeerSeen?.(sender);
  const url = new URL(req.url ?? '/', 'http://internode');
  const action = url.pathname.slice(HTTP_PATH_PREFIX.length);
  if (Object.hasOwn(_POST_TYPES, action) && req.method === 'POST') {
    _readBody(req, context.limits.frameBytesMax).then(
      (body) => {
        if (body === undefined) {
          _fail(res, 413, 'RINGKV_VALUE_TOO_LARGE', 'Internode request body too large');
          return;
        }
        _serve(res, decodeMessage(_POST_TYPES[action as keyof typeof _POST_TYPES], body), context);
      },
      () => res.destroy(),
    );
    return;
  }
  req.resume();
  if (req.method !== 'GET') {
    _fail(res, 405, 'RINGKV_BAD_REQUEST', `Method ${req.method} not allowed on ${url.pathname}`);
    return;
  }
  const query = url.searchParams;
  switch (action) {
    case 'read': {
      const key = query.get('key');
      _serve(
        res,
        key === null ? 'missing key' : { type: MessageType.Read, key: Buffer.from(key, 'base64url') },
        context,
      );
      return;
    }
    case 'scan': {
      const start = query.get('start');
      const end = query.get('end');
      const limit = Number(query.get('limit'));
      if (start === null || !Number.isInteger(limit) || limit < 1 || limit > 0xffffffff) {
        _serve(res, 'scan needs start and a positive limit', context);
        return;
      }
      const message: Message = {
        type: MessageType.Scan,
        start: Buffer.from(start, 'base64url'),
        end: end === null ? undefined : Buffer.from(end, 'base64url'),
        limit,
      };
      _serve(res, message, context);
      return;
    }
    case 'ping':
      if (context.leaving) _fail(res, 503, 'RINGKV_CLOSED', 'Node is shutting down');
      else _serve(res, { type: MessageType.Ping }, context);
      return;
    default:
      _fail(res, 400, 'RINGKV_BAD_REQUEST', `Unknown internode path: ${url.pathname}`);
  }
}

function _serve(
  res: ServerResponse,
  request: Message | string,
  context: { handler: InternodeHandler; limits: ServeLimits },
): void {
  if (typeof request === 'string') {
    _fail(res, 400, 'RINGKV_PROTOCOL', `Bad internode request: ${request}`);
    return;
  }
  void serveMessage(context.handler, request, context.limits).then((answer) => {
    switch (answer.type) {
      case MessageType.Ok:
        if (answer.newerVersion === undefined) res.writeHead(204).end();
        else _sendBody(res, encodeBody(answer));
        return;
      case MessageType.Pong:
      case MessageType.LeavingAck:
        res.writeHead(204).end();
        return;
      case MessageType.Entry:
      case MessageType.Batch:
        _sendBody(res, encodeBody(answer));
        return;
      case MessageType.AntiEntropyAnswer:
      case MessageType.MembershipAnswer:
      case MessageType.StreamPage:
      case MessageType.MoveAnswer:
        _sendBody(res, answer.body);
        return;
      case MessageType.Error:
        _fail(
          res,
          answer.code === 'RINGKV_PROTOCOL' || answer.code === 'RINGKV_BAD_REQUEST' ? 400 : 503,
          answer.code,
          answer.message,
        );
        return;
      default:
        _fail(res, 500, 'RINGKV_PROTOCOL', `Unexpected answer type ${answer.type}`);
    }
  });
}

function _sendBody(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
}

function _fail(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(message);
  res
    .writeHead(status, {
      [ERROR_HEADER]: code,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': body.length,
    })
    .end(body);
}

function _header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The request body, or undefined once it passes `bytesMax` (the rest is discarded). */
function _readBody(req: IncomingMessage, bytesMax: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > bytesMax) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.once('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks, bytes)));
    req.once('error', reject);
  });
}
