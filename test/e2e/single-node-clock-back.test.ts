/**
 * One node restarted with its wall clock set back (5 s, RINGKV_CLOCK_OFFSET_MS):
 * a write answered 201 after the restart must win over the one stored
 * before it. The clock starts from the newest version on disk; before it
 * did, the new write was stamped below the old one and every read returned
 * the old value. Set back further than the clock follows stored versions
 * (60 s), each write of a key stored under a newer version is stamped above
 * that version instead (local-store.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

describe('one node restarted with its clock set back', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a write after the restart wins over one stored before it', async () => {
    const dataDir = await makeTempDir('ringkv-clock-back-');
    const first = await startNode({ dataDir, args: ['--sync', 'off'] });
    for (const key of ['a', 'b']) {
      const put = await httpRequest(`${first.url}${entityPath(key)}`, { method: 'PUT', body: 'before' });
      assert.equal(put.status, 201);
    }
    await stopNode(first);

    const second = await startNode({
      dataDir,
      args: ['--sync', 'off'],
      env: { RINGKV_CLOCK_OFFSET_MS: '-5000' },
    });
    const put = await httpRequest(`${second.url}${entityPath('a')}`, { method: 'PUT', body: 'after' });
    assert.equal(put.status, 201);
    const deleted = await httpRequest(`${second.url}${entityPath('b')}`, { method: 'DELETE' });
    assert.equal(deleted.status, 202);
    const read = await httpRequest(`${second.url}${entityPath('a')}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.toString(), 'after');
    assert.equal((await httpRequest(`${second.url}${entityPath('b')}`)).status, 404);
    await stopNode(second);
  });

  it('set back past the 60 s the clock follows, a write still wins over the stored one', async () => {
    const dataDir = await makeTempDir('ringkv-clock-far-back-');
    const first = await startNode({ dataDir, args: ['--sync', 'off'] });
    const before = await httpRequest(`${first.url}${entityPath('a', { trace: 1 })}`, {
      method: 'PUT',
      body: 'before',
    });
    assert.equal(before.status, 201);
    await stopNode(first);

    const second = await startNode({
      dataDir,
      args: ['--sync', 'off'],
      env: { RINGKV_CLOCK_OFFSET_MS: '-600000' },
    });
    const put = await httpRequest(`${second.url}${entityPath('a', { trace: 1 })}`, {
      method: 'PUT',
      body: 'after',
    });
    assert.equal(put.status, 201);
    assert.ok(
      BigInt(put.headers['x-ringkv-version'] as string) >
        BigInt(before.headers['x-ringkv-version'] as string),
    );
    const read = await httpRequest(`${second.url}${entityPath('a')}`);
    assert.equal(read.body.toString(), 'after');
    assert.match(second.stderr, /clock\.behind-data/);
    await stopNode(second);
  });
});
