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
import { decodeMembership, encodeMembership, UNKNOWN_FORMAT_VERSION } from './format.js';
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
    // A file of another format version is whole: moving it away would throw away good state.
    if (view.startsWith(UNKNOWN_FORMAT_VERSION)) {
      throw new RingkvError(
        'RINGKV_CONFIG',
        `Membership file ${path}: ${view}; it was written by another version of ringkv: start the node with that version`,
      );
    }
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

/**
 * The CLEANUP_DUE file: present from a move's end until this node's cleanup
 * (mover.ts) has run, so that a node restarted in between (the cleanup waits
 * out the trailing time first) still drops what it no longer holds. A
 * marker left behind costs one extra cleanup, never data: the cleanup only
 * drops ranges the current view does not give this node.
 */
export const CLEANUP_DUE_FILE = 'CLEANUP_DUE';

/** Whether the marker is there (a damaged one counts: it holds nothing the cleanup needs). */
export async function loadCleanupDue(vfs: Vfs, dataDir: string): Promise<boolean> {
  try {
    await vfs.stat(join(dataDir, CLEANUP_DUE_FILE));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new RingkvError(
      'RINGKV_IO',
      `Cannot read ${join(dataDir, CLEANUP_DUE_FILE)}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
}

/** Sets (the epoch of the view whose cleanup is due) or clears the marker. */
export async function markCleanupDue(vfs: Vfs, dataDir: string, epoch: bigint | undefined): Promise<void> {
  const path = join(dataDir, CLEANUP_DUE_FILE);
  try {
    if (epoch !== undefined) {
      await replaceFileDurably(vfs, dataDir, path, Buffer.from(`${epoch}\n`));
      return;
    }
    await vfs.remove(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new RingkvError('RINGKV_IO', `Cannot write ${path}: ${errorMessage(err)}`, { cause: err });
  }
}
