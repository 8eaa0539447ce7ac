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
 * Usage:
 *   const lock = await acquireDirLock('/var/lib/ringkv');   // RINGKV_LOCKED if held
 *   ...
 *   await lock.release();
 */
import { existsSync } from 'node:fs';
import { readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errorMessage, RingkvError } from '../util/errors.js';

export const LOCK_FILE_NAME = 'LOCK';

/** A lock file with no readable PID younger than this may be a live owner still writing its PID. */
const UNREADABLE_LOCK_GRACE_MS = 10_000;
/** Each take-over attempt loses to another process at most once per round; a few rounds settle it. */
const ACQUIRE_ATTEMPTS_MAX = 5;

/** Locks this process holds, by path: a second acquire from the same process is refused too. */
const heldPaths = new Set<string>();

export class DirLock {
  readonly path: string;
  #released = false;

  constructor(path: string) {
    this.path = path;
  }

  /** Removes the lock file; safe to call twice. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    heldPaths.delete(this.path);
    try {
      // Only remove a lock that is still ours: an operator may have removed it by hand.
      if (parsePid(await readFile(this.path, 'utf8')) === process.pid) await unlink(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(this.path, err);
    }
  }
}

/** Takes the lock of `dir` (which must exist), or rejects with RINGKV_LOCKED / RINGKV_IO. */
export async function acquireDirLock(dir: string): Promise<DirLock> {
  const path = join(resolve(dir), LOCK_FILE_NAME);
  if (heldPaths.has(path)) throw lockedError(dir, process.pid);
  for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS_MAX; attempt++) {
    if (await tryCreate(path)) {
      heldPaths.add(path);
      return new DirLock(path);
    }
    const content = await readLock(path);
    if (content === undefined) continue; // Removed meanwhile: try again.
    const pid = parsePid(content);
    if (pid === undefined) {
      if (Date.now() - (await lockAgeBase(path)) < UNREADABLE_LOCK_GRACE_MS) {
        throw new RingkvError('RINGKV_LOCKED', `Data directory ${dir} is locked: ${path} has no PID yet`);
      }
    } else if (await isAlive(pid)) {
      throw lockedError(dir, pid);
    }
    await takeOver(path, content);
  }
  throw new RingkvError(
    'RINGKV_LOCKED',
    `Data directory ${dir} is locked: other processes keep taking ${path}`,
  );
}

async function tryCreate(path: string): Promise<boolean> {
  try {
    await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioError(path, err);
  }
}

async function readLock(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(path, err);
  }
}

async function lockAgeBase(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Moves a stale lock aside, then checks that what moved is the stale lock that
 * was read and not a fresh one another process created in between; a fresh
 * one is put back (and found live on the next attempt).
 */
async function takeOver(path: string, staleContent: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // Another process moved it first.
    throw ioError(path, err);
  }
  const moved = await readLock(aside);
  if (moved !== undefined && moved !== staleContent) {
    try {
      await rename(aside, path);
    } catch (err) {
      throw ioError(path, err);
    }
    return;
  }
  await unlink(aside).catch(() => undefined);
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

/** Whether this system has /proc/PID/stat to ask (Linux), checked once. */
let procStat: boolean | undefined;

/** True when /proc says that `pid` has exited (a zombie, or gone by now); false when it runs or /proc cannot tell. */
async function hasExited(pid: number): Promise<boolean> {
  procStat ??= existsSync('/proc/self/stat');
  if (!procStat) return false;
  let content: string;
  try {
    content = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    // Gone since kill() found it (reaped meanwhile). Anything else (hidden by hidepid): cannot tell.
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  // "PID (COMMAND) STATE ...": the command may hold spaces and parentheses, so the state follows the last ')'.
  const state = content.charAt(content.lastIndexOf(')') + 2);
  return state === 'Z' || state === 'X' || state === 'x';
}

function lockedError(dir: string, pid: number): RingkvError {
  return new RingkvError('RINGKV_LOCKED', `Data directory ${dir} is locked by process ${pid}`);
}

function ioError(path: string, err: unknown): RingkvError {
  return new RingkvError('RINGKV_IO', `Cannot use lock file ${path}: ${errorMessage(err)}`, { cause: err });
}
