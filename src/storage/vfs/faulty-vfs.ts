/**
 * A vfs that passes every call to another one, except those a test chose to
 * fail: EIO or ENOSPC (or any code) on a chosen write, fsync, rename, ...,
 * or a short write. Rules match by operation, by path, and by count (let
 * `skip` matching calls pass, then fail `times` of them), so "the third
 * fdatasync of the WAL fails" or "every write fails with ENOSPC until the
 * disk is freed" are one rule each. A failed call does nothing: the inner
 * vfs never sees it.
 *
 * Synchronous twins count as their operation ('write' covers writeSync),
 * so faults reach flushes and compactions too; those then run in-process
 * (sharedAcrossThreads is false), where the rules live.
 *
 * Example:
 *   const vfs = new FaultyVfs(new MemoryVfs());
 *   const full = vfs.inject({ op: 'write', path: /\.sst$/, error: 'ENOSPC' });
 *   ...                         // flushes fail: disk full
 *   full.remove();              // space is back
 */
import { fsError } from './errors.js';
import type { OpenMode, OpenOptions, Vfs, VfsFile, VfsStat } from './index.js';

export type FaultOp =
  | 'open'
  | 'read'
  | 'write'
  | 'fsync'
  | 'fdatasync'
  | 'truncate'
  | 'readFile'
  | 'stat'
  | 'realpath'
  | 'list'
  | 'mkdir'
  | 'rename'
  | 'link'
  | 'remove'
  | 'syncDir';

export interface FaultRule {
  /** The operations it applies to. */
  readonly op: FaultOp | readonly FaultOp[];
  /** The file (for rename: the source) it applies to: a substring, a pattern or a test; default every path. */
  readonly path?: string | RegExp | ((path: string) => boolean);
  /** Matching calls let through before the first fault (default 0). */
  readonly skip?: number;
  /** Faults to inject, then the rule goes quiet (default: no end). */
  readonly times?: number;
  /** The error's code (default 'EIO'). */
  readonly error?: string;
  /** Instead of failing, a write writes at most this many bytes and says so (a short write). */
  readonly shortBytes?: number;
}

export interface Fault {
  /** Faults injected by this rule so far. */
  readonly injected: number;
  /** Ends the rule. */
  remove(): void;
}

class ActiveRule implements Fault {
  readonly rule: FaultRule;
  readonly #ops: ReadonlySet<FaultOp>;
  readonly #rules: Set<ActiveRule>;
  #seen = 0;
  injected = 0;

  constructor(rule: FaultRule, rules: Set<ActiveRule>) {
    this.rule = rule;
    this.#ops = new Set(typeof rule.op === 'string' ? [rule.op] : rule.op);
    this.#rules = rules;
  }

  /** Whether this call is one to fail; counts it either way. */
  fires(op: FaultOp, path: string): boolean {
    if (!this.#ops.has(op) || !matches(this.rule.path, path)) return false;
    this.#seen++;
    if (this.#seen <= (this.rule.skip ?? 0)) return false;
    if (this.injected >= (this.rule.times ?? Number.POSITIVE_INFINITY)) return false;
    this.injected++;
    return true;
  }

  remove(): void {
    this.#rules.delete(this);
  }
}

function matches(pattern: FaultRule['path'], path: string): boolean {
  if (pattern === undefined) return true;
  if (typeof pattern === 'string') return path.includes(pattern);
  if (pattern instanceof RegExp) return pattern.test(path);
  return pattern(path);
}

const SYSCALLS: Record<FaultOp, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  fsync: 'fsync',
  fdatasync: 'fdatasync',
  truncate: 'ftruncate',
  readFile: 'open',
  stat: 'stat',
  realpath: 'realpath',
  list: 'scandir',
  mkdir: 'mkdir',
  rename: 'rename',
  link: 'link',
  remove: 'unlink',
  syncDir: 'fsync',
};

class FaultyFile implements VfsFile {
  readonly #vfs: FaultyVfs;
  readonly #inner: VfsFile;

  constructor(vfs: FaultyVfs, inner: VfsFile) {
    this.#vfs = vfs;
    this.#inner = inner;
  }

  get path(): string {
    return this.#inner.path;
  }

  get durableWrites(): boolean {
    return this.#inner.durableWrites;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.#vfs._check('read', this.path);
    return this.#inner.read(buffer, offset, length, position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.#inner.write(buffer, offset, this.#vfs._writeLength(this.path, length), position);
  }

