import assert from 'node:assert/strict';
import { execSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isRingkvError } from '../util/errors.js';
import { acquireDirLock, isAlive, LOCK_FILE_NAME } from './dir-lock.js';
import { MemoryVfs, seededRandom } from './vfs/index.js';

const hasProc = existsSync('/proc/self/stat');

/** The state letter in /proc/PID/stat, or undefined once the process is gone. */
async function procState(pid: number): Promise<string | undefined> {
  try {
    const content = await readFile(`/proc/${pid}/stat`, 'utf8');
    return content.charAt(content.lastIndexOf(')') + 2);
  } catch {
    return undefined;
  }
}

/** `sleep` under a command name with spaces and parentheses, which /proc/PID/stat shows as they are. */
async function oddlyNamedSleep(dir: string): Promise<string> {
  const path = join(dir, 'odd) (name');
  await symlink(execSync('command -v sleep', { encoding: 'utf8', shell: '/bin/sh' }).trim(), path);
  return path;
}

/** Polls (every 10 ms, at most 5 s) until `done`; false if it never held. */
async function eventually(done: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    if (await done()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return done();
}

/**
 * A zombie: `sh` starts a `sleep` (as `odd) (name`) in the background,
 * prints its PID and replaces itself with a `sleep` that never waits. Once
 * that exec happened, the background child is killed (its parent no longer
 * reaps anything), so it stays a zombie. Both are ended here by PID, the
 * parent last, which lets init reap the child.
 */
async function withZombie(dir: string, fn: (zombie: number) => Promise<void>): Promise<void> {
  const sleep = await oddlyNamedSleep(dir);
  const parent = spawn('sh', ['-c', '"$0" 30 & echo $!; exec sleep 30', sleep], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let child: number | undefined;
  try {
    let output = '';
    parent.stdout!.setEncoding('utf8');
    for await (const chunk of parent.stdout!) {
      output += chunk;
      if (output.includes('\n')) break;
    }
    child = Number(output.trim());
    assert.ok(Number.isInteger(child) && child > 0, `a PID: ${JSON.stringify(output)}`);
    const parentComm = async () =>
      (await readFile(`/proc/${parent.pid}/comm`, 'utf8').catch(() => '')).trim();
    assert.ok(await eventually(async () => (await parentComm()) === 'sleep'), 'sh became sleep');
    process.kill(child, 'SIGKILL');
    const zombie = child;
    assert.ok(await eventually(async () => (await procState(zombie)) === 'Z'), 'the child is a zombie');
    await fn(zombie);
  } finally {
    if (child !== undefined && child > 0) {
      try {
        process.kill(child, 'SIGKILL'); // a no-op on the zombie; its parent is still there, so the PID is its own
      } catch {
        // Already gone.
      }
    }
    parent.kill('SIGKILL');
    if (parent.exitCode === null && parent.signalCode === null) await once(parent, 'exit');
  }
}

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

  it('takes over a lock whose owner exited and is not yet reaped (a zombie)', {
    skip: !hasProc && 'no /proc',
  }, async () => {
    await withZombie(await newDir(), async (zombie) => {
      // kill(pid, 0) still finds a zombie: that alone would keep its lock held for good.
      assert.doesNotThrow(() => process.kill(zombie, 0));
      assert.equal(await isAlive(zombie), false);
      const dir = await newDir();
      await writeFile(join(dir, LOCK_FILE_NAME), `${zombie}\n`);
      const lock = await acquireDirLock(dir);
      assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${process.pid}\n`);
      await lock.release();
    });
  });

  it('counts a running process as alive', { skip: !hasProc && 'no /proc' }, async () => {
    const child = spawn(await oddlyNamedSleep(await newDir()), ['30'], { stdio: 'ignore' });
    try {
      assert.ok(child.pid);
      assert.equal(await isAlive(child.pid), true);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    assert.equal(await isAlive(child.pid), false, 'reaped: gone');
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

  it('works on an in-memory vfs, and a power loss leaves a stale lock that is taken over', async () => {
    const vfs = new MemoryVfs();
    await vfs.mkdir('/data');
    const lock = await acquireDirLock('/data', vfs);
    assert.equal((await vfs.readFile(`/data/${LOCK_FILE_NAME}`)).toString(), `${process.pid}\n`);
    await assert.rejects(acquireDirLock('/data', vfs), (err) => isRingkvError(err, 'RINGKV_LOCKED'));
    // Another vfs is another machine's disk: its /data is free.
    const other = new MemoryVfs();
    await other.mkdir('/data');
    await (await acquireDirLock('/data', other)).release();

    await vfs.syncDir('/data');
    const rebooted = vfs.crash(seededRandom(1));
    assert.equal((await rebooted.readFile(`/data/${LOCK_FILE_NAME}`)).length > 0, true);
    const again = await acquireDirLock('/data', rebooted);
    await again.release();
    assert.deepEqual(await rebooted.list('/data'), []);
    await lock.release().catch(() => {});
  });
});
