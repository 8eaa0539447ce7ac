/**
 * DirLock: one live process per data directory. Two processes writing one
 * WAL and one manifest would corrupt both, so the second one is refused.
 *
 * The lock is a file, `LOCK`, created with 'wx' (fails if it exists) and
 * holding the owner's PID. A lock whose PID is no longer alive was left by a
 * process that died without releasing it (kill -9, power loss) and is taken
 * over. Taking over renames the stale file away first: rename is atomic, so of
 * two processes racing for one stale lock only one moves it, and the other
 * then finds the winner's fresh lock.
 *
 * A process that has exited but whose parent has not yet collected its exit
 * status (a zombie) still has its PID, so kill(pid, 0) finds it; it holds no
 * files and runs no code, so it counts as dead. That is the state of a node
 * killed a moment ago under a supervisor that restarts it before reaping the
 * old one. On Linux /proc/PID/stat tells (state Z, or X while it is being
 * removed); where there is no /proc, a PID that kill() finds counts as alive.
 *
 * The lock file goes through a vfs like every other file (default: the real
 * file system). On an in-memory one it works alike: a vfs that crash() left
 * holds the crashed process's PID, ours, in a lock this process does not
 * hold (heldPaths is per vfs), which is taken over as a dead owner's.
 *
 * Usage:
 *   const lock = await acquireDirLock('/var/lib/ringkv');   // RINGKV_LOCKED if held
 *   ...
 *   await lock.release();
 */
import { join, resolve } from 'node:path';
import { errorMessage, RingkvError } from '../util/errors.js';
import { isFsError, nodeVfs, type Vfs, writeFully } from './vfs/index.js';
import { processState } from './vfs/proc.js';

export const LOCK_FILE_NAME = 'LOCK';

/** A lock file with no readable PID younger than this may be a live owner still writing its PID. */
const UNREADABLE_LOCK_GRACE_MS = 10_000;
/** Each take-over attempt loses to another process at most once per round; a few rounds settle it. */
const ACQUIRE_ATTEMPTS_MAX = 5;

/** Locks this process holds, by vfs and path: a second acquire from the same process is refused too. */
const heldPaths = new WeakMap<Vfs, Set<string>>();

function held(vfs: Vfs): Set<string> {
  let paths = heldPaths.get(vfs);
  if (paths === undefined) {
    paths = new Set();
    heldPaths.set(vfs, paths);
  }
  return paths;
}

export class DirLock {
  readonly path: string;
  readonly #vfs: Vfs;
  #released = false;

  constructor(path: string, vfs: Vfs = nodeVfs) {
    this.path = path;
    this.#vfs = vfs;
  }

  /** Removes the lock file; safe to call twice. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    held(this.#vfs).delete(this.path);
    try {
      // Only remove a lock that is still ours: an operator may have removed it by hand.
      if (parsePid(await readText(this.#vfs, this.path)) === process.pid) await this.#vfs.remove(this.path);
    } catch (err) {
      if (!isFsError(err, 'ENOENT')) throw ioError(this.path, err);
    }
  }
}

/** Takes the lock of `dir` (which must exist), or rejects with RINGKV_LOCKED / RINGKV_IO. */
export async function acquireDirLock(dir: string, vfs: Vfs = nodeVfs): Promise<DirLock> {
  const path = join(resolve(dir), LOCK_FILE_NAME);
  if (held(vfs).has(path)) throw lockedError(dir, process.pid);
  for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS_MAX; attempt++) {
    if (await tryCreate(vfs, path)) {
      held(vfs).add(path);
      return new DirLock(path, vfs);
    }
    const content = await readLock(vfs, path);
    if (content === undefined) continue; // Removed meanwhile: try again.
    const pid = parsePid(content);
    if (pid === undefined) {
      if (Date.now() - (await lockAgeBase(vfs, path)) < UNREADABLE_LOCK_GRACE_MS) {
        throw new RingkvError('RINGKV_LOCKED', `Data directory ${dir} is locked: ${path} has no PID yet`);
      }
    } else if (await isAlive(pid)) {
      throw lockedError(dir, pid);
    }
    await takeOver(vfs, path, content);
  }
  throw new RingkvError(
    'RINGKV_LOCKED',
    `Data directory ${dir} is locked: other processes keep taking ${path}`,
  );
}

async function tryCreate(vfs: Vfs, path: string): Promise<boolean> {
  let file: Awaited<ReturnType<Vfs['open']>>;
  try {
    file = await vfs.open(path, 'wx');
  } catch (err) {
    if (isFsError(err, 'EEXIST')) return false;
    throw ioError(path, err);
  }
  try {
    const pid = Buffer.from(`${process.pid}\n`, 'utf8');
    await writeFully(file, pid, 0, pid.length, 0);
  } catch (err) {
    throw ioError(path, err);
  } finally {
    await file.close().catch(() => undefined);
  }
  return true;
}

async function readText(vfs: Vfs, path: string): Promise<string> {
  return (await vfs.readFile(path)).toString('utf8');
}

async function readLock(vfs: Vfs, path: string): Promise<string | undefined> {
  try {
    return await readText(vfs, path);
  } catch (err) {
    if (isFsError(err, 'ENOENT')) return undefined;
    throw ioError(path, err);
  }
}

async function lockAgeBase(vfs: Vfs, path: string): Promise<number> {
  try {
    return (await vfs.stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Moves a stale lock aside, then checks that what moved is the stale lock that
 * was read and not a fresh one another process created in between; a fresh
 * one is put back (and found live on the next attempt).
 */
async function takeOver(vfs: Vfs, path: string, staleContent: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}`;
  try {
    await vfs.rename(path, aside);
  } catch (err) {
    if (isFsError(err, 'ENOENT')) return; // Another process moved it first.
    throw ioError(path, err);
  }
  const moved = await readLock(vfs, aside);
  if (moved !== undefined && moved !== staleContent) {
    try {
      await vfs.rename(aside, path);
    } catch (err) {
      throw ioError(path, err);
    }
    return;
  }
  await vfs.remove(aside).catch(() => undefined);
}

function parsePid(content: string): number | undefined {
  const text = content.trim();
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
  return Number(text);
}

/** Whether `pid` is a running process: one that exists and has not exited (module comment). */
export async function isAlive(pid: number): Promise<boolean> {
  // Our own PID in a lock we do not hold (heldPaths) is a dead process's PID reused by us.
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !(await hasExited(pid));
}

/**
 * True when /proc says that `pid` has exited (a zombie, or gone by now:
 * reaped since kill() found it); false when it runs or /proc cannot tell.
 */
async function hasExited(pid: number): Promise<boolean> {
  const state = await processState(pid);
  return state === 'gone' || state === 'Z' || state === 'X' || state === 'x';
}

function lockedError(dir: string, pid: number): RingkvError {
  return new RingkvError('RINGKV_LOCKED', `Data directory ${dir} is locked by process ${pid}`);
}

function ioError(path: string, err: unknown): RingkvError {
  return new RingkvError('RINGKV_IO', `Cannot use lock file ${path}: ${errorMessage(err)}`, { cause: err });
}
