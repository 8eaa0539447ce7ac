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
import { isAbsolute, resolve } from 'node:path';
import { errorMessage, RingkvError } from '../../util/errors.js';
import { parseSnapshotDir } from '../params.js';
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
  let dir: string | undefined;
  try {
    dir = parseSnapshotDir(req.url!);
  } catch (err) {
    sendError(ctx, reply, err);
    return;
  }
  if (dir === undefined || !isAbsolute(dir)) {
    sendText(ctx, reply, 400, 'Bad dir: expected an absolute path on the node, ?dir=/path/to/snapshot');
    return;
  }
  if (dir.includes('\0')) {
    sendText(ctx, reply, 400, `Bad dir: ${JSON.stringify(dir)} contains a NUL byte`);
    return;
  }
  // `..` resolved once, here: the node's check of the directory and its writes into it then agree.
  const target = resolve(dir);
  snapshot(target).then(
    (info) => sendJson(ctx, reply, 200, JSON.stringify(info)),
    (err: unknown) => sendError(ctx, reply, err instanceof RingkvError ? err : wrapped(target, err)),
  );
}

/**
 * Errors that say the directory cannot be used as asked (a file in the way,
 * a parent missing or refusing new entries as under /proc, no permission, a
 * read-only or pseudo file system, a name too long, a link loop, a NUL byte):
 * 400, the client's to fix. Anything else, a full disk included, is the
 * node's failure: RINGKV_IO, 500 and one log line.
 */
const UNUSABLE_DIR_CODES: ReadonlySet<unknown> = new Set([
  'EEXIST',
  'ENOTDIR',
  'ENOENT',
  'EACCES',
  'EPERM',
  'EROFS',
  'ENAMETOOLONG',
  'ELOOP',
  'EINVAL',
  'ERR_INVALID_ARG_VALUE',
  'ERR_INVALID_ARG_TYPE',
]);

function wrapped(dir: string, err: unknown): RingkvError {
  const code = (err as NodeJS.ErrnoException).code;
  return new RingkvError(
    UNUSABLE_DIR_CODES.has(code) ? 'RINGKV_BAD_REQUEST' : 'RINGKV_IO',
    `Cannot snapshot into ${dir}: ${errorMessage(err)}`,
    { cause: err },
  );
}
