/**
 * A file system in memory that can lose power.
 *
 * Every file keeps two contents: the current one, which reads see, and the
 * durable one, as of its last fsync or fdatasync, plus the writes and
 * truncations made since, in order. Every directory likewise keeps its
 * current names, its durable names (as of its last fsync) and the creates,
 * renames and removes made since, in order.
 *
 * crash(rng) returns a new MemoryVfs holding what a power loss at this
 * moment could leave on disk, and stops this one (every later call, and
 * every call still in flight, fails with EIO, as on a machine that is off):
 * - a file keeps its durable content and, of the writes since, by a seeded
 *   random choice per file: none, all, or a prefix of them whose last write
 *   is torn: a prefix of its bytes, sometimes with the rest of its range as
 *   zeros (the size reached the disk, those pages did not);
 * - a directory keeps its durable names and, of the changes since, none, all
 *   or a prefix (metadata reaches the disk in order on a journaling file
 *   system, and a rename is one change: its target names the old file or
 *   the new one, never neither).
 * The choices are made in path order from `rng` alone, so a seed gives the
 * same state every time. crashAtOperation(n, rng) cuts the power at the n-th
 * state-changing call instead (a write, sync, create, rename, remove, ...),
 * before it or while it is under way, and the call fails with EIO: a test
 * picks n at random to crash at any moment, including between a write and
 * its fsync or a rename and the directory's fsync.
 *
 * A write through a file opened with `dsync` is durable when its promise
 * resolves, not before, so a crash while it is in flight may tear it. All
 * other calls take effect when made and resolve on the next microtask.
 * Paths are POSIX, resolved from '/', which always exists.
 *
 * Example:
 *   const vfs = new MemoryVfs();
 *   const engine = await LsmEngine.open({ dir: '/db', sync: true, vfs });
 *   await engine.write(entry);                      // acknowledged: fdatasynced
 *   const after = vfs.crash(seededRandom(seed));    // power loss
 *   const again = await LsmEngine.open({ dir: '/db', sync: true, vfs: after });
 */
import { posix } from 'node:path';
import { fsError } from './errors.js';
import type { OpenMode, OpenOptions, Vfs, VfsFile, VfsStat } from './index.js';

export interface MemoryVfsOptions {
  /**
   * Whether `dsync` opens give durable writes, as O_DSYNC does on Linux
   * (default true). false: as on a platform without O_DSYNC, so writers
   * fdatasync after their writes and a crash may tear an unsynced write.
   */
  readonly dsync?: boolean;
}

/** A small seeded generator (mulberry32): numbers in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes that grow as written: a buffer with spare room and the size in use. */
class Bytes {
  buf: Buffer;
  size: number;

  constructor(buf: Buffer = Buffer.alloc(0), size = buf.length) {
    this.buf = buf;
    this.size = size;
  }

  copy(): Bytes {
    return new Bytes(Buffer.from(this.buf.subarray(0, this.size)));
  }

  write(position: number, src: Uint8Array, offset: number, length: number): void {
    this.#reserve(position + length);
    // A gap between the end and `position` reads as zeros: #reserve's fresh bytes are zero, and truncate() zeroes.
    this.buf.set(src.subarray(offset, offset + length), position);
    this.size = Math.max(this.size, position + length);
  }

  truncate(length: number): void {
    if (length < this.size) this.buf.fill(0, length, this.size);
    else this.#reserve(length);
    this.size = length;
  }

  read(target: Uint8Array, offset: number, length: number, position: number): number {
    const n = Math.max(0, Math.min(length, this.size - position));
    if (n > 0) target.set(this.buf.subarray(position, position + n), offset);
    return n;
  }

  apply(op: ContentOp): void {
    if (op.kind === 'write') this.write(op.position, op.bytes, 0, op.bytes.length);
    else this.truncate(op.length);
  }

  #reserve(bytes: number): void {
    if (bytes <= this.buf.length) return;
    const grown = Buffer.alloc(Math.max(bytes, 2 * this.buf.length, 4096));
    this.buf.copy(grown, 0, 0, this.size);
    this.buf = grown;
  }
}

type ContentOp =
  | { readonly kind: 'write'; readonly position: number; readonly bytes: Buffer }
  | { readonly kind: 'truncate'; readonly length: number };

