/**
 * Consistency receipts (docs/api.md, "Consistency receipts") on real nodes:
 * with `trace=1` a GET, PUT or DELETE answers which replicas answered and
 * how (x-ringkv-replicas), the winning or written version
 * (x-ringkv-version, decimal) and, for reads, whether a read repair was
 * started (x-ringkv-read-repair). Without trace=1 none of these headers;
 * trace other than 1 is 400.
 *
 * On a single node over both request paths (a connection per request goes
 * to node:http, keep-alive to the fast path), and on a 3-node cluster: a
 * replica that missed a write shows as stale and its read starts a repair;
 * a stopped node shows as failed.
 */
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { entityPath, type HttpAnswer, httpRequest } from '../support/http-client.js';
import { killAllStarted, type NodeProcess, sleep, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const RECEIPT_HEADERS = ['x-ringkv-version', 'x-ringkv-replicas', 'x-ringkv-read-repair'] as const;

/** The version header as a bigint; fails unless it is canonical decimal. */
function versionOf(answer: HttpAnswer): bigint {
  const text = answer.headers['x-ringkv-version'];
  assert.equal(typeof text, 'string', 'x-ringkv-version is present');
  assert.match(text as string, /^[1-9][0-9]*$/);
  return BigInt(text as string);
}

/** The replicas header as [url, outcome] pairs, in its order. */
function replicasOf(answer: HttpAnswer): [string, string][] {
  const text = answer.headers['x-ringkv-replicas'];
  assert.equal(typeof text, 'string', 'x-ringkv-replicas is present');
  return (text as string).split(',').map((item) => {
    const at = item.lastIndexOf('=');
    return [item.slice(0, at), item.slice(at + 1)];
  });
}

function assertNoReceipt(answer: HttpAnswer): void {
  for (const name of RECEIPT_HEADERS) assert.equal(answer.headers[name], undefined, name);
}

const CLIENTS = [
  { name: 'a connection per request', keepAlive: false },
  { name: 'keep-alive connections (fast path)', keepAlive: true },
] as const;

for (const client of CLIENTS)
  describe(`receipts on a single node, ${client.name}`, () => {
    let node: NodeProcess;
    const agent = client.keepAlive ? new Agent({ keepAlive: true, maxSockets: 2 }) : undefined;
    const call = (key: string, params: Record<string, string | number>, method = 'GET', body?: string) =>
      httpRequest(`${node.url}${entityPath(key, params)}`, {
        agent,
        method,
        ...(body === undefined ? {} : { body }),
      });

    before(async () => {
      node = await startNode({ dataDir: await makeTempDir(), args: ['--sync', 'off'] });
    });
    after(async () => {
      agent?.destroy();
      await killAllStarted();
      await removeTempDirs();
    });

    it('PUT, GET and DELETE with trace=1 name the node itself and the version', async () => {
      const startedMs = BigInt(Date.now());
      const put = await call('k', { trace: 1 }, 'PUT', 'v');
      assert.equal(put.status, 201);
      const written = versionOf(put);
      // The hybrid clock's top 48 bits are milliseconds since the epoch.
      assert.ok(written >> 16n >= startedMs - 1000n && written >> 16n <= BigInt(Date.now()) + 1000n);
      assert.deepEqual(replicasOf(put), [[node.url, 'ok']]);
      assert.equal(put.headers['x-ringkv-read-repair'], undefined, 'writes have no read repair');

      const get = await call('k', { trace: 1 });
      assert.equal(get.status, 200);
      assert.equal(get.body.toString(), 'v');
      assert.equal(versionOf(get), written);
      assert.deepEqual(replicasOf(get), [[node.url, 'ok']]);
      assert.equal(get.headers['x-ringkv-read-repair'], 'none');

      const del = await call('k', { trace: 1 }, 'DELETE');
      assert.equal(del.status, 202);
      const deleted = versionOf(del);
      assert.ok(deleted > written);
      assert.deepEqual(replicasOf(del), [[node.url, 'ok']]);

      // A 404 for a delete still names the delete's version.
      const gone = await call('k', { trace: 1 });
      assert.equal(gone.status, 404);
      assert.equal(versionOf(gone), deleted);
    });

    it('a key never written: 404, no version, the node answered', async () => {
      const answer = await call('never', { trace: 1 });
      assert.equal(answer.status, 404);
      assert.equal(answer.headers['x-ringkv-version'], undefined);
      assert.deepEqual(replicasOf(answer), [[node.url, 'ok']]);
      assert.equal(answer.headers['x-ringkv-read-repair'], 'none');
    });

    it('no receipt headers without trace=1', async () => {
      assertNoReceipt(await call('plain', {}, 'PUT', 'v'));
      assertNoReceipt(await call('plain', {}));
      assertNoReceipt(await call('plain', {}, 'DELETE'));
      assertNoReceipt(await call('plain', {}));
    });

    it('trace other than 1 is 400 with a reason, and nothing is written', async () => {
      for (const trace of ['2', 'x', '0', '', 'true']) {
        for (const method of ['GET', 'PUT', 'DELETE']) {
          const answer = await call('bad-trace', { trace }, method, method === 'PUT' ? 'v' : undefined);
          assert.equal(answer.status, 400, `${method} trace=${trace}`);
          assert.equal(answer.body.toString(), 'Bad trace: expected 1');
          assertNoReceipt(answer);
        }
      }
      assert.equal((await call('bad-trace', {})).status, 404);
    });
  });

describe('receipts on a 3-node cluster', () => {
  let cluster: TestCluster;
  const url = (i: number) => cluster.urls[i]!;
  const call = (
    i: number,
    key: string,
    params: Record<string, string | number>,
    method = 'GET',
    body?: string,
  ) =>
    httpRequest(`${url(i)}${entityPath(key, params)}`, { method, ...(body === undefined ? {} : { body }) });
  /** The outcomes by node URL. */
  const outcomes = (answer: HttpAnswer) => new Map(replicasOf(answer));

  before(async () => {
    // No anti-entropy: a replica that missed a write stays stale until a read repairs it.
    cluster = await startCluster({
      count: 3,
      args: ['--sync', 'off', '--anti-entropy-interval', '0', '--request-timeout', '2000'],
    });
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('PUT, GET and DELETE with trace=1 list the replicas that answered and the version', async () => {
    const put = await call(0, 'k', { trace: 1, ack: 3, from: 3 }, 'PUT', 'v');
    assert.equal(put.status, 201);
    const written = versionOf(put);
    assert.deepEqual(
      outcomes(put),
      new Map(cluster.urls.map((u) => [u, 'ok'])),
      'every replica acknowledged',
    );

    for (let reader = 0; reader < 3; reader++) {
      const get = await call(reader, 'k', { trace: 1 });
      assert.equal(get.status, 200);
      assert.equal(versionOf(get), written);
      const answered = replicasOf(get);
      assert.equal(answered[0]![0], url(reader), 'the coordinator reads its own copy first');
      assert.ok(answered.every(([u]) => cluster.urls.includes(u)));
      // A quorum read asks two replicas; on a busy machine it may ask the third after 20 ms (a hedge).
      const ok = answered.filter(([, outcome]) => outcome === 'ok').length;
      const pending = answered.filter(([, outcome]) => outcome === 'pending').length;
      assert.ok(ok >= 2 && ok + pending === answered.length && answered.length <= 3, String(answered));
      assert.equal(get.headers['x-ringkv-read-repair'], pending > 0 ? 'pending' : 'none');
    }

    const del = await call(1, 'k', { trace: 1 }, 'DELETE');
    assert.equal(del.status, 202);
    assert.ok(versionOf(del) > written);
    const acknowledged = replicasOf(del).filter(([, outcome]) => outcome === 'ok');
    assert.ok(acknowledged.length >= 2, 'at least ack=2 acknowledged');
    for (const [, outcome] of replicasOf(del)) assert.ok(outcome === 'ok' || outcome === 'pending', outcome);
  });

  it('a read after one replica missed a write: that replica stale, a read repair started, then fixed', async () => {
    assert.equal((await call(0, 'missed', { ack: 3, from: 3 }, 'PUT', 'old')).status, 201);
    // from=2: only the key's first two replicas get the new value; the third misses it.
    const put = await call(1, 'missed', { trace: 1, ack: 2, from: 2 }, 'PUT', 'new');
    assert.equal(put.status, 201);
    const newVersion = versionOf(put);
    const writtenTo = replicasOf(put).map(([u]) => u);
    assert.equal(writtenTo.length, 2);
    const missed = cluster.urls.find((u) => !writtenTo.includes(u))!;

    const get = await call(2, 'missed', { trace: 1, ack: 3, from: 3 });
    assert.equal(get.status, 200);
    assert.equal(get.body.toString(), 'new');
    assert.equal(versionOf(get), newVersion);
    const seen = outcomes(get);
    assert.equal(seen.get(missed), 'stale');
    for (const u of writtenTo) assert.equal(seen.get(u), 'ok');
    assert.equal(get.headers['x-ringkv-read-repair'], 'started');

    // The repair reaches the stale replica: then every replica agrees and nothing is repaired.
    let again: HttpAnswer | undefined;
    for (let attempt = 0; attempt < 50; attempt++) {
      again = await call(0, 'missed', { trace: 1, ack: 3, from: 3 });
      if (outcomes(again).get(missed) === 'ok') break;
      await sleep(20);
    }
    assert.deepEqual(outcomes(again!), new Map(cluster.urls.map((u) => [u, 'ok'])));
    assert.equal(again!.headers['x-ringkv-read-repair'], 'none');
  });

  it('no receipt headers without trace=1; trace=2 and trace=x are 400', async () => {
    assertNoReceipt(await call(0, 'plain', {}, 'PUT', 'v'));
    assertNoReceipt(await call(1, 'plain', {}));
    assertNoReceipt(await call(2, 'plain', {}, 'DELETE'));
    for (const trace of ['2', 'x']) {
      const answer = await call(0, 'plain', { trace });
      assert.equal(answer.status, 400);
      assert.equal(answer.body.toString(), 'Bad trace: expected 1');
    }
  });

  it('with a node stopped: it shows as failed, and a 504 carries the receipt too', async () => {
    assert.deepEqual(await stopNode(cluster.nodes[2]!), { code: 0, signal: null });
    const put = await call(0, 'down', { trace: 1, ack: 2, from: 3 }, 'PUT', 'v');
    assert.equal(put.status, 201);
    const seen = outcomes(put);
    assert.equal(seen.get(url(0)), 'ok');
    assert.equal(seen.get(url(1)), 'ok');
    // The stopped node fails at once (refused), or had not failed yet when two had acknowledged.
    assert.ok(['failed', 'pending'].includes(seen.get(url(2))!), seen.get(url(2)));

    const get = await call(1, 'down', { trace: 1, ack: 3, from: 3 });
    assert.equal(get.status, 504);
    assert.equal(outcomes(get).get(url(2)), 'failed');
    // The newest version among the answers counted before the 504, if any had come.
    if (get.headers['x-ringkv-version'] !== undefined) assert.equal(versionOf(get), versionOf(put));
  });
});