  async datasync(): Promise<void> {
    this.#vfs._check('fdatasync', this.path);
    return this.#inner.datasync();
  }

  async sync(): Promise<void> {
    this.#vfs._check('fsync', this.path);
    return this.#inner.sync();
  }

  async truncate(length: number): Promise<void> {
    this.#vfs._check('truncate', this.path);
    return this.#inner.truncate(length);
  }

  size(): Promise<number> {
    return this.#inner.size();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.#vfs._check('read', this.path);
    return this.#inner.readSync(buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return this.#inner.writeSync(buffer, offset, this.#vfs._writeLength(this.path, length), position);
  }

  syncSync(): void {
    this.#vfs._check('fsync', this.path);
    this.#inner.syncSync();
  }

  sizeSync(): number {
    return this.#inner.sizeSync();
  }

  closeSync(): void {
    this.#inner.closeSync();
  }
}

export class FaultyVfs implements Vfs {
  /** The rules live in this thread: flushes and compactions run in-process. */
  readonly sharedAcrossThreads = false;
  readonly inner: Vfs;
  readonly #rules = new Set<ActiveRule>();
  #injected = 0;

  constructor(inner: Vfs) {
    this.inner = inner;
  }

  /** Adds a rule; remove() on the answer ends it. */
  inject(rule: FaultRule): Fault {
    const active = new ActiveRule(rule, this.#rules);
    this.#rules.add(active);
    return active;
  }

  /** Ends every rule. */
  clear(): void {
    this.#rules.clear();
  }

  /** Faults injected so far, by every rule. */
  get injected(): number {
    return this.#injected;
  }

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<VfsFile> {
    this._check('open', path);
    return new FaultyFile(this, await this.inner.open(path, mode, options));
  }

  openSync(path: string, mode: OpenMode): VfsFile {
    this._check('open', path);
    return new FaultyFile(this, this.inner.openSync(path, mode));
  }

  async readFile(path: string): Promise<Buffer> {
    this._check('readFile', path);
    return this.inner.readFile(path);
  }

  async stat(path: string): Promise<VfsStat> {
    this._check('stat', path);
    return this.inner.stat(path);
  }

  async realpath(path: string): Promise<string> {
    this._check('realpath', path);
    return this.inner.realpath(path);
  }

  async list(dir: string): Promise<string[]> {
    this._check('list', dir);
    return this.inner.list(dir);
  }

  async mkdir(dir: string): Promise<void> {
    this._check('mkdir', dir);
    return this.inner.mkdir(dir);
  }

  async rename(from: string, to: string): Promise<void> {
    this._check('rename', from);
    return this.inner.rename(from, to);
  }

  async link(from: string, to: string): Promise<void> {
    this._check('link', from);
    return this.inner.link(from, to);
  }

  async remove(path: string): Promise<void> {
    this._check('remove', path);
    return this.inner.remove(path);
  }

  removeSync(path: string): void {
    this._check('remove', path);
    this.inner.removeSync(path);
  }

  async syncDir(dir: string): Promise<void> {
    this._check('syncDir', dir);
    return this.inner.syncDir(dir);
  }

  syncDirSync(dir: string): void {
    this._check('syncDir', dir);
    this.inner.syncDirSync(dir);
  }

  /** For FaultyFile: throws the fault a rule injects into this call, if any. */
  _check(op: FaultOp, path: string): void {
    const rule = this.#firing(op, path);
    if (rule !== undefined) throw this.#error(rule, op, path);
  }

  /** For FaultyFile: the bytes a write may write (fewer for a short write), or throws its fault. */
  _writeLength(path: string, length: number): number {
    const rule = this.#firing('write', path);
    if (rule === undefined) return length;
    const { shortBytes } = rule.rule;
    if (shortBytes === undefined) throw this.#error(rule, 'write', path);
    return Math.min(length, shortBytes);
  }

  #firing(op: FaultOp, path: string): ActiveRule | undefined {
    for (const rule of this.#rules) {
      if (rule.fires(op, path)) {
        this.#injected++;
        return rule;
      }
    }
    return undefined;
  }

  #error(rule: ActiveRule, op: FaultOp, path: string): Error {
    return fsError(rule.rule.error ?? 'EIO', SYSCALLS[op], path, 'injected');
  }
}
