/**
 * Where a snapshot may not go: into the node's own data directory. A
 * snapshot there would sit among the node's files (a table of it named like
 * one of the node's, a MANIFEST beside the node's), the node's clean-ups
 * could take it for its own leftovers, and every later snapshot of a node
 * whose data directory holds it would not be what it says. So the
 * directory is refused, and the operator told where it resolved to.
 *
 * The comparison is between physical paths: symlinks followed and `..`
 * resolved. A snapshot directory usually does not exist yet, so its deepest
 * existing ancestor is resolved (realpath) and the rest appended.
 *
 *   await refuseInsideDataDir(nodeVfs, '/data/node-0/../node-0/snap', '/data/node-0')
 *   // throws RINGKV_BAD_REQUEST: ... inside the node's data directory ...
 */
import { basename, dirname, join, sep } from 'node:path';
import type { Vfs } from '../storage/index.js';
import { RingkvError } from '../util/errors.js';

/**
 * Rejects with RINGKV_BAD_REQUEST (a 400 from the snapshot route) when
 * `dir` (absolute, `..` already resolved by the caller) is `dataDir` or
 * lies inside it once symlinks are followed.
 */
export async function refuseInsideDataDir(vfs: Vfs, dir: string, dataDir: string): Promise<void> {
  const data = await physicalPath(vfs, dataDir);
  const target = await physicalPath(vfs, dir);
  if (target !== data && !target.startsWith(data.endsWith(sep) ? data : data + sep)) return;
  const resolved = target === dir ? '' : ` (which resolves to ${target})`;
  throw new RingkvError(
    'RINGKV_BAD_REQUEST',
    `Bad dir: ${dir}${resolved} is inside the node's data directory ${data}: a snapshot there would be mixed with the node's own files and copied into later snapshots; choose a directory outside it`,
  );
}

/**
 * `path` with its deepest existing ancestor resolved by realpath (symlinks,
 * `..`) and the missing rest appended as is. An ancestor that cannot be
 * resolved (missing, not a directory, no permission) is passed over for its
 * parent: what is left to append does not exist yet, so holds no symlink.
 */
async function physicalPath(vfs: Vfs, path: string): Promise<string> {
  const rest: string[] = [];
  for (let at = path; ; at = dirname(at)) {
    try {
      return join(await vfs.realpath(at), ...rest);
    } catch {
      if (dirname(at) === at) return join(at, ...rest);
      rest.unshift(basename(at));
    }
  }
}