class FileNode {
  readonly kind = 'file';
  current: Bytes;
  durable: Bytes;
  /** Writes and truncations since the last sync, oldest first. */
  pending: ContentOp[] = [];
  mtimeMs = Date.now();

  constructor(content = new Bytes()) {
    this.current = content;
    this.durable = content.copy();
  }

  /** Makes the pending changes durable, all of them or those up to and including `through`. */
  sync(through?: ContentOp): void {
    let count = this.pending.length;
    if (through !== undefined) {
      const at = this.pending.indexOf(through);
      if (at < 0) return; // Already durable.
      count = at + 1;
    }
    for (let i = 0; i < count; i++) this.durable.apply(this.pending[i]!);
    this.pending.splice(0, count);
  }
}

type DirOp =
  | { readonly kind: 'link'; readonly name: string; readonly node: Node }
  | { readonly kind: 'unlink'; readonly name: string }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string; readonly node: Node };

class DirNode {
  readonly kind = 'dir';
  readonly entries = new Map<string, Node>();
  durable = new Map<string, Node>();
  /** Name changes since the last sync, oldest first. */
  pending: DirOp[] = [];
  mtimeMs = Date.now();

  change(op: DirOp): void {
    replay(this.entries, op);
    this.pending.push(op);
    this.mtimeMs = Date.now();
  }

  sync(): void {
    this.durable = new Map(this.entries);
    this.pending = [];
  }
}

type Node = FileNode | DirNode;

function replay(entries: Map<string, Node>, op: DirOp): void {
  if (op.kind === 'link') entries.set(op.name, op.node);
  else if (op.kind === 'unlink') entries.delete(op.name);
  else {
    entries.delete(op.from);
    entries.set(op.to, op.node);
  }
}

/**
 * How much of `count` changes made since the last sync a crash keeps: none,
 * all, or a prefix, a third of the time each; 'torn' asks for a prefix whose
 * next change is partly kept.
 */
function choose(count: number, rng: () => number): { keep: number; torn: boolean } {
  if (count === 0) return { keep: 0, torn: false };
  const r = rng();
  if (r < 1 / 3) return { keep: 0, torn: false };
  if (r < 2 / 3) return { keep: count, torn: false };
  return { keep: Math.floor(rng() * count), torn: true };
}

class MemoryFile implements VfsFile {
  readonly path: string;
  readonly durableWrites: boolean;
  readonly #vfs: MemoryVfs;
  readonly #node: FileNode;
  readonly #readable: boolean;
  readonly #writable: boolean;
  #closed = false;

  constructor(vfs: MemoryVfs, path: string, node: FileNode, mode: OpenMode, durableWrites: boolean) {
    this.#vfs = vfs;
    this.path = path;
    this.#node = node;
    this.#readable = mode === 'r' || mode === 'r+';
    this.#writable = mode !== 'r';
    this.durableWrites = durableWrites;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const n = this.readSync(buffer, offset, length, position);
    return this.#vfs._complete(n);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const op = this.#write('write', buffer, offset, length, position);
    await this.#vfs._complete(undefined);
    // Durable once the caller learns it is done: a crash before that may tear it.
    if (this.durableWrites) this.#node.sync(op);
    return length;
  }

  async datasync(): Promise<void> {
    this.syncSync('fdatasync');
    await this.#vfs._complete(undefined);
  }

  async sync(): Promise<void> {
    this.syncSync();
    await this.#vfs._complete(undefined);
  }

