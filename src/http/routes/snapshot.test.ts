/**
 * POST /v0/admin/snapshot on a real node process: a DIR the node cannot use
 * is a prompt 400 that names the directory and says why, never a 500 or a
 * request that hangs. A real process, not an in-process server, because the
 * failure this guards against (Node 20's recursive mkdir spinning forever on
 * a path under /proc) pins a thread-pool thread that only killing the
 * process frees: a regression fails on the request's timeout, and the node
 * is killed by its PID in `after`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { entityPath, httpRequest } from '../../../test/support/http-client.js';
import { killAllStarted, type NodeProcess, startNode } from '../../../test/support/node-process.js';
import { makeTempDir, removeTempDirs } from '../../../test/support/temp-dir.js';

/** Far above a prompt answer (a few ms), far below a hang. */
const ANSWER_TIMEOUT_MS = 5000;

describe('POST /v0/admin/snapshot: unusable directories', () => {
  let node: NodeProcess;
  let base: string;

  before(async () => {
    base = await makeTempDir('ringkv-snapshot-route-');
    node = await startNode({ dataDir: join(base, 'data') });
    const put = await httpRequest(`${node.url}${entityPath('k')}`, { method: 'PUT', body: 'v' });
    assert.equal(put.status, 201);
  });

  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  /** The answer to a snapshot into `rawDir`, already percent-encoded as it goes on the wire. */
  async function snapshot(rawDir: string): Promise<{ status: number; body: string }> {
    const answer = await httpRequest(`${node.url}/v0/admin/snapshot?dir=${rawDir}`, {
      method: 'POST',
      timeoutMs: ANSWER_TIMEOUT_MS,
    });
    return { status: answer.status, body: answer.body.toString() };
  }

  function assertNoIoLogged(): void {
    assert.doesNotMatch(node.stderr, /RINGKV_IO|Unexpected error/, node.stderr);
  }

  it('writes a snapshot into a new directory whose parents are missing too', async () => {
    const dir = join(base, 'a', 'b', 'snap');
    const answer = await snapshot(encodeURIComponent(dir));
    assert.equal(answer.status, 200, answer.body);
    assert.equal(JSON.parse(answer.body).dir, dir);
    assert.ok(readdirSync(dir).includes('SHA256SUMS'));
  });

  it('a directory under /proc is a prompt 400, not a request that never answers', async () => {
    for (const dir of [
      '/proc/ringkv-snapshot',
      '/proc/ringkv-snapshot/deeper',
      '/proc/self/ringkv-snapshot',
    ]) {
      const started = Date.now();
      const answer = await snapshot(encodeURIComponent(dir));
      assert.equal(answer.status, 400, `${dir}: ${answer.body}`);
      assert.ok(answer.body.includes(dir), answer.body);
      assert.ok(Date.now() - started < ANSWER_TIMEOUT_MS);
    }
    // The node still serves.
    const read = await httpRequest(`${node.url}${entityPath('k')}`, { timeoutMs: ANSWER_TIMEOUT_MS });
    assert.equal(read.status, 200);
    assertNoIoLogged();
  });

  it('an existing regular file, or a path through one, is 400 naming the directory', async () => {
    const file = join(base, 'plain-file');
    writeFileSync(file, 'not a directory');
    const asDir = await snapshot(encodeURIComponent(file));
    assert.equal(asDir.status, 400, asDir.body);
    assert.ok(asDir.body.includes(file), asDir.body);
    assert.match(asDir.body, /not a directory|EEXIST/);
    const through = await snapshot(encodeURIComponent(join(file, 'snap')));
    assert.equal(through.status, 400, through.body);
    assert.ok(through.body.includes(join(file, 'snap')), through.body);
    assert.match(through.body, /ENOTDIR|not a directory/);
    assertNoIoLogged();
  });

  it('a NUL byte in the directory is 400', async () => {
    const answer = await snapshot(`${encodeURIComponent(join(base, 'x'))}%00y`);
    assert.equal(answer.status, 400, answer.body);
    assert.match(answer.body, /NUL/);
    assertNoIoLogged();
  });

  it('a name over 255 bytes is 400 naming the reason', async () => {
    const dir = join(base, 'n'.repeat(300));
    const answer = await snapshot(encodeURIComponent(dir));
    assert.equal(answer.status, 400, answer.body);
    assert.match(answer.body, /ENAMETOOLONG|name too long/);
    assertNoIoLogged();
  });

  it('a directory the file system refuses (/sys: EPERM) is 400', {
    skip: !existsSync('/sys/kernel'),
  }, async () => {
    const answer = await snapshot(encodeURIComponent('/sys/ringkv-snapshot'));
    assert.equal(answer.status, 400, answer.body);
    assert.ok(answer.body.includes('/sys/ringkv-snapshot'), answer.body);
    assertNoIoLogged();
  });

  it('a directory that is not valid UTF-8 after percent-decoding is 400, and nothing is created', async () => {
    const before = readdirSync(base).sort();
    for (const raw of [
      `${encodeURIComponent(join(base, 'bad'))}%ff`,
      `${encodeURIComponent(base)}%2F%C3%28`,
    ]) {
      const answer = await snapshot(raw);
      assert.equal(answer.status, 400, `${raw}: ${answer.body}`);
      assert.match(answer.body, /^Bad dir: .*UTF-8/);
    }
    assert.deepEqual(readdirSync(base).sort(), before);
    // U+FFFD itself, written as valid UTF-8, is a character like any other.
    const replacement = join(base, 'snap-\uFFFD');
    const ok = await snapshot(encodeURIComponent(replacement));
    assert.equal(ok.status, 200, ok.body);
    assert.ok(existsSync(join(replacement, 'SHA256SUMS')));
    assertNoIoLogged();
  });

  it('a directory inside the node data directory is 400 naming both, however it is spelled, and nothing is created', async () => {
    const data = join(base, 'data');
    const link = join(base, 'link-to-data');
    symlinkSync(data, link);
    const outside = join(base, 'outside');
    mkdirSync(outside);
    const before = readdirSync(data).sort();
    for (const dir of [
      data,
      join(data, 'snap'),
      join(data, 'deeper', 'snap'),
      join(link, 'snap'),
      // Lexically outside the data directory, physically inside it: `..` of a symlinked directory.
      `${join(link, 'snap')}/../x`,
      `${outside}/../data/snap`,
    ]) {
      const answer = await snapshot(encodeURIComponent(dir));
      assert.equal(answer.status, 400, `${dir}: ${answer.body}`);
      assert.match(answer.body, /inside the node's data directory/, answer.body);
      // Named with its `..` resolved (the path the node would have written to).
      assert.ok(answer.body.includes(resolve(dir)), answer.body);
    }
    assert.deepEqual(readdirSync(data).sort(), before);
    // Beside the data directory, reached through the same symlink's parent: admitted.
    const beside = await snapshot(encodeURIComponent(join(link, '..', 'beside-data')));
    assert.equal(beside.status, 200, beside.body);
    assertNoIoLogged();
  });

  it('a directory that is not empty stays 400', async () => {
    const dir = join(base, 'a', 'b', 'snap');
    const answer = await snapshot(encodeURIComponent(dir));
    assert.equal(answer.status, 400, answer.body);
    assert.match(answer.body, /not empty/);
  });
});
