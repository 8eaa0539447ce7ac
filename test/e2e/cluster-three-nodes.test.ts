/**
 * API.md's cluster guarantees on one real 3-node cluster (separate
 * processes). The tests share the cluster and run in order: first with every
 * node up, then with node C stopped, then after C restarted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  rangeEntries,
  startCluster,
  storeStatus,
  type TestCluster,
  waitPeerState,
} from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, sleep, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

/** Long enough that an answer well under it cannot have waited for a dead replica's deadline. */
const REQUEST_TIMEOUT_MS = 4000;

describe('3-node cluster', () => {
  let cluster: TestCluster;
  const url = (i: number) => cluster.urls[i]!;
  const put = (i: number, key: string, value: string, params: Record<string, string | number> = {}) =>
    httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'PUT', body: value });
  const get = (i: number, key: string, params: Record<string, string | number> = {}) =>
    httpRequest(`${url(i)}${entityPath(key, params)}`);
  const del = (i: number, key: string, params: Record<string, string | number> = {}) =>
    httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'DELETE' });
  const valueAt = async (i: number, key: string, params: Record<string, string | number> = {}) => {
    const answer = await get(i, key, params);
    return answer.status === 200 ? answer.body.toString() : answer.status;
  };

  before(async () => {
    cluster = await startCluster({
      count: 3,
      // Anti-entropy on at a short interval: placement (from=1, from=2) must hold with it.
      args: [
        '--sync',
        'off',
        '--request-timeout',
        String(REQUEST_TIMEOUT_MS),
        '--anti-entropy-interval',
        '300',
      ],
    });
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a write through any node is readable through every node', async () => {
    for (let writer = 0; writer < 3; writer++) {
      const key = `anywhere-${writer}`;
      assert.equal((await put(writer, key, `from-${writer}`)).status, 201);
      for (let reader = 0; reader < 3; reader++) assert.equal(await valueAt(reader, key), `from-${writer}`);
    }
    assert.equal((await del(1, 'anywhere-0')).status, 202);
    for (let reader = 0; reader < 3; reader++) assert.equal(await valueAt(reader, 'anywhere-0'), 404);
  });

  it('answers 400 for ack=0, ack > from and from larger than the cluster', async () => {
    for (const params of [{ ack: 0 }, { ack: 3, from: 2 }, { from: 4 }, { ack: 4 }]) {
      for (const answer of [
        await get(0, 'k', params),
        await put(1, 'k', 'v', params),
        await del(2, 'k', params),
      ]) {
        assert.equal(answer.status, 400, JSON.stringify(params));
      }
    }
    assert.equal(await valueAt(0, 'k', { ack: 3, from: 3 }), 404, 'nothing was written');
  });

  it('quorum reads see the newest write or delete, whichever node took it', async () => {
    for (let i = 0; i < 12; i++) {
      const writer = i % 3;
      if (i % 4 === 3) assert.equal((await del(writer, 'overlap')).status, 202);
      else assert.equal((await put(writer, 'overlap', `v${i}`)).status, 201);
      const expected = i % 4 === 3 ? 404 : `v${i}`;
      for (let reader = 0; reader < 3; reader++) assert.equal(await valueAt(reader, 'overlap'), expected);
      // ack=1 reads overlap ack=3 writes too.
      if (i % 4 === 0) {
        assert.equal((await put(writer, 'overlap', `w${i}`, { ack: 3, from: 3 })).status, 201);
        assert.equal(await valueAt((writer + 1) % 3, 'overlap', { ack: 1, from: 3 }), `w${i}`);
        assert.equal((await put(writer, 'overlap', `v${i}`)).status, 201);
      }
    }
  });

  it('with ack=1&from=1 a key lives on exactly one node, with from=2 on two', async () => {
    const holders = new Set<number>();
    for (let i = 0; i < 8; i++) {
      for (const from of [1, 2]) {
        const key = `placed-${from}-${i}`;
        assert.equal((await put(i % 3, key, 'x', { ack: from, from })).status, 201);
        // ack=from: every replica has stored it by now; only those.
        const having: number[] = [];
        for (let n = 0; n < 3; n++) {
          const local = await rangeEntries(cluster.nodes[n]!.port, `/v0/entities?start=${key}&end=${key}%00`);
          assert.equal(local.status, 200);
          if (local.entries.length > 0) having.push(n);
        }
        assert.equal(having.length, from, `${key} is on nodes ${having.join(',')}`);
        if (from === 1) holders.add(having[0]!);
        assert.equal(await valueAt((i + 1) % 3, key, { ack: 1, from }), 'x');
      }
    }
    assert.ok(holders.size > 1, 'keys are spread over the nodes');
  });

  it('scope=cluster returns each live key once, at its newest value, in key order', async () => {
    const expected = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const key = `range-${String(i).padStart(2, '0')}`;
      // Some keys on one node only, some on two, some everywhere; some overwritten, some deleted.
      const from = (i % 3) + 1;
      await put(i % 3, key, `first-${i}`, { ack: from, from });
      expected.set(key, `first-${i}`);
      if (i % 4 === 1) {
        await put((i + 1) % 3, key, `second-${i}`, { ack: from, from });
        expected.set(key, `second-${i}`);
      }
      if (i % 5 === 2) {
        await del((i + 2) % 3, key, { ack: from, from });
        expected.delete(key);
      }
    }
    const want = [...expected.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (let n = 0; n < 3; n++) {
      const answer = await rangeEntries(
        cluster.nodes[n]!.port,
        '/v0/entities?start=range-&end=range-~&scope=cluster',
      );
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.entries, want);
    }
    const local = await rangeEntries(cluster.nodes[0]!.port, '/v0/entities?start=range-&end=range-~');
    assert.ok(local.entries.length < want.length, 'one node alone does not hold every key');
  });

  describe('with node C stopped', () => {
    before(async () => {
      // Written with everyone up; C then misses the overwrite and the delete.
      assert.equal((await put(0, 'missed-overwrite', 'old', { ack: 3, from: 3 })).status, 201);
      assert.equal((await put(0, 'missed-delete', 'doomed', { ack: 3, from: 3 })).status, 201);
      assert.deepEqual(await stopNode(cluster.nodes[2]!), { code: 0, signal: null });
    });

    it('one node down: quorum PUT, DELETE and GET still answer 201, 202 and 200', async () => {
      for (let i = 0; i < 4; i++) {
        const node = i % 2;
        assert.equal((await put(node, `down-${i}`, 'v')).status, 201);
        assert.equal(await valueAt(1 - node, `down-${i}`), 'v');
        assert.equal((await del(1 - node, `down-${i}`)).status, 202);
        assert.equal(await valueAt(node, `down-${i}`), 404);
      }
    });

    it('504 when too few replicas are up, for GET, PUT and DELETE', async () => {
      const all = { ack: 3, from: 3 };
      assert.equal((await get(0, 'anywhere-1', all)).status, 504);
      assert.equal((await put(1, 'too-few', 'v', all)).status, 504);
      assert.equal((await del(0, 'too-few', all)).status, 504);
      const status = await storeStatus(url(0));
      assert.ok((status.coordinator as { notEnoughReplicas: number }).notEnoughReplicas >= 2);
    });

    it('a down node costs no timeout per request', async () => {
      assert.ok(await waitPeerState(url(0), url(2), 'down'), 'node A marks C down');
      for (let i = 0; i < 10; i++) {
        const started = Date.now();
        assert.equal((await put(0, `fast-${i}`, 'v', { ack: 2, from: 3 })).status, 201);
        const tookMs = Date.now() - started;
        assert.ok(
          tookMs < REQUEST_TIMEOUT_MS / 2,
          `PUT took ${tookMs} ms, near the ${REQUEST_TIMEOUT_MS} ms timeout`,
        );
      }
    });

    it('a cluster range is refused with 504 while a node is down', async () => {
      const answer = await httpRequest(`${url(0)}/v0/entities?start=a&scope=cluster`);
      assert.equal(answer.status, 504);
      assert.match(answer.body.toString(), /needs every node/);
    });

    it('writes and deletes C missed are read at their newest with ack=from=3 once C is back', async () => {
      assert.equal((await put(1, 'missed-overwrite', 'new')).status, 201);
      assert.equal((await del(0, 'missed-delete')).status, 202);
      assert.equal((await put(0, 'missed-new', 'fresh')).status, 201);
      await cluster.restart(2);
      const all = { ack: 3, from: 3 };
      // Through C itself: its own copy is stale, the newest comes from A and B.
      assert.equal(await valueAt(2, 'missed-overwrite', all), 'new');
      assert.equal(await valueAt(2, 'missed-delete', all), 404);
      assert.equal(await valueAt(2, 'missed-new', all), 'fresh');
      // And through the others once they found C again.
      for (const n of [0, 1]) {
        assert.ok(await waitPeerState(url(n), url(2), 'up'), `node ${n} sees C again`);
        assert.equal(await valueAt(n, 'missed-overwrite', all), 'new');
        assert.equal(await valueAt(n, 'missed-delete', all), 404);
      }
      // The reads repaired C (in the background): its local range comes to hold the newest values.
      const want = [
        ['missed-new', 'fresh'],
        ['missed-overwrite', 'new'],
      ];
      let local: [string, string][] = [];
      for (let attempt = 0; attempt < 40; attempt++) {
        local = (await rangeEntries(cluster.nodes[2]!.port, '/v0/entities?start=missed-&end=missed-~'))
          .entries;
        if (JSON.stringify(local) === JSON.stringify(want)) break;
        await sleep(50);
      }
      assert.deepEqual(local, want);
    });
  });
});
