/**
 * The file-system seam: every file operation of the storage engine and the
 * hint store goes through a Vfs, so that tests can swap the disk.
 *
 * - nodeVfs (node-vfs.ts): the real file system, a thin pass-through to
 *   node:fs. The only place outside vfs/ that may import node:fs is the CLI.
 * - MemoryVfs (memory-vfs.ts): files in memory that remember what was
 *   fsynced; crash() gives the state a power loss could leave, so a test can
 *   cut the power at any moment and check what recovery makes of it.
 * - FaultyVfs (faulty-vfs.ts): wraps another vfs and fails chosen calls
 *   (EIO, ENOSPC) or makes writes short.
 *
 * The interface is what the engine needs and no more: positional reads and
 * writes on open files, fsync and fdatasync, truncation, and on names:
 * create, list, rename, remove, directory fsync. Each file method has a
 * synchronous twin where the flush and compaction jobs need one (they run
 * with blocking I/O in a worker thread, never on the event loop).
 *
 * Errors are Node's: an Error with `code` ('ENOENT', 'EEXIST', 'EIO',
 * 'ENOSPC', ...), `syscall` and `path`, whichever vfs raised it, so callers
 * branch on `code` as they would with node:fs.
 *
 * Durability is the caller's job, as with POSIX: a write is durable once the
 * file is fsynced (or fdatasynced, or the file was opened with `dsync` and
 * the write returned); a new, renamed or removed name once its directory is
 * fsynced. mkdir() is the exception: it fsyncs what it creates.
 */
import { errorMessage, RingkvError } from '../../util/errors.js';

export { type FaultOp, type FaultRule, FaultyVfs } from './faulty-vfs.js';
export { MemoryVfs, type MemoryVfsOptions, seededRandom } from './memory-vfs.js';
export { NodeVfs, nodeVfs } from './node-vfs.js';

/**
 * How a file is opened:
 *   'r'   read only; the file must exist
 *   'r+'  read and write; the file must exist
 *   'wx'  write only; created, failing with EEXIST if the name exists
 *   'w'   write only; created, or emptied if it exists
 */
export type OpenMode = 'r' | 'r+' | 'wx' | 'w';

export interface OpenOptions {
  /**
   * Open with O_DSYNC where the platform has it: each write returns once its
   * data is durable. The file's `durableWrites` says whether it took.
   */
  readonly dsync?: boolean | undefined;
}

export interface VfsStat {
  readonly size: number;
  readonly isDirectory: boolean;
  readonly mtimeMs: number;
}

/** An open file. Positions are absolute; there is no file cursor. */
export interface VfsFile {
  readonly path: string;
  /** Opened with `dsync` and the platform honours it: writes are durable when they return. */
  readonly durableWrites: boolean;
  /** The OS file descriptor, for native code that reads it in the thread pool; only real files have one. */
  readonly fd?: number;
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; the count read, 0 at the end. */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes up to `length` bytes; the count written, which may be short (writeFully() loops). */
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** fdatasync: the data (and the size) durable. */
  datasync(): Promise<void>;
  /** fsync: the data and every attribute durable. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number;
  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number;
  syncSync(): void;
  sizeSync(): number;
  closeSync(): void;
}

export interface Vfs {
  /**
   * True when a worker thread reaches the same files by path through its own
   * instance (the real file system): the engine then runs flushes and
   * compactions in worker threads. Otherwise (in-memory or fault-injecting)
   * they run in-process, on the vfs instance itself.
   */
  readonly sharedAcrossThreads: boolean;

  open(path: string, mode: OpenMode, options?: OpenOptions): Promise<VfsFile>;
  openSync(path: string, mode: OpenMode): VfsFile;
  /** The whole file. */
  readFile(path: string): Promise<Buffer>;
  stat(path: string): Promise<VfsStat>;
  /** The path with symlinks followed and `.`/`..` resolved; ENOENT when it does not exist. */
  realpath(path: string): Promise<string>;
  /** The names in a directory (not '.' and '..'), in no particular order. */
  list(dir: string): Promise<string[]>;
  /** Creates `dir` and any missing parent, and fsyncs each parent it added a name to. */
  mkdir(dir: string): Promise<void>;
  /** Atomic: `to` names the old file or the new one, never neither. Replaces a file at `to`. */
  rename(from: string, to: string): Promise<void>;
  /** A second name for the file at `from` (a hard link): EEXIST if `to` exists. */
  link(from: string, to: string): Promise<void>;
  /** Removes a file's name (unlink). */
  remove(path: string): Promise<void>;
  removeSync(path: string): void;
  /** fsync of a directory: makes the names created, renamed or removed in it durable. */
  syncDir(dir: string): Promise<void>;
  syncDirSync(dir: string): void;
}

