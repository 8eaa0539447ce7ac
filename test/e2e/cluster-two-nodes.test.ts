/**
 * API.md's cluster guarantees on a real 2-node cluster: the default quorum of
 * 2 needs both nodes, so a node down means 504 unless ack=1; writes a killed
 * node missed are read at their newest once it is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rangeEntries, startCluster, type TestCluster, waitPeerState } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, killNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

describe('2-node cluster', () => {
  let cluster: TestCluster;
  const url = (i: number) => cluster.urls[i]!;
  const put = (i: number, key: string, value: string, params: Record<string, string | number> = {}) =>
    httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'PUT', body: value });
  const del = (i: number, key: string, params: Record<string, string | number> = {}) =>
    httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'DELETE' });
  const valueAt = async (i: number, key: string, params: Record<string, string | number> = {}) => {
    const answer = await httpRequest(`${url(i)}${entityPath(key, params)}`);
    return answer.status === 200 ? answer.body.toString() : answer.status;
  };

  before(async () => {
    cluster = await startCluster({
      count: 2,
      args: ['--sync', 'off', '--cluster-secret', 'two-node-secret'],
    });
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('writes through either node are read through both; 400 for ack=0, ack > from, from > 2', async () => {
    assert.equal((await put(0, 'a', 'one')).status, 201);
    assert.equal((await put(1, 'b', 'two')).status, 201);
    for (const n of [0, 1]) {
      assert.equal(await valueAt(n, 'a'), 'one');
      assert.equal(await valueAt(n, 'b'), 'two');
    }
    assert.equal((await del(1, 'a')).status, 202);
    for (const n of [0, 1]) assert.equal(await valueAt(n, 'a'), 404);
    for (const params of [{ ack: 0 }, { ack: 2, from: 1 }, { from: 3 }]) {
      assert.equal((await put(0, 'x', 'v', params)).status, 400);
      assert.equal(await valueAt(1, 'x', params), 400);
    }
    const range = await rangeEntries(cluster.nodes[1]!.port, '/v0/entities?start=a&scope=cluster');
    assert.deepEqual(range.entries, [['b', 'two']]);
  });

  it('with the other node killed: 504 at the default quorum, ack=1 still works; missed writes are read after restart', async () => {
    assert.equal((await put(0, 'missed', 'old')).status, 201);
    assert.equal((await put(0, 'gone', 'here')).status, 201);
    await killNode(cluster.nodes[1]!);
    assert.equal((await put(0, 'missed', 'new')).status, 504);
    assert.equal((await del(0, 'gone')).status, 504);
    assert.equal(await valueAt(0, 'missed'), 504);
    assert.equal((await put(0, 'missed', 'newer', { ack: 1 })).status, 201);
    assert.equal((await del(0, 'gone', { ack: 1 })).status, 202);
    assert.equal(await valueAt(0, 'missed', { ack: 1 }), 'newer');
    await cluster.restart(1);
    // Through the restarted node: its own copies are old, node 0's are newest.
    assert.equal(await valueAt(1, 'missed', { ack: 2, from: 2 }), 'newer');
    assert.equal(await valueAt(1, 'gone', { ack: 2, from: 2 }), 404);
    assert.ok(await waitPeerState(url(0), url(1), 'up'));
    assert.equal(await valueAt(0, 'missed'), 'newer');
    assert.equal(await valueAt(0, 'gone'), 404);
  });
});
