/**
 * /v0/health: probes for process supervisors and load balancers.
 *
 * - `GET /v0/health`: 200 `{"status":"ok"}` while the process serves
 *   requests (liveness). Still 200 while the node is leaving.
 * - `GET /v0/health?ready=1`: 200 `{"status":"ready"}` once the node is
 *   ready for client requests; 503 `{"status":"starting"}` before, and
 *   `{"status":"leaving"}` from the moment it starts leaving, so that a load
 *   balancer stops sending it requests before the node refuses them.
 *
 * Readiness is decided outside the HTTP package (HttpServerOptions.readiness).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseHealthParams } from '../params.js';
import { NodeReply, onlyGet, type RouteContext, sendJson } from './context.js';

export type Readiness = 'starting' | 'ready';

export function handleHealth(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  readiness: () => Readiness,
): void {
  if (!onlyGet(ctx, req, res)) return;
  const reply = new NodeReply(res);
  ctx.counters.health++;
  // Throws RINGKV_BAD_REQUEST, answered 400 by the server.
  const { ready } = parseHealthParams(req.url!);
  if (!ready) {
    sendJson(ctx, reply, 200, '{"status":"ok"}');
    return;
  }
  const state = ctx.leaving || ctx.closing ? 'leaving' : readiness();
  sendJson(ctx, reply, state === 'ready' ? 200 : 503, JSON.stringify({ status: state }));
}
