/** /v0/status: 200 and a JSON description of the node (the probes are /v0/health's). */
import type { ServerResponse } from 'node:http';
import type { RouteContext } from './context.js';

export function handleStatus(ctx: RouteContext, res: ServerResponse): void {
  ctx.counters.status++;
  const body = JSON.stringify({
    node: ctx.nodeUrl,
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
  ctx.counters.countResponse(200);
  if (ctx.closing) res.setHeader('connection', 'close');
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
