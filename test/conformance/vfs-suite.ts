/**
 * The Vfs contract (src/storage/vfs/index.ts) as a suite every vfs must
 * pass: what the engine relies on from node:fs, so that a test on the
 * in-memory or fault-injecting vfs means the same as one on the disk.
 * Durability across a crash is the memory vfs's own test
 * (src/storage/vfs/memory-vfs.test.ts): only it can lose power.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  replaceFileDurably,
  truncateDurably,
  type Vfs,
  writeFully,
  writeFullySync,
} from '../../src/storage/vfs/index.js';

export interface VfsFactory {
  readonly name: string;
  /** A vfs and an empty directory in it that the test may use. */
  create(): Promise<{ vfs: Vfs; dir: string; dispose(): Promise<void> }>;
}

const b = (s: string) => Buffer.from(s, 'utf8');

async function withVfs(factory: VfsFactory, fn: (vfs: Vfs, dir: string) => Promise<void>): Promise<void> {
  const { vfs, dir, dispose } = await factory.create();
  try {
    await fn(vfs, dir);
  } finally {
    await dispose();
  }
}

async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

function codeSync(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

export function vfsSuite(factory: VfsFactory): void {
  describe(`Vfs contract: ${factory.name}`, () => {
    test('positional writes and reads, size, truncate, and a gap that reads as zeros', () =>
      withVfs(factory, async (vfs, dir) => {
        const path = join(dir, 'a');
        const file = await vfs.open(path, 'wx');
        await writeFully(file, b('hello world'), 0, 11, 0);
        await writeFully(file, b('XXabcXX'), 2, 3, 20);
        await file.datasync();
        assert.equal(await file.size(), 23);
        await file.truncate(5);
        await file.sync();
        assert.equal(await file.size(), 5);
        await file.close();
        assert.deepEqual(await vfs.readFile(path), b('hello'));

        const again = await vfs.open(path, 'r+');
        await writeFully(again, b('abc'), 0, 3, 8);
        const buf = Buffer.alloc(16, 0xee);
        assert.equal(await again.read(buf, 1, 15, 0), 11);
        assert.deepEqual(buf.subarray(1, 12), Buffer.concat([b('hello'), Buffer.alloc(3), b('abc')]));
        assert.equal(await again.read(buf, 0, 4, 11), 0, 'nothing past the end');
        await again.close();
        assert.equal((await vfs.stat(path)).size, 11);
        assert.equal((await vfs.stat(path)).isDirectory, false);
      }));

    test('the synchronous twins see and make the same files', () =>
      withVfs(factory, async (vfs, dir) => {
        const path = join(dir, 's');
        const file = vfs.openSync(path, 'wx');
        writeFullySync(file, b('sync data'), 0, 9, 0);
        file.syncSync();
        assert.equal(file.sizeSync(), 9);
        file.closeSync();
        const reader = vfs.openSync(path, 'r');
        const buf = Buffer.alloc(4);
        assert.equal(reader.readSync(buf, 0, 4, 5), 4);
        assert.deepEqual(buf, b('data'));
        reader.closeSync();
        vfs.syncDirSync(dir);
        vfs.removeSync(path);
        assert.equal(
          codeSync(() => vfs.openSync(path, 'r')),
          'ENOENT',
        );
        assert.equal(
          codeSync(() => vfs.removeSync(path)),
          'ENOENT',
        );
      }));

    test('open modes: wx refuses an existing name, w empties it, r and r+ need it', () =>
      withVfs(factory, async (vfs, dir) => {
        const path = join(dir, 'm');
        assert.equal(await code(vfs.open(path, 'r')), 'ENOENT');
        assert.equal(await code(vfs.open(path, 'r+')), 'ENOENT');
        const created = await vfs.open(path, 'wx');
        await writeFully(created, b('old'), 0, 3, 0);
        await created.close();
        assert.equal(await code(vfs.open(path, 'wx')), 'EEXIST');
        assert.equal(
          codeSync(() => vfs.openSync(path, 'wx')),
          'EEXIST',
        );
        const emptied = await vfs.open(path, 'w');
        assert.equal(await emptied.size(), 0);
        await emptied.close();
        assert.deepEqual(await vfs.readFile(path), Buffer.alloc(0));
        assert.equal(await code(vfs.open(join(dir, 'no', 'such'), 'wx')), 'ENOENT');
        const dsync = await vfs.open(join(dir, 'd'), 'wx', { dsync: true });
        assert.equal(typeof dsync.durableWrites, 'boolean');
        await dsync.close();
      }));

    test('names: list, rename (replacing a file), remove, mkdir, and their errors', () =>
      withVfs(factory, async (vfs, dir) => {
        for (const name of ['x', 'y']) {
          const file = await vfs.open(join(dir, name), 'wx');
          await writeFully(file, b(name), 0, 1, 0);
          await file.close();
        }
        assert.deepEqual((await vfs.list(dir)).sort(), ['x', 'y']);
        await vfs.rename(join(dir, 'x'), join(dir, 'y'));
        assert.deepEqual(await vfs.list(dir), ['y']);
        assert.deepEqual(await vfs.readFile(join(dir, 'y')), b('x'));
        assert.equal(await code(vfs.rename(join(dir, 'x'), join(dir, 'z'))), 'ENOENT');
        await vfs.syncDir(dir);

        await vfs.mkdir(join(dir, 'p', 'q'));
        await vfs.mkdir(join(dir, 'p', 'q'));
        assert.equal((await vfs.stat(join(dir, 'p'))).isDirectory, true);
        assert.deepEqual((await vfs.list(dir)).sort(), ['p', 'y']);
        assert.deepEqual(await vfs.list(join(dir, 'p', 'q')), []);
        assert.equal(await code(vfs.mkdir(join(dir, 'y', 'z'))), 'ENOTDIR');
        assert.equal(await code(vfs.list(join(dir, 'nothing'))), 'ENOENT');
        assert.equal(await code(vfs.stat(join(dir, 'nothing'))), 'ENOENT');
        const real = await vfs.realpath(join(dir, 'p'));
        assert.equal(await vfs.realpath(`${join(dir, 'p', 'q')}/..`), real);
        assert.ok(real.endsWith('/p'), real);
        assert.equal(await code(vfs.realpath(join(dir, 'nothing'))), 'ENOENT');
        assert.equal(await code(vfs.readFile(join(dir, 'nothing'))), 'ENOENT');

        await vfs.remove(join(dir, 'y'));
        assert.equal(await code(vfs.remove(join(dir, 'y'))), 'ENOENT');
        assert.deepEqual(await vfs.list(dir), ['p']);
      }));

    test('link: a second name for the same file, which outlives the first', () =>
      withVfs(factory, async (vfs, dir) => {
        const file = await vfs.open(join(dir, 'a'), 'wx');
        await writeFully(file, b('abc'), 0, 3, 0);
        await file.close();
        await vfs.link(join(dir, 'a'), join(dir, 'b'));
        assert.deepEqual((await vfs.list(dir)).sort(), ['a', 'b']);
        assert.deepEqual(await vfs.readFile(join(dir, 'b')), b('abc'));
        assert.equal(await code(vfs.link(join(dir, 'a'), join(dir, 'b'))), 'EEXIST');
        assert.equal(await code(vfs.link(join(dir, 'nothing'), join(dir, 'c'))), 'ENOENT');
        await vfs.remove(join(dir, 'a'));
        assert.deepEqual(await vfs.readFile(join(dir, 'b')), b('abc'));
        await vfs.syncDir(dir);
      }));

    test('an open file outlives its name, as on POSIX', () =>
      withVfs(factory, async (vfs, dir) => {
        const path = join(dir, 'u');
        const file = await vfs.open(path, 'wx');
        await writeFully(file, b('kept'), 0, 4, 0);
        await file.close();
        const reader = await vfs.open(path, 'r');
        await vfs.remove(path);
        const buf = Buffer.alloc(4);
        assert.equal(await reader.read(buf, 0, 4, 0), 4);
        assert.deepEqual(buf, b('kept'));
        await reader.close();
      }));

    test('replaceFileDurably and truncateDurably', () =>
      withVfs(factory, async (vfs, dir) => {
        const path = join(dir, 'R');
        await replaceFileDurably(vfs, dir, path, b('first'));
        await replaceFileDurably(vfs, dir, path, b('second, longer'));
        assert.deepEqual(await vfs.readFile(path), b('second, longer'));
        assert.deepEqual(await vfs.list(dir), ['R']);
        await truncateDurably(vfs, path, 6);
        assert.deepEqual(await vfs.readFile(path), b('second'));
      }));
  });
}
