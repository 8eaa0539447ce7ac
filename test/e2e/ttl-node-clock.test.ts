/**
 * A TTL judged by the node's own wall clock (API.md, Guarantees): the
 * expiry is the writer's wall clock plus the TTL, and the node answering a
 * read compares it with its wall clock. RINGKV_CLOCK_OFFSET_MS moves a
 * node's wall clock; the expiry is stamped with the moved clock, so reads
 * must judge it with the same one. Judged by the process's real clock
 * instead, a node 30 s behind reported a value with a 10 s TTL as absent
 * at once, and a node 30 s ahead kept serving one with a short TTL for 30 s.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { entityPath, httpRequest, rangePath } from '../support/http-client.js';
import { killAllStarted, sleep, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const OFFSET_MS = 30_000;

describe('a TTL on a node whose wall clock is offset', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a node behind real time serves a value until its TTL has passed on its own clock', async () => {
    const dataDir = await makeTempDir('ringkv-ttl-behind-');
    const node = await startNode({
      dataDir,
      args: ['--sync', 'off'],
      env: { RINGKV_CLOCK_OFFSET_MS: String(-OFFSET_MS) },
    });
    const put = await httpRequest(`${node.url}${entityPath('k', { ttl: 10_000 })}`, {
      method: 'PUT',
      body: 'alive',
    });
    assert.equal(put.status, 201);
    const read = await httpRequest(`${node.url}${entityPath('k')}`);
    assert.equal(read.status, 200, 'a value with a 10 s TTL read at once');
    assert.equal(read.body.toString(), 'alive');
    const range = await httpRequest(`${node.url}${rangePath('k')}`);
    assert.equal(range.status, 200);
    assert.equal(range.body.toString(), 'k\nalive', 'the range lists the live value');
    await stopNode(node);
  });

  it('a node ahead of real time stops serving a value once its TTL has passed on its own clock', async () => {
    const dataDir = await makeTempDir('ringkv-ttl-ahead-');
    const node = await startNode({
      dataDir,
      args: ['--sync', 'off'],
      env: { RINGKV_CLOCK_OFFSET_MS: String(OFFSET_MS) },
    });
    const ttlMs = 300;
    const put = await httpRequest(`${node.url}${entityPath('k', { ttl: ttlMs })}`, {
      method: 'PUT',
      body: 'brief',
    });
    assert.equal(put.status, 201);
    await sleep(ttlMs + 200);
    assert.equal((await httpRequest(`${node.url}${entityPath('k')}`)).status, 404, 'expired by the TTL');
    const range = await httpRequest(`${node.url}${rangePath('k')}`);
    assert.equal(range.status, 200);
    assert.equal(range.body.length, 0, 'the range leaves the expired value out');
    await stopNode(node);
  });
});
