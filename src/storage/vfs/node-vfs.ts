/**
 * The real file system: each call is one node:fs call on a plain descriptor.
 *
 * Files use the callback API rather than fs/promises' FileHandle: a positional
 * read or write through it costs one thread-pool trip and one promise, where
 * FileHandle.read costs several times more event-loop time per call, and
 * block reads (SSTables) and batch writes (WAL) are the engine's hot paths.
 */
import {
  close,
  closeSync,
  constants,
  fdatasync,
  fstat,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncate,
  open,
  openSync,
  read,
  readSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { link, mkdir, readdir, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsError } from './errors.js';
import type { OpenMode, OpenOptions, Vfs, VfsFile, VfsStat } from './index.js';

const FLAGS: Record<OpenMode, number> = {
  r: constants.O_RDONLY,
  'r+': constants.O_RDWR,
  wx: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
  w: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
};

/** Mode of created files, before the umask: what fs.open uses by default. */
const FILE_MODE = 0o666;

class NodeFile implements VfsFile {
  readonly path: string;
  readonly durableWrites: boolean;
  readonly #fd: number;

  constructor(path: string, fd: number, durableWrites: boolean) {
    this.path = path;
    this.#fd = fd;
    this.durableWrites = durableWrites;
  }

  get fd(): number {
    return this.#fd;
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      read(this.#fd, buffer, offset, length, position, (err, bytesRead) =>
        err ? reject(err) : resolve(bytesRead),
      );
    });
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      write(this.#fd, buffer, offset, length, position, (err, bytesWritten) =>
        err ? reject(err) : resolve(bytesWritten),
      );
    });
  }

  datasync(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fsync(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  truncate(length: number): Promise<void> {
    return new Promise((resolve, reject) =>
      ftruncate(this.#fd, length, (err) => (err ? reject(err) : resolve())),
    );
  }

  size(): Promise<number> {
    return new Promise((resolve, reject) =>
      fstat(this.#fd, (err, stats) => (err ? reject(err) : resolve(stats.size))),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => close(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return readSync(this.#fd, buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return writeSync(this.#fd, buffer, offset, length, position);
  }

  syncSync(): void {
    fsyncSync(this.#fd);
  }

  sizeSync(): number {
    return fstatSync(this.#fd).size;
  }

  closeSync(): void {
    closeSync(this.#fd);
  }
}

export class NodeVfs implements Vfs {
  readonly sharedAcrossThreads = true;

  open(path: string, mode: OpenMode, options?: OpenOptions): Promise<VfsFile> {
    // Where the platform has no O_DSYNC (Windows), the file says so and writers fdatasync instead.
    const dsync = options?.dsync === true && constants.O_DSYNC !== undefined;
    const flags = FLAGS[mode] | (dsync ? constants.O_DSYNC : 0);
    return new Promise((resolve, reject) =>
      open(path, flags, FILE_MODE, (err, fd) => (err ? reject(err) : resolve(new NodeFile(path, fd, dsync)))),
    );
  }

  openSync(path: string, mode: OpenMode): VfsFile {
    return new NodeFile(path, openSync(path, FLAGS[mode], FILE_MODE), false);
  }

  readFile(path: string): Promise<Buffer> {
    return readFile(path);
  }

  async stat(path: string): Promise<VfsStat> {
    const stats = await stat(path);
    return { size: stats.size, isDirectory: stats.isDirectory(), mtimeMs: stats.mtimeMs };
  }

  realpath(path: string): Promise<string> {
    return realpath(path);
  }

  list(dir: string): Promise<string[]> {
    return readdir(dir);
  }

  /**
   * One level at a time, never with fs.mkdir's `recursive`: on Node 20 that
   * loops forever, at full CPU in a thread-pool thread, on a path whose
   * parent exists but answers ENOENT to a new name (any path under /proc).
   * Here each step up makes the path shorter and the way down retraces those
   * steps once, so it ends after at most twice as many mkdir calls as `dir`
   * has components; a parent that exists yet refuses the name is an ENOENT
   * error that says so.
   */
  async mkdir(dir: string): Promise<void> {
    // Up from `dir`: the missing names, deepest first, until one is created or exists.
    const missing: string[] = [];
    const created: string[] = [];
    for (let at = dir; ; ) {
      const outcome = await mkdirOne(at, at === dir);
      if (outcome === 'created') created.push(at);
      if (outcome !== 'no-parent') break;
      const parent = dirname(at);
      if (parent === at) throw fsError('ENOENT', 'mkdir', dir, `${at} does not exist`);
      missing.push(at);
      at = parent;
    }
    // Down: the rest, each in a parent that now exists.
    for (let i = missing.length - 1; i >= 0; i--) {
      const at = missing[i]!;
      const outcome = await mkdirOne(at, at === dir);
      if (outcome === 'created') created.push(at);
      else if (outcome === 'no-parent') {
        throw fsError('ENOENT', 'mkdir', at, `${dirname(at)} exists but takes no new directory`);
      }
      // 'exists': another caller made it meanwhile.
    }
    // Each new name durable in its parent, from the deepest up.
    for (let i = created.length - 1; i >= 0; i--) await this.syncDir(dirname(created[i]!));
  }

  rename(from: string, to: string): Promise<void> {
    return rename(from, to);
  }

  link(from: string, to: string): Promise<void> {
    return link(from, to);
  }

  remove(path: string): Promise<void> {
    return unlink(path);
  }

  removeSync(path: string): void {
    unlinkSync(path);
  }

  syncDir(dir: string): Promise<void> {
    return new Promise((resolve, reject) =>
      open(dir, constants.O_RDONLY, (err, fd) => {
        if (err) return reject(err);
        fsync(fd, (syncErr) =>
          close(fd, (closeErr) => (syncErr || closeErr ? reject(syncErr ?? closeErr) : resolve())),
        );
      }),
    );
  }

  syncDirSync(dir: string): void {
    const fd = openSync(dir, constants.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * One non-recursive mkdir: 'created'; 'exists' when `path` is a directory
 * already (or a link to one); 'no-parent' on ENOENT. A file in the way is
 * EEXIST for `dir` itself (`isTarget`) and ENOTDIR for a parent, as fs.mkdir
 * with `recursive` says; any other error is thrown as it is.
 */
async function mkdirOne(path: string, isTarget: boolean): Promise<'created' | 'exists' | 'no-parent'> {
  try {
    await mkdir(path);
    return 'created';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no-parent';
    if (code !== 'EEXIST') throw err;
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(path)).isDirectory();
    } catch {
      throw err; // A dangling link, or gone meanwhile: the name is still not a directory.
    }
    if (isDirectory) return 'exists';
    throw fsError(isTarget ? 'EEXIST' : 'ENOTDIR', 'mkdir', path, 'not a directory');
  }
}

/** The one real file system; the default of every open option that takes a vfs. */
export const nodeVfs: Vfs = new NodeVfs();
