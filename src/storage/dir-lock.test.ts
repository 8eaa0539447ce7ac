import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isRingkvError } from '../util/errors.js';
import { acquireDirLock, LOCK_FILE_NAME } from './dir-lock.js';

describe('DirLock', () => {
  let root: string;
  let dirCount = 0;
  const newDir = async () => mkdtemp(join(root, `d${dirCount++}-`));

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ringkv-dirlock-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes the owner PID and removes the file on release', async () => {
    const dir = await newDir();
    const lock = await acquireDirLock(dir);
    assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${process.pid}\n`);
    await lock.release();
    assert.equal(existsSync(join(dir, LOCK_FILE_NAME)), false);
    await lock.release(); // twice is fine
  });

  it('refuses a second holder in the same process until released', async () => {
    const dir = await newDir();
    const lock = await acquireDirLock(dir);
    await assert.rejects(acquireDirLock(dir), (err) => isRingkvError(err, 'RINGKV_LOCKED'));
    await lock.release();
    const again = await acquireDirLock(dir);
    await again.release();
  });

  it('refuses a lock held by another live process, naming its PID', async () => {
    const dir = await newDir();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      assert.ok(child.pid);
      await writeFile(join(dir, LOCK_FILE_NAME), `${child.pid}\n`);
      await assert.rejects(acquireDirLock(dir), (err) => {
        assert.ok(isRingkvError(err, 'RINGKV_LOCKED'));
        assert.equal(err.message, `Data directory ${dir} is locked by process ${child.pid}`);
        return true;
      });
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    // Now the owner is dead: its lock is stale and taken over.
    const lock = await acquireDirLock(dir);
    assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${process.pid}\n`);
    await lock.release();
  });

  it('takes over a lock left by a process that died', async () => {
    const dir = await newDir();
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    const pid = child.pid!;
    await once(child, 'exit');
    await writeFile(join(dir, LOCK_FILE_NAME), `${pid}\n`);
    const lock = await acquireDirLock(dir);
    assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${process.pid}\n`);
    await lock.release();
  });

  it('treats an unreadable lock as held while fresh and as stale once old', async () => {
    const dir = await newDir();
    const path = join(dir, LOCK_FILE_NAME);
    await writeFile(path, '');
    await assert.rejects(acquireDirLock(dir), (err) => isRingkvError(err, 'RINGKV_LOCKED'));
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const lock = await acquireDirLock(dir);
    await lock.release();
  });

  it('leaves a lock it no longer owns in place on release', async () => {
    const dir = await newDir();
    const lock = await acquireDirLock(dir);
    await writeFile(join(dir, LOCK_FILE_NAME), '1\n');
    await lock.release();
    assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), '1\n');
  });

  it('fails with RINGKV_IO when the directory does not exist', async () => {
    await assert.rejects(acquireDirLock(join(root, 'missing', 'dir')), (err) =>
      isRingkvError(err, 'RINGKV_IO'),
    );
  });
});