/** Writes all `length` bytes of `buffer` from `offset` at `position`, over as many calls as it takes. */
export async function writeFully(
  file: Pick<VfsFile, 'write'>,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const written = await file.write(buffer, offset + done, length - done, position + done);
    if (written <= 0) throw new Error(`write() wrote ${written} bytes of ${length - done}`);
    done += written;
  }
}

/** writeFully() for the synchronous twin. */
export function writeFullySync(
  file: VfsFile,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
): void {
  let done = 0;
  while (done < length) {
    const written = file.writeSync(buffer, offset + done, length - done, position + done);
    if (written <= 0) throw new Error(`write() wrote ${written} bytes of ${length - done}: ${file.path}`);
    done += written;
  }
}

/** Cuts `path` to `length` bytes and fsyncs it. */
export async function truncateDurably(vfs: Vfs, path: string, length: number): Promise<void> {
  const file = await vfs.open(path, 'r+');
  try {
    await file.truncate(length);
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * Replaces `path` with `data` atomically and durably: writes `path`.tmp,
 * fsyncs it, renames it over `path`, fsyncs the directory. A crash at any
 * moment leaves the old file or the new one, whole (and maybe the .tmp,
 * which the next replace overwrites).
 *
 * `onRenamed` is called once the new file holds the name: a failure after
 * it (the directory's fsync) leaves the new file in place, and either file
 * may be the one a power loss keeps.
 */
export async function replaceFileDurably(
  vfs: Vfs,
  dir: string,
  path: string,
  data: Buffer,
  onRenamed?: () => void,
): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await vfs.open(tmp, 'w');
  try {
    await writeFully(file, data, 0, data.length, 0);
    await file.sync();
  } finally {
    await file.close();
  }
  await vfs.rename(tmp, path);
  onRenamed?.();
  await vfs.syncDir(dir);
}

/** Whether `path` exists (as anything); a failure other than ENOENT is RINGKV_IO. */
export async function pathExists(vfs: Vfs, path: string): Promise<boolean> {
  try {
    await vfs.stat(path);
    return true;
  } catch (err) {
    if (isFsError(err, 'ENOENT')) return false;
    throw new RingkvError('RINGKV_IO', `Cannot read ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Whether `err` is a file-system error with `code` ('ENOENT', 'EEXIST', ...). */
export function isFsError(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

/** Codes that mean the disk is full: no space left (ENOSPC), or the user's quota used up (EDQUOT). */
const NO_SPACE_CODES: ReadonlySet<unknown> = new Set(['ENOSPC', 'EDQUOT', 'RINGKV_NO_SPACE']);
/** How deep isNoSpace() follows `cause`: further than any wrapping the engine does. */
const CAUSE_DEPTH_MAX = 8;

/** Whether `err`, or an error it was caused by, says the disk or the quota is full. */
export function isNoSpace(err: unknown): boolean {
  let e = err;
  for (let depth = 0; e instanceof Error && depth < CAUSE_DEPTH_MAX; depth++, e = e.cause) {
    if (NO_SPACE_CODES.has((e as NodeJS.ErrnoException).code)) return true;
  }
  return false;
}

/**
 * A failed file operation as the engine reports it: RINGKV_NO_SPACE, its
 * message led by "Disk full", when the disk or the quota is full, so that
 * writes answer 507 (http/errors.ts); RINGKV_IO otherwise. `what` says what
 * failed and names the file or directory.
 *
 *   storageError('WAL write failed: /data/000007.log', enospc)
 *   // RINGKV_NO_SPACE: Disk full: WAL write failed: /data/000007.log: ENOSPC: no space left on device, write
 */
export function storageError(what: string, cause: unknown): RingkvError {
  if (!isNoSpace(cause)) return new RingkvError('RINGKV_IO', `${what}: ${errorMessage(cause)}`, { cause });
  // A cause that already says so is not told twice.
  const detail = errorMessage(cause).replace(/^Disk full: /, '');
  return new RingkvError('RINGKV_NO_SPACE', `Disk full: ${what}: ${detail}`, { cause });
}