  async truncate(length: number): Promise<void> {
    this.#check('ftruncate', true);
    this.#vfs._mutate('ftruncate', this.path, () => {
      this.#node.current.truncate(length);
      this.#node.pending.push({ kind: 'truncate', length });
      this.#node.mtimeMs = Date.now();
    });
    await this.#vfs._complete(undefined);
  }

  async size(): Promise<number> {
    return this.#vfs._complete(this.sizeSync());
  }

  async close(): Promise<void> {
    this.closeSync();
    await this.#vfs._complete(undefined);
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.#check('read', false);
    if (!this.#readable) throw fsError('EBADF', 'read', this.path);
    return this.#node.current.read(buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const op = this.#write('write', buffer, offset, length, position);
    if (this.durableWrites) this.#node.sync(op);
    return length;
  }

  syncSync(syscall = 'fsync'): void {
    this.#check(syscall, false);
    this.#vfs._mutate(syscall, this.path);
    this.#node.sync();
  }

  sizeSync(): number {
    this.#check('fstat', false);
    return this.#node.current.size;
  }

  closeSync(): void {
    this.#check('close', false);
    this.#closed = true;
  }

  #write(syscall: string, buffer: Uint8Array, offset: number, length: number, position: number): ContentOp {
    this.#check(syscall, true);
    // A copy: the caller may reuse its buffer once the write returns, and a crash may still keep these bytes.
    const op: ContentOp = {
      kind: 'write',
      position,
      bytes: Buffer.from(buffer.subarray(offset, offset + length)),
    };
    this.#vfs._mutate(syscall, this.path, () => {
      this.#node.current.write(position, buffer, offset, length);
      this.#node.pending.push(op);
      this.#node.mtimeMs = Date.now();
    });
    return op;
  }

  #check(syscall: string, writing: boolean): void {
    if (this.#closed) throw fsError('EBADF', syscall, this.path);
    this.#vfs._checkRunning(syscall, this.path);
    if (writing && !this.#writable) throw fsError('EBADF', syscall, this.path);
  }
}

export class MemoryVfs implements Vfs {
  /** Its files live in this thread's memory: flushes and compactions run in-process. */
  readonly sharedAcrossThreads = false;
  readonly #options: MemoryVfsOptions;
  #root = new DirNode();
  #operations = 0;
  #stopped = false;
  #crashAt:
    | { readonly operation: number; readonly rng: () => number; resolve(vfs: MemoryVfs): void }
    | undefined;

  constructor(options: MemoryVfsOptions = {}) {
    this.#options = options;
  }

  /** State-changing calls made so far (what crashAtOperation counts). */
  get operations(): number {
    return this.#operations;
  }

