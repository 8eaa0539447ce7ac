/**
 * FaultyVfs injects the faults a test chooses, and only those: by operation,
 * path and count, on the asynchronous calls and their synchronous twins; a
 * failed call changes nothing below it; short writes are continued by
 * writeFully.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FaultyVfs } from './faulty-vfs.js';
import { writeFully } from './index.js';
import { MemoryVfs } from './memory-vfs.js';

const b = (s: string) => Buffer.from(s, 'utf8');

async function setUp(): Promise<{ vfs: FaultyVfs; memory: MemoryVfs }> {
  const memory = new MemoryVfs();
  await memory.mkdir('/d');
  return { vfs: new FaultyVfs(memory), memory };
}

describe('FaultyVfs', () => {
  test('EIO on the chosen write only: skip, times, and the path it matches', async () => {
    const { vfs, memory } = await setUp();
    const fault = vfs.inject({ op: 'write', path: /\.log$/, skip: 1, times: 1 });
    const log = await vfs.open('/d/1.log', 'wx');
    const other = await vfs.open('/d/2.sst', 'wx');
    await writeFully(log, b('one'), 0, 3, 0);
    await writeFully(other, b('sst'), 0, 3, 0);
    await assert.rejects(writeFully(log, b('two'), 0, 3, 3), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EIO');
      assert.equal(err.syscall, 'write');
      assert.equal(err.path, '/d/1.log');
      assert.match(err.message, /^EIO: i\/o error, write '\/d\/1\.log' \(injected\)$/);
      return true;
    });
    // The failed write wrote nothing; the next one goes through.
    assert.deepEqual(await memory.readFile('/d/1.log'), b('one'));
    await writeFully(log, b('three'), 0, 5, 3);
    assert.deepEqual(await memory.readFile('/d/1.log'), b('onethree'));
    assert.equal(fault.injected, 1);
    assert.equal(vfs.injected, 1);
  });

  test('ENOSPC on every matching call until the rule is removed', async () => {
    const { vfs } = await setUp();
    const full = vfs.inject({ op: ['write', 'fsync'], error: 'ENOSPC' });
    const file = await vfs.open('/d/f', 'wx');
    for (let i = 0; i < 3; i++) {
      await assert.rejects(file.write(b('x'), 0, 1, 0), { code: 'ENOSPC' });
      await assert.rejects(file.sync(), { code: 'ENOSPC', syscall: 'fsync' });
    }
    assert.throws(() => file.writeSync(b('x'), 0, 1, 0), { code: 'ENOSPC' });
    assert.throws(() => file.syncSync(), { code: 'ENOSPC' });
    await file.datasync(); // Not an operation of the rule.
    full.remove();
    await writeFully(file, b('x'), 0, 1, 0);
    await file.sync();
    assert.equal(full.injected, 8);
  });

  test('fdatasync, rename, remove, directory fsync, open and mkdir fail when chosen', async () => {
    const { vfs, memory } = await setUp();
    const file = await vfs.open('/d/a', 'wx');
    await writeFully(file, b('a'), 0, 1, 0);
    vfs.inject({ op: 'fdatasync', times: 1 });
    await assert.rejects(file.datasync(), { code: 'EIO', syscall: 'fdatasync' });
    await file.datasync();

    vfs.inject({ op: 'rename', path: '/d/a', times: 1 });
    await assert.rejects(vfs.rename('/d/a', '/d/b'), { code: 'EIO', syscall: 'rename' });
    assert.deepEqual(await memory.list('/d'), ['a']);
    await vfs.rename('/d/a', '/d/b');

    vfs.inject({ op: 'syncDir', times: 1 });
    await assert.rejects(vfs.syncDir('/d'), { code: 'EIO' });
    vfs.syncDirSync('/d'); // The rule fired its one time.

    vfs.inject({ op: 'remove', times: 2 });
    await assert.rejects(vfs.remove('/d/b'), { code: 'EIO', syscall: 'unlink' });
    assert.throws(() => vfs.removeSync('/d/b'), { code: 'EIO' });
    assert.deepEqual(await memory.list('/d'), ['b']);
    await vfs.remove('/d/b');
    assert.deepEqual(await memory.list('/d'), []);
  });

  test('short writes: each call writes at most shortBytes, and writeFully carries on', async () => {
    const { vfs, memory } = await setUp();
    const short = vfs.inject({ op: 'write', shortBytes: 3 });
    const file = await vfs.open('/d/f', 'wx');
    assert.equal(await file.write(b('abcdefgh'), 0, 8, 0), 3);
    await writeFully(file, b('abcdefghij'), 0, 10, 0);
    assert.deepEqual(await memory.readFile('/d/f'), b('abcdefghij'));
    assert.equal(short.injected, 5);
    short.remove();
    // A write that writes nothing is an error, not an endless loop.
    vfs.inject({ op: 'write', shortBytes: 0 });
    await assert.rejects(writeFully(file, b('x'), 0, 1, 0), /wrote 0 bytes of 1/);
  });

  test('clear() ends every rule; with none, calls reach the vfs below unchanged', async () => {
    const { vfs, memory } = await setUp();
    vfs.inject({ op: 'open' });
    vfs.inject({ op: 'mkdir', error: 'EROFS' });
    await assert.rejects(vfs.open('/d/f', 'wx'), { code: 'EIO', syscall: 'open' });
    assert.throws(() => vfs.openSync('/d/f', 'wx'), { code: 'EIO' });
    await assert.rejects(vfs.mkdir('/d/e'), { code: 'EROFS' });
    vfs.clear();
    const file = await vfs.open('/d/f', 'wx');
    await writeFully(file, b('ok'), 0, 2, 0);
    await file.close();
    await vfs.mkdir('/d/e');
    assert.deepEqual((await memory.list('/d')).sort(), ['e', 'f']);
    assert.equal(vfs.sharedAcrossThreads, false);
  });
});
