/**
 * /v0/status: a JSON description of the node, 200 while the node is ready.
 * While it starts (it listens before it has tried its peers) and once it
 * leaves (shutdown), the same JSON comes with 503, so that a status answer
 * of 200 keeps meaning what API.md says: the node serves requests, and every
 * request that needs it succeeds.
 */
import type { ServerResponse } from 'node:http';
import type { RouteContext } from './context.js';
import type { Readiness } from './health.js';

export function handleStatus(ctx: RouteContext, res: ServerResponse, readiness: Readiness): void {
  ctx.counters.status++;
  const ready = readiness === 'ready' && !ctx.leaving && !ctx.closing;
  const status = ready ? 200 : 503;
  const body = JSON.stringify({
    node: ctx.nodeUrl,
    ready,
    cluster: ctx.cluster,
    clusterSize: ctx.store.clusterSize,
    pid: process.pid,
    uptimeMs: Date.now() - ctx.startedAtMs,
    requests: ctx.counters,
    memory: process.memoryUsage(),
    // CPU time of the whole process (event loop, worker threads, I/O threads), in microseconds.
    cpu: process.cpuUsage(),
    store: ctx.store.status(),
  });
  ctx.counters.countResponse(status);
  if (ctx.closing) res.setHeader('connection', 'close');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
