/**
 * The MEMBERSHIP file in a node's data directory: the last view the node
 * adopted, in the layout of format.ts (checksummed). It is replaced whole
 * (write a temporary file, fsync, rename, fsync the directory), so a crash
 * leaves the old view or the new one, never a mixture; a node adopts a view
 * only once it is on disk, so a restarted node never goes back to an older one.
 *
 *   const view = await loadMembership(vfs, dataDir);   // undefined: none stored yet
 *   await saveMembership(vfs, dataDir, view);
 */
import { join } from 'node:path';
import { replaceFileDurably, type Vfs } from '../../storage/index.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import { decodeMembership, encodeMembership } from './format.js';
import type { Membership } from './membership.js';

export const MEMBERSHIP_FILE = 'MEMBERSHIP';

/** The stored view, or undefined when there is none; a damaged file is refused, naming it. */
export async function loadMembership(vfs: Vfs, dataDir: string): Promise<Membership | undefined> {
  const path = join(dataDir, MEMBERSHIP_FILE);
  let bytes: Buffer;
  try {
    bytes = await vfs.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RingkvError('RINGKV_IO', `Cannot read ${path}: ${errorMessage(err)}`, { cause: err });
  }
  const view = decodeMembership(bytes);
  if (typeof view === 'string') {
    throw new RingkvError(
      'RINGKV_CORRUPTION',
      `Damaged membership file ${path}: ${view}; move it away and start the node with --join ANY_MEMBER to fetch the membership again`,
    );
  }
  return view;
}

export async function saveMembership(vfs: Vfs, dataDir: string, view: Membership): Promise<void> {
  const path = join(dataDir, MEMBERSHIP_FILE);
  try {
    await replaceFileDurably(vfs, dataDir, path, encodeMembership(view));
  } catch (err) {
    throw new RingkvError('RINGKV_IO', `Cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
}
