/**
 * GET /metrics: the node's metrics in the Prometheus text format (0.0.4),
 * written at scrape time by whoever assembled the node (HttpServerOptions
 * `metrics`). Served while the node starts and while it leaves, so that a
 * scraper sees both.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage } from '../../util/errors.js';
import { PROMETHEUS_TEXT_TYPE } from '../../util/prometheus-text.js';
import { NodeReply, onlyGet, type RouteContext, sendText } from './context.js';

export function handleMetrics(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  exposition: () => Promise<string>,
): void {
  if (!onlyGet(ctx, req, res)) return;
  const reply = new NodeReply(res);
  ctx.counters.metrics++;
  exposition().then(
    (text) => {
      ctx.counters.countResponse(200);
      reply.send(200, PROMETHEUS_TEXT_TYPE, text, ctx.closing);
    },
    (err: unknown) => {
      ctx.log(`Cannot write /metrics: ${errorMessage(err)}`);
      sendText(ctx, reply, 500, `Cannot write the metrics: ${errorMessage(err)}`);
    },
  );
}