  /** True once crash() stopped this instance. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * The state a power loss now could leave, as a new vfs (module comment).
   * This instance stops: every call fails with EIO from now on.
   */
  crash(rng: () => number): MemoryVfs {
    const next = new MemoryVfs(this.#options);
    const memo = new Map<Node, Node>();
    next.#root = crashDir(this.#root, rng, memo);
    this.#stopped = true;
    this.#crashAt = undefined;
    return next;
  }

  /**
   * Cuts the power just before the `operation`-th state-changing call
   * counted from the first (1 = the next call if none was made yet), which
   * fails with EIO; resolves with the crashed state (crash()).
   */
  crashAtOperation(operation: number, rng: () => number): Promise<MemoryVfs> {
    return new Promise((resolve) => {
      this.#crashAt = { operation, rng, resolve };
    });
  }

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<VfsFile> {
    const file = this.#open(path, mode, options?.dsync === true && this.#options.dsync !== false);
    return this._complete(file);
  }

  openSync(path: string, mode: OpenMode): VfsFile {
    return this.#open(path, mode, false);
  }

  async readFile(path: string): Promise<Buffer> {
    const node = this.#fileAt(path, 'open');
    return this._complete(Buffer.from(node.current.buf.subarray(0, node.current.size)));
  }

  async stat(path: string): Promise<VfsStat> {
    this._checkRunning('stat', path);
    const node = this.#lookup(path, 'stat');
    if (node === undefined) throw fsError('ENOENT', 'stat', path);
    const size = node.kind === 'file' ? node.current.size : 4096;
    return this._complete({ size, isDirectory: node.kind === 'dir', mtimeMs: node.mtimeMs });
  }

  /** No symlinks here: the path normalised, once it is there. */
  async realpath(path: string): Promise<string> {
    this._checkRunning('realpath', path);
    if (this.#lookup(path, 'realpath') === undefined) throw fsError('ENOENT', 'realpath', path);
    return this._complete(posix.resolve('/', path));
  }

  async list(dir: string): Promise<string[]> {
    this._checkRunning('scandir', dir);
    const node = this.#lookup(dir, 'scandir');
    if (node === undefined) throw fsError('ENOENT', 'scandir', dir);
    if (node.kind !== 'dir') throw fsError('ENOTDIR', 'scandir', dir);
    return this._complete([...node.entries.keys()]);
  }

  async mkdir(dir: string): Promise<void> {
    this._checkRunning('mkdir', dir);
    let node: DirNode = this.#root;
    let at = '/';
    const names = components(dir);
    for (const [i, name] of names.entries()) {
      at = posix.join(at, name);
      const child = node.entries.get(name);
      if (child === undefined) {
        const parent = node;
        const created = new DirNode();
        this._mutate('mkdir', at, () => {
          parent.change({ kind: 'link', name, node: created });
          // mkdir() makes what it creates durable (index.ts).
          parent.sync();
        });
        node = created;
      } else if (child.kind === 'dir') {
        node = child;
      } else {
        throw fsError(i === names.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdir', dir);
      }
    }
    await this._complete(undefined);
  }

  async rename(from: string, to: string): Promise<void> {
    this._checkRunning('rename', from);
    const source = this.#parentOf(from, 'rename');
    const target = this.#parentOf(to, 'rename');
    const node = source.dir.entries.get(source.name);
    if (node === undefined) throw fsError('ENOENT', 'rename', from);
    const replaced = target.dir.entries.get(target.name);
    if (replaced?.kind === 'dir') throw fsError('EISDIR', 'rename', to);
    if (replaced === node) return this._complete(undefined);
    this._mutate('rename', from, () => {
      if (source.dir === target.dir) {
        source.dir.change({ kind: 'rename', from: source.name, to: target.name, node });
      } else {
        target.dir.change({ kind: 'link', name: target.name, node });
        source.dir.change({ kind: 'unlink', name: source.name });
      }
    });
    await this._complete(undefined);
  }

  async link(from: string, to: string): Promise<void> {
    this._checkRunning('link', from);
    const source = this.#parentOf(from, 'link');
    const target = this.#parentOf(to, 'link');
    const node = source.dir.entries.get(source.name);
    if (node === undefined) throw fsError('ENOENT', 'link', from);
    if (node.kind === 'dir') throw fsError('EPERM', 'link', from);
    if (target.dir.entries.has(target.name)) throw fsError('EEXIST', 'link', to);
    // Both names are the same file: a crash keeps the new name only if the directory was synced.
    this._mutate('link', to, () => target.dir.change({ kind: 'link', name: target.name, node }));
    await this._complete(undefined);
  }

  async remove(path: string): Promise<void> {
    this.removeSync(path);
    await this._complete(undefined);
  }

  removeSync(path: string): void {
    this._checkRunning('unlink', path);
    const { dir, name } = this.#parentOf(path, 'unlink');
    const node = dir.entries.get(name);
    if (node === undefined) throw fsError('ENOENT', 'unlink', path);
    if (node.kind === 'dir') throw fsError('EISDIR', 'unlink', path);
    this._mutate('unlink', path, () => dir.change({ kind: 'unlink', name }));
  }

  async syncDir(dir: string): Promise<void> {
    this.syncDirSync(dir);
    await this._complete(undefined);
  }

  syncDirSync(dir: string): void {
    this._checkRunning('fsync', dir);
    const node = this.#lookup(dir, 'open');
    if (node === undefined) throw fsError('ENOENT', 'open', dir);
    this._mutate('fsync', dir);
    node.sync();
  }

  /** For MemoryFile: fails once the power is off. */
  _checkRunning(syscall: string, path: string): void {
    if (this.#stopped) throw fsError('EIO', syscall, path, 'the power is off');
  }

  /**
   * For MemoryFile: a state-changing call, whose change `apply` makes (in
   * memory: what a crash may or may not keep). At the call crashAtOperation()
   * chose, the power goes first, or, half the time, while the call is under
   * way: its change is made (a write is in the page cache, a rename in the
   * directory), then the power goes, and the call fails.
   */
  _mutate(syscall: string, path: string, apply?: () => void): void {
    this.#operations++;
    const crashAt = this.#crashAt;
    if (crashAt !== undefined && this.#operations >= crashAt.operation) {
      if (apply !== undefined && crashAt.rng() < 0.5) apply();
      crashAt.resolve(this.crash(crashAt.rng));
      this._checkRunning(syscall, path);
    }
    apply?.();
  }

  /** For MemoryFile: a call's answer, on the next microtask, unless the power went off meanwhile. */
  async _complete<T>(value: T): Promise<T> {
    await undefined;
    this._checkRunning('io', '');
    return value;
  }

  #open(path: string, mode: OpenMode, dsync: boolean): MemoryFile {
    this._checkRunning('open', path);
    const { dir, name } = this.#parentOf(path, 'open');
    const found = dir.entries.get(name);
    if (found?.kind === 'dir') throw fsError('EISDIR', 'open', path);
    let node: FileNode;
    if (found !== undefined && mode === 'wx') throw fsError('EEXIST', 'open', path);
    if (found !== undefined) {
      node = found;
      if (mode === 'w') {
        this._mutate('open', path, () => {
          found.current.truncate(0);
          found.pending.push({ kind: 'truncate', length: 0 });
        });
      }
    } else if (mode === 'r' || mode === 'r+') {
      throw fsError('ENOENT', 'open', path);
    } else {
      const created = new FileNode();
      this._mutate('open', path, () => dir.change({ kind: 'link', name, node: created }));
      node = created;
    }
    return new MemoryFile(this, posix.resolve('/', path), node, mode, dsync);
  }

  #fileAt(path: string, syscall: string): FileNode {
    this._checkRunning(syscall, path);
    const node = this.#lookup(path, syscall);
    if (node === undefined) throw fsError('ENOENT', syscall, path);
    if (node.kind === 'dir') throw fsError('EISDIR', 'read', path);
    return node;
  }

  #lookup(path: string, syscall: string): Node | undefined {
    let node: Node = this.#root;
    for (const name of components(path)) {
      if (node.kind !== 'dir') throw fsError('ENOTDIR', syscall, path);
      const child: Node | undefined = node.entries.get(name);
      if (child === undefined) return undefined;
      node = child;
    }
    return node;
  }

  #parentOf(path: string, syscall: string): { dir: DirNode; name: string } {
    const names = components(path);
    const name = names.pop();
    if (name === undefined) throw fsError('EISDIR', syscall, path);
    const dir = this.#lookup(`/${names.join('/')}`, syscall);
    if (dir === undefined) throw fsError('ENOENT', syscall, path);
    if (dir.kind !== 'dir') throw fsError('ENOTDIR', syscall, path);
    return { dir, name };
  }
}

