/**
 * One node restarted with its wall clock set back (5 s, RINGKV_CLOCK_OFFSET_MS):
 * a write answered 201 after the restart must win over the one stored
 * before it. The clock starts from the newest version on disk; before it
 * did, the new write was stamped below the old one and every read returned
 * the old value.
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
});
