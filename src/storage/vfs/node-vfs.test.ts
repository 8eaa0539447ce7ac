/**
 * NodeVfs.mkdir on the real file system: it creates every missing parent,
 * takes a directory that exists, refuses a file, and always ends, with an
 * error where Node 20's recursive mkdir would spin forever (a path under
 * /proc). That case runs in a child process with a deadline, so that a
 * regression fails here instead of pinning a thread of the test runner.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeTempDir, removeTempDirs } from '../../../test/support/temp-dir.js';
import { nodeVfs } from './node-vfs.js';

/** Far above a prompt answer, far below a hang. */
const CHILD_TIMEOUT_MS = 10_000;

/** Runs nodeVfs.mkdir(dir) in a child process; its printed outcome, or 'timeout' once it was killed. */
function mkdirInChild(dir: string): Promise<string> {
  const moduleUrl = new URL('./node-vfs.js', import.meta.url).href;
  const script = `
    const { nodeVfs } = await import(${JSON.stringify(moduleUrl)});
    nodeVfs.mkdir(process.argv[1]).then(
      () => process.stdout.write('ok'),
      (err) => process.stdout.write(String(err.code) + ' ' + err.message),
    );`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      out += text;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CHILD_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(timedOut ? 'timeout' : out);
    });
  });
}

describe('NodeVfs.mkdir', () => {
  after(removeTempDirs);

  it('creates every missing parent, and takes a directory that exists', async () => {
    const base = await makeTempDir('ringkv-node-vfs-');
    const dir = join(base, 'a', 'b', 'c');
    await nodeVfs.mkdir(dir);
    assert.ok(statSync(dir).isDirectory());
    await nodeVfs.mkdir(dir);
    await nodeVfs.mkdir(`${join(base, 'a', 'b')}/`);
    await nodeVfs.mkdir(base);
    await nodeVfs.mkdir('/');
  });

  it('two callers making the same new tree both succeed', async () => {
    const base = await makeTempDir('ringkv-node-vfs-');
    const dir = join(base, 'x', 'y', 'z');
    await Promise.all([nodeVfs.mkdir(dir), nodeVfs.mkdir(dir), nodeVfs.mkdir(join(dir, 'w'))]);
    assert.ok(statSync(join(dir, 'w')).isDirectory());
  });

  it('refuses an existing file (EEXIST) and a path through one (ENOTDIR)', async () => {
    const base = await makeTempDir('ringkv-node-vfs-');
    const file = join(base, 'file');
    writeFileSync(file, 'x');
    await assert.rejects(nodeVfs.mkdir(file), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EEXIST');
      assert.ok(err.message.includes(file), err.message);
      return true;
    });
    await assert.rejects(nodeVfs.mkdir(join(file, 'a', 'b')), { code: 'ENOTDIR' });
    assert.ok(!existsSync(join(file, 'a')));
  });

  it('refuses a NUL byte and an over-long name', async () => {
    const base = await makeTempDir('ringkv-node-vfs-');
    await assert.rejects(nodeVfs.mkdir(join(base, 'x\0y')), { code: 'ERR_INVALID_ARG_VALUE' });
    await assert.rejects(nodeVfs.mkdir(join(base, 'n'.repeat(300), 'deeper')), { code: 'ENAMETOOLONG' });
  });

  it('ends with an error for a directory under /proc, where a recursive mkdir never returns', {
    skip: !existsSync('/proc/self'),
  }, async () => {
    for (const dir of ['/proc/ringkv-test', '/proc/ringkv-test/a/b', '/proc/self/ringkv-test']) {
      const outcome = await mkdirInChild(dir);
      assert.notEqual(outcome, 'timeout', `mkdir ${dir} did not end within ${CHILD_TIMEOUT_MS} ms`);
      assert.match(outcome, /^ENOENT /, outcome);
      assert.ok(outcome.includes('/proc'), outcome);
    }
  });
});