function components(path: string): string[] {
  return posix
    .resolve('/', path)
    .split('/')
    .filter((name) => name !== '');
}

/** A directory as the crash leaves it, its children visited in name order so that `rng` decides alike every time. */
function crashDir(dir: DirNode, rng: () => number, memo: Map<Node, Node>): DirNode {
  const copy = new DirNode();
  memo.set(dir, copy);
  const entries = new Map(dir.durable);
  const { keep } = choose(dir.pending.length, rng);
  for (let i = 0; i < keep; i++) replay(entries, dir.pending[i]!);
  for (const name of [...entries.keys()].sort()) {
    const child = entries.get(name)!;
    let crashed = memo.get(child);
    if (crashed === undefined) {
      crashed = child.kind === 'dir' ? crashDir(child, rng, memo) : crashFile(child, rng);
      memo.set(child, crashed);
    }
    copy.entries.set(name, crashed);
  }
  copy.sync();
  copy.mtimeMs = dir.mtimeMs;
  return copy;
}

/** A file as the crash leaves it: its durable content and none, all or a torn prefix of the changes since. */
function crashFile(file: FileNode, rng: () => number): FileNode {
  const content = file.durable.copy();
  const { keep, torn } = choose(file.pending.length, rng);
  for (let i = 0; i < keep; i++) content.apply(file.pending[i]!);
  const tear = torn ? file.pending[keep] : undefined;
  if (tear?.kind === 'write') {
    const kept = Math.floor(rng() * tear.bytes.length);
    // Sometimes the size reached the disk and the pages past the kept bytes did not: they read as zeros.
    const end = rng() < 0.5 ? tear.position + tear.bytes.length : tear.position + kept;
    if (end > content.size) content.truncate(end);
    content.write(tear.position, tear.bytes, 0, kept);
  }
  const crashed = new FileNode(content);
  crashed.mtimeMs = file.mtimeMs;
  return crashed;
}
