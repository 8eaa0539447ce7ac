/**
 * API.md's placement rules on a real 3-node cluster whose nodes are each
 * given --cluster in a different order: replicas are chosen alike by every
 * node, the replicas for a smaller `from` are a prefix of those for a larger
 * one, a write is stored on no more than `from` nodes (also while a replica
 * is down), and a cluster range orders keys by their UTF-8 bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rangeEntries, startCluster, type TestCluster, waitPeerState } from '../support/cluster.js';
import { entityPath, httpRequest, rangePath } from '../support/http-client.js';
import { killAllStarted, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const KEYS = 9;

describe('3-node cluster, --cluster given in a different order to each node', () => {
  let cluster: TestCluster;
  const put = (i: number, key: string, value: string, params: Record<string, string | number>) =>
    httpRequest(`${cluster.urls[i]!}${entityPath(key, params)}`, { method: 'PUT', body: value });

  /** The nodes (among `nodes`) whose own data holds `key`. */
  async function holders(key: string, nodes: readonly number[] = [0, 1, 2]): Promise<number[]> {
    const having: number[] = [];
    for (const n of nodes) {
      const local = await rangeEntries(cluster.nodes[n]!.port, rangePath(key, `${key}\0`));
      assert.equal(local.status, 200);
      if (local.entries.length > 0) having.push(n);
    }
    return having;
  }

  before(async () => {
    cluster = await startCluster({
      count: 3,
      args: ['--sync', 'off', '--anti-entropy-interval', '0'],
      // Node 0: A,B,C; node 1: C,A,B; node 2: B,C,A.
      clusterFor: (index, urls) => [...urls.slice(3 - index), ...urls.slice(0, 3 - index)],
    });
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('every node finds a from=1 key on the same replica', async () => {
    for (let i = 0; i < KEYS; i++) {
      const key = `same-${i}`;
      assert.equal((await put(i % 3, key, `v${i}`, { ack: 1, from: 1 })).status, 201);
      for (let reader = 0; reader < 3; reader++) {
        const answer = await httpRequest(`${cluster.urls[reader]!}${entityPath(key, { ack: 1, from: 1 })}`);
        assert.equal(answer.status, 200, `${key} through node ${reader}`);
        assert.equal(answer.body.toString(), `v${i}`);
      }
    }
  });

  it('the replicas for from=1 and from=2 are a prefix of those for a larger from, whichever node coordinates', async () => {
    const firsts = new Set<number>();
    for (let i = 0; i < KEYS; i++) {
      const key = `prefix-${i}`;
      let previous: number[] = [];
      for (const from of [1, 2, 3]) {
        // Each write through another coordinator, acknowledged by all its replicas.
        assert.equal((await put((i + from) % 3, key, `from-${from}`, { ack: from, from })).status, 201);
        const having = await holders(key);
        assert.equal(having.length, from, `${key} with from=${from} is on nodes ${having.join(',')}`);
        for (const n of previous) assert.ok(having.includes(n), `${key}: from=${from} dropped node ${n}`);
        if (from === 1) firsts.add(having[0]!);
        previous = having;
      }
    }
    assert.ok(firsts.size > 1, 'keys are spread over the nodes');
  });

  it('a scope=cluster range orders keys by their UTF-8 bytes', async () => {
    // U+FFFD is EF BF BD, U+10000 is F0 90 80 80: UTF-16 order would put U+10000 first.
    for (const [i, key] of ['utf/\u{10000}', 'utf/\uFFFD', 'utf/~'].entries()) {
      assert.equal((await put(i, key, key, { ack: 1, from: 1 })).status, 201);
    }
    for (let n = 0; n < 3; n++) {
      const answer = await rangeEntries(cluster.nodes[n]!.port, `${rangePath('utf/', 'utf0')}&scope=cluster`);
      assert.equal(answer.status, 200);
      assert.deepEqual(
        answer.entries.map(([key]) => key),
        ['utf/~', 'utf/\uFFFD', 'utf/\u{10000}'],
      );
    }
  });

  it('with a node down, a from=1 write is stored on its one replica or nowhere, never on a stand-in', async () => {
    assert.deepEqual(await stopNode(cluster.nodes[2]!), { code: 0, signal: null });
    assert.ok(await waitPeerState(cluster.urls[0]!, cluster.urls[2]!, 'down'), 'node 0 sees node 2 down');
    assert.ok(await waitPeerState(cluster.urls[1]!, cluster.urls[2]!, 'down'), 'node 1 sees node 2 down');
    let refused = 0;
    for (let i = 0; i < KEYS * 2; i++) {
      const key = `down-${i}`;
      const status = (await put(i % 2, key, 'v', { ack: 1, from: 1 })).status;
      assert.ok(status === 201 || status === 504, `${key}: ${status}`);
      const having = await holders(key, [0, 1]);
      // Stored: on its replica only. Refused (the replica is node 2): on neither live node.
      assert.equal(
        having.length,
        status === 201 ? 1 : 0,
        `${key} (${status}) is on nodes ${having.join(',')}`,
      );
      if (status === 504) refused++;
    }
    assert.ok(refused > 0 && refused < KEYS * 2, `some keys belong to node 2 (${refused} refused)`);
  });
});
