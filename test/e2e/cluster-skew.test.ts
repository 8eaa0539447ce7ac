/**
 * Ordering under clock skew, on a real 3-node cluster: node A's wall clock
 * runs 1 s ahead of the others (RINGKV_CLOCK_OFFSET_MS). Writes of one key
 * alternate between A and B with no pause, each sent after the previous one
 * was answered; every quorum read must return the latest.
 *
 * With from=3, B stores A's write as a replica and its clock follows. The
 * hard case is from=2 with a key whose replicas are A and C: B never sees
 * A's write, stamps a smaller version from its slower clock, and only the
 * replicas' conflict answers make it re-stamp (replication/replica.ts).
 *
 * Each case checks its own requests: the nodes' counters are read before and
 * after it, so every case passes alone and in any order.
 *
 * And a TTL under the same skew (API.md, Guarantees): the expiry is A's clock
 * plus the TTL, judged by the node that answers a read against its own clock,
 * so B and C, a second behind A, serve the value past its TTL, but never once
 * the TTL plus --max-clock-skew (here the skew itself) has passed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ring } from '../../src/cluster/ring/index.js';
import { startCluster, storeStatus, type TestCluster } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const SKEW_MS = 1000;
const ITERATIONS = 60;

describe('3-node cluster with 1 s of clock skew', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster({
      count: 3,
      args: ['--sync', 'off'],
      envFor: (i) => (i === 0 ? { RINGKV_CLOCK_OFFSET_MS: String(SKEW_MS) } : undefined),
    });
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  interface Counters {
    readonly notEnoughReplicas: number;
    readonly conflictRetries: number;
  }

  /** Each node's coordinator counters, in the order of cluster.urls. */
  async function counters(): Promise<Counters[]> {
    const stores = await Promise.all(cluster.urls.map((url) => storeStatus(url)));
    return stores.map((store) => {
      const { notEnoughReplicas, conflictRetries } = store.coordinator as Counters;
      return { notEnoughReplicas, conflictRetries };
    });
  }

  /**
   * Runs `work` and returns what it added to each node's counters, after
   * checking that no request it made failed on any node (none answered 504).
   */
  async function noRequestFailed(work: () => Promise<void>): Promise<Counters[]> {
    const before = await counters();
    await work();
    const added = (await counters()).map((c, i) => ({
      notEnoughReplicas: c.notEnoughReplicas - before[i]!.notEnoughReplicas,
      conflictRetries: c.conflictRetries - before[i]!.conflictRetries,
    }));
    added.forEach((c, i) => {
      assert.equal(
        c.notEnoughReplicas,
        0,
        `${cluster.urls[i]} answered 504 to ${c.notEnoughReplicas} requests`,
      );
    });
    return added;
  }

  /** Alternates PUT and DELETE of `keys` between A and B (both orders); reads through every node. */
  async function alternate(keys: readonly string[], params: Record<string, number>): Promise<void> {
    const [a, b, c] = cluster.urls as [string, string, string];
    const call = (node: string, key: string, method: string, body?: string) =>
      httpRequest(`${node}${entityPath(key, params)}`, body === undefined ? { method } : { method, body });
    for (let i = 0; i < ITERATIONS; i++) {
      // Even rounds: PUT through A, DELETE through B; odd rounds the other way round.
      const [first, second] = i % 2 === 0 ? [a, b] : [b, a];
      const key = keys[i % keys.length]!;
      assert.equal((await call(first, key, 'PUT', `v${i}`)).status, 201);
      const afterPut = await call([a, b, c][i % 3]!, key, 'GET');
      assert.equal(afterPut.status, 200, `round ${i}: the PUT through ${first} was lost`);
      assert.equal(afterPut.body.toString(), `v${i}`);
      assert.equal((await call(second, key, 'DELETE')).status, 202);
      const afterDelete = await call([c, a, b][i % 3]!, key, 'GET');
      assert.equal(afterDelete.status, 404, `round ${i}: the DELETE through ${second} was lost`);
      // And a PUT right after the delete, through the first node again.
      assert.equal((await call(first, key, 'PUT', `w${i}`)).status, 201);
      assert.equal(
        (await call(c, key, 'GET')).body.toString(),
        `w${i}`,
        `round ${i}: the second PUT was lost`,
      );
    }
  }

  it('the later of two writes wins, through A then B and through B then A (from=3); no request failed', async () => {
    await noRequestFailed(() => alternate(['skewed-0', 'skewed-1', 'skewed-2'], {}));
  });

  it('a value with a ttl written through A reads as absent through B and C once ttl + the skew have passed', async () => {
    const [a, b, c] = cluster.urls as [string, string, string];
    const ttlMs = 1000;
    const sentMs = Date.now();
    const put = await httpRequest(`${a}${entityPath('ttl-skewed', { ttl: ttlMs })}`, {
      method: 'PUT',
      body: 'x',
    });
    assert.equal(put.status, 201);
    const answeredMs = Date.now();
    // Past the ttl on B's clock, not on A's: A stamped its expiry at sentMs + SKEW_MS + ttlMs or later.
    await new Promise((resolve) => setTimeout(resolve, answeredMs + ttlMs + 200 - Date.now()));
    const lagging = await httpRequest(`${b}${entityPath('ttl-skewed')}`);
    // Only a GET answered before that expiry shows the lag (a stalled machine may answer later).
    if (Date.now() < sentMs + SKEW_MS + ttlMs) {
      assert.equal(lagging.status, 200, 'B, a second behind A, still serves the value past its ttl');
    }
    await new Promise((resolve) => setTimeout(resolve, answeredMs + ttlMs + SKEW_MS + 50 - Date.now()));
    for (const node of [b, c]) {
      const get = await httpRequest(`${node}${entityPath('ttl-skewed')}`);
      assert.equal(get.status, 404, `${node} serves the value once ttl + --max-clock-skew have passed`);
    }
  });

  it("also when B is no replica of the key and never sees A's write (from=2); no request failed", async () => {
    const [a, b] = cluster.urls as [string, string, string];
    const ring = new Ring(cluster.urls);
    const keys: string[] = [];
    for (let i = 0; keys.length < 3 && i < 1000; i++) {
      const replicas = ring.replicas(Buffer.from(`apart-${i}`), 2);
      if (replicas.includes(a) && !replicas.includes(b)) keys.push(`apart-${i}`);
    }
    assert.equal(keys.length, 3);
    const added = await noRequestFailed(() => alternate(keys, { from: 2 }));
    assert.ok(added[1]!.conflictRetries > 0, 'B re-stamped writes after conflicts');
  });
});
