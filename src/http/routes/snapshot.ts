/**
 * POST /v0/admin/snapshot?dir=ABSOLUTE_DIR: the node writes a snapshot of
 * its data into a directory of its own machine (storage/snapshot.ts), while
 * it keeps serving, and answers 200 with what it wrote as JSON:
 * {"dir","tables","bytes","copied"}. The directory must be absent or empty;
 * on the data directory's file system the tables are hard links and cost no
 * space until the node compacts them away.
 *
 * An operator's request, like the other admin paths: keep the port off
 * networks where clients you do not trust can reach it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute } from 'node:path';
import { RingkvError } from '../../util/errors.js';
import { NodeReply, type RouteContext, sendError, sendJson, sendText } from './context.js';

export const SNAPSHOT_PATH = '/v0/admin/snapshot';

export function handleSnapshot(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  snapshot: (dir: string) => Promise<unknown>,
): void {
  const reply = new NodeReply(res);
  if (req.method !== 'POST') {
    ctx.counters.unknown++;
    res.setHeader('allow', 'POST');
    sendText(ctx, reply, 405, `Method ${req.method} not allowed: use POST`);
    return;
  }
  req.resume();
  const dir = new URL(req.url!, 'http://node').searchParams.get('dir');
  if (dir === null || !isAbsolute(dir)) {
    sendText(ctx, reply, 400, 'Bad dir: expected an absolute path on the node, ?dir=/path/to/snapshot');
    return;
  }
  snapshot(dir).then(
    (info) => sendJson(ctx, reply, 200, JSON.stringify(info)),
    (err: unknown) => sendError(ctx, reply, err instanceof RingkvError ? err : wrapped(dir, err)),
  );
}

function wrapped(dir: string, err: unknown): RingkvError {
  const code = (err as NodeJS.ErrnoException).code;
  return new RingkvError(
    code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR' ? 'RINGKV_BAD_REQUEST' : 'RINGKV_IO',
    `Cannot snapshot into ${dir}: ${(err as Error).message}`,
    { cause: err },
  );
}
