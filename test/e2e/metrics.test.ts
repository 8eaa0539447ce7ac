/**
 * GET /metrics on real nodes (separate processes): a node on its own, and a
 * 3-node cluster whose tests run in order on one cluster. Request counts
 * must match what was sent, on both request paths (the fast path and
 * node:http); every peer is up, round trips are measured; a stopped node
 * turns to 0 on the others, hints for it pile up and are delivered when it
 * is back; a real scrape passes `promtool check metrics` (skipped, with the
 * reason, where promtool is missing). The peer series follow the membership:
 * a node that joins (with --join, in no one's --cluster) shows on every node
 * and sees every one, and a removed node's series go away.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { entityPath, httpRequest, RawConnection } from '../support/http-client.js';
import { testNodes, waitMembers } from '../support/membership.js';
import { killAllStarted, killNode, runCli, sleep, startNode, stopNode } from '../support/node-process.js';
import {
  helpNames,
  parseSamples,
  promtoolCheck,
  promtoolMissing,
  type Samples,
  sampleValue,
} from '../support/prometheus.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

async function scrape(url: string): Promise<{ text: string; samples: Samples }> {
  const answer = await httpRequest(`${url}/metrics`);
  assert.equal(answer.status, 200);
  assert.equal(answer.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const text = answer.body.toString();
  return { text, samples: parseSamples(text) };
}

/** Scrapes `url` until `check` holds for its samples (at most `timeoutMs`); the last samples. */
async function scrapeUntil(
  url: string,
  check: (samples: Samples) => boolean,
  timeoutMs = 10_000,
): Promise<Samples> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { samples } = await scrape(url);
    if (check(samples) || Date.now() > deadline) return samples;
    await sleep(100);
  }
}

/** Sends `count` requests on one keep-alive connection (the fast path) and checks each status. */
async function sendKeepAlive(
  port: number,
  requests: readonly { head: string; status: number }[],
): Promise<void> {
  const conn = await RawConnection.open(port);
  try {
    for (const { head, status } of requests) {
      await conn.write(head);
      assert.equal((await conn.readAnswer()).status, status, head);
    }
  } finally {
    conn.close();
  }
}

const put = (key: string, value: string) => ({
  head: `PUT ${entityPath(key)} HTTP/1.1\r\nHost: x\r\nContent-Length: ${value.length}\r\n\r\n${value}`,
  status: 201,
});
const get = (key: string, status: number) => ({
  head: `GET ${entityPath(key)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  status,
});
const del = (key: string) => ({ head: `DELETE ${entityPath(key)} HTTP/1.1\r\nHost: x\r\n\r\n`, status: 202 });

/** The request series of one operation and status; its histogram's count must agree. */
function requests(samples: Samples, op: string, code: string): number | undefined {
  const total = sampleValue(samples, 'ringkv_http_requests_total', { op, code });
  assert.equal(sampleValue(samples, 'ringkv_http_request_duration_seconds_count', { op, code }), total);
  assert.equal(
    sampleValue(samples, 'ringkv_http_request_duration_seconds_bucket', { op, code, le: '+Inf' }),
    total,
  );
  return total;
}

/** The series labelled with `peer`, by their sample keys. */
function seriesOf(samples: Samples, peer: string): string[] {
  const label = JSON.stringify(['peer', peer]);
  return [...samples.keys()].filter((key) => key.includes(label));
}

function checkWithPromtool(t: { skip(reason: string): void }, text: string): void {
  const missing = promtoolMissing();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  const check = promtoolCheck(text);
  assert.equal(check.status, 0, check.output);
}

after(async () => {
  await killAllStarted();
  await removeTempDirs();
});

describe('/metrics, a node on its own', () => {
  it('counts requests on both paths, reports the engine and the process, and passes promtool', async (t) => {
    const node = await startNode({ dataDir: await makeTempDir('ringkv-metrics-'), args: ['--sync', 'off'] });
    await sendKeepAlive(node.port, [
      put('a', 'one'),
      put('b', 'two'),
      get('a', 200),
      get('zz', 404),
      del('b'),
    ]);
    // One request per connection with Connection: close: node:http answers it.
    assert.equal((await httpRequest(`${node.url}${entityPath('a')}`)).status, 200);
    const { text, samples } = await scrape(node.url);
    assert.equal(requests(samples, 'put', '201'), 2);
    assert.equal(requests(samples, 'get', '200'), 2);
    assert.equal(requests(samples, 'get', '404'), 1);
    assert.equal(requests(samples, 'delete', '202'), 1);
    assert.equal(sampleValue(samples, 'ringkv_http_fast_path_requests_total'), 5);
    assert.equal(sampleValue(samples, 'ringkv_engine_writes_total'), 3);
    assert.equal(sampleValue(samples, 'ringkv_node_ready'), 1);
    assert.ok((sampleValue(samples, 'ringkv_process_resident_memory_bytes') ?? 0) > 10_000_000);
    assert.ok(
      helpNames(text).includes('ringkv_nodejs_gc_duration_seconds'),
      'GC pauses are a family even before the first GC',
    );
    assert.deepEqual(
      helpNames(text).filter((name) => name.startsWith('ringkv_peer_')),
      [],
      'no peers, no peer series',
    );
    checkWithPromtool(t, text);
    await stopNode(node);
  });
});

describe('/metrics, a 3-node cluster', () => {
  let cluster: TestCluster;
  const url = (i: number) => cluster.urls[i]!;
  const PUTS = 12;
  const HINTED = 5;

  before(async () => {
    cluster = await startCluster({ count: 3, args: ['--sync', 'off', '--anti-entropy-interval', '300'] });
  });

  it('counts what was sent, by operation and status, on both request paths', async () => {
    const port = cluster.nodes[0]!.port;
    await sendKeepAlive(port, [
      ...Array.from({ length: PUTS }, (_, i) => put(`k${i}`, `v${i}`)),
      ...Array.from({ length: PUTS }, (_, i) => get(`k${i}`, 200)),
      get('missing', 404),
      del('k0'),
    ]);
    for (let i = 0; i < 3; i++)
      assert.equal((await httpRequest(`${url(0)}${entityPath(`k${i + 1}`)}`)).status, 200);
    const { samples } = await scrape(url(0));
    assert.equal(requests(samples, 'put', '201'), PUTS);
    assert.equal(requests(samples, 'get', '200'), PUTS + 3);
    assert.equal(requests(samples, 'get', '404'), 1);
    assert.equal(requests(samples, 'delete', '202'), 1);
    assert.equal(sampleValue(samples, 'ringkv_coordinator_requests_total', { op: 'put' }), PUTS);
    assert.equal(sampleValue(samples, 'ringkv_coordinator_requests_total', { op: 'get' }), PUTS + 4);
    assert.equal(sampleValue(samples, 'ringkv_coordinator_not_enough_replicas_total'), 0);
    // from = 3 by default: every node stores every write, this one's coordinated or not.
    assert.ok((sampleValue(samples, 'ringkv_engine_writes_total') ?? 0) >= PUTS + 1);
    // The latencies are plausible: positive, under the request timeout each.
    const sum = sampleValue(samples, 'ringkv_http_request_duration_seconds_sum', { op: 'put', code: '201' })!;
    assert.ok(sum > 0 && sum < PUTS, `sum ${sum}`);
    // The other nodes coordinated nothing.
    const other = (await scrape(url(1))).samples;
    assert.equal(sampleValue(other, 'ringkv_http_requests_total', { op: 'put', code: '201' }), undefined);
    assert.equal(sampleValue(other, 'ringkv_coordinator_requests_total', { op: 'put' }), 0);
  });

  it('shows every peer up, with measured heartbeat round trips, and passes promtool', async (t) => {
    for (let i = 0; i < 3; i++) {
      const peers = cluster.urls.filter((_, j) => j !== i);
      const samples = await scrapeUntil(url(i), (s) =>
        peers.every((peer) => (sampleValue(s, 'ringkv_peer_rtt_seconds_count', { peer }) ?? 0) >= 1),
      );
      for (const peer of peers) {
        assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer }), 1, `${url(i)} sees ${peer}`);
        assert.equal(sampleValue(samples, 'ringkv_peer_state', { peer, state: 'up' }), 1);
        assert.ok((sampleValue(samples, 'ringkv_peer_rtt_seconds_count', { peer }) ?? 0) >= 1);
        // Loopback: a round trip well under a second.
        assert.ok((sampleValue(samples, 'ringkv_peer_rtt_seconds_bucket', { peer, le: '1' }) ?? 0) >= 1);
        assert.ok(sampleValue(samples, 'ringkv_peer_clock_skew_seconds', { peer }) !== undefined);
      }
    }
    // A round is counted as it starts and its bytes as each exchange ends, and the first exchanges
    // may be skipped (sending nothing) while the node still builds its tree: wait for bytes.
    const samples = await scrapeUntil(
      url(0),
      (s) => (sampleValue(s, 'ringkv_antientropy_bytes_total', { direction: 'sent' }) ?? 0) > 0,
    );
    assert.ok((sampleValue(samples, 'ringkv_antientropy_rounds_total') ?? 0) >= 1);
    assert.ok((sampleValue(samples, 'ringkv_antientropy_bytes_total', { direction: 'sent' }) ?? 0) > 0);
    checkWithPromtool(t, (await scrape(url(0))).text);
  });

  it('a stopped node goes to 0 on the others; hints for it pile up and are delivered when it is back', async () => {
    const stopped = url(2);
    await stopNode(cluster.nodes[2]!);
    for (const i of [0, 1]) {
      const samples = await scrapeUntil(
        url(i),
        (s) => sampleValue(s, 'ringkv_peer_up', { peer: stopped }) === 0,
      );
      assert.equal(
        sampleValue(samples, 'ringkv_peer_up', { peer: stopped }),
        0,
        `${url(i)} still sees it up`,
      );
      assert.equal(sampleValue(samples, 'ringkv_peer_state', { peer: stopped, state: 'up' }), 0);
      assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer: url(1 - i) }), 1);
    }
    await sendKeepAlive(
      cluster.nodes[0]!.port,
      Array.from({ length: HINTED }, (_, i) => put(`h${i}`, `w${i}`)),
    );
    let samples = await scrapeUntil(
      url(0),
      (s) => sampleValue(s, 'ringkv_hints_pending', { peer: stopped }) === HINTED,
    );
    assert.equal(sampleValue(samples, 'ringkv_hints_pending', { peer: stopped }), HINTED);
    assert.ok((sampleValue(samples, 'ringkv_hints_pending_bytes', { peer: stopped }) ?? 0) > 0);
    assert.equal(sampleValue(samples, 'ringkv_hints_pending', { peer: url(1) }), 0);

    await cluster.restart(2);
    samples = await scrapeUntil(
      url(0),
      (s) =>
        sampleValue(s, 'ringkv_peer_up', { peer: stopped }) === 1 &&
        sampleValue(s, 'ringkv_hints_delivered_total', { peer: stopped }) === HINTED,
    );
    assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer: stopped }), 1);
    assert.equal(sampleValue(samples, 'ringkv_hints_delivered_total', { peer: stopped }), HINTED);
    assert.equal(sampleValue(samples, 'ringkv_hints_pending', { peer: stopped }), 0);
    assert.ok((sampleValue(samples, 'ringkv_peer_link_failures_total', { peer: stopped }) ?? 0) >= 1);
  });
});

describe('/metrics, peers as members join and are removed', () => {
  it('a joined node shows on every node and sees every one; a removed one leaves no series', async () => {
    const { urls, start } = await testNodes(3, { args: ['--sync', 'off'], dirPrefix: 'ringkv-metrics-' });
    const first = await Promise.all([0, 1].map((i) => start(i, ['--cluster', urls.slice(0, 2).join(',')])));
    await start(2, ['--join', urls[0]!]);
    for (const url of urls) await waitMembers(url, { normal: urls }, 60_000);
    for (const url of urls) {
      const peers = urls.filter((other) => other !== url);
      const samples = await scrapeUntil(url, (s) =>
        peers.every((peer) => sampleValue(s, 'ringkv_peer_up', { peer }) === 1),
      );
      for (const peer of peers) {
        assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer }), 1, `${url} sees ${peer}`);
        assert.ok(sampleValue(samples, 'ringkv_peer_rtt_seconds_count', { peer }) !== undefined);
        assert.equal(sampleValue(samples, 'ringkv_hints_pending', { peer }), 0);
      }
    }

    // Node 1, in node 0's --cluster, dies and is removed: its series go, rather than stay at ringkv_peer_up 0.
    const gone = urls[1]!;
    const left = [urls[0]!, urls[2]!];
    await killNode(first[1]!);
    const removed = await runCli(['remove', '--url', urls[0]!, gone], 60_000);
    assert.equal(removed.code, 0, `${removed.stdout}${removed.stderr}`);
    for (const url of left) {
      await waitMembers(url, { normal: left }, 60_000);
      const samples = await scrapeUntil(url, (s) => seriesOf(s, gone).length === 0);
      assert.deepEqual(seriesOf(samples, gone), [], `${url} still has series of the removed ${gone}`);
      const peer = left.find((other) => other !== url)!;
      assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer }), 1, `${url} sees ${peer}`);
    }
  });
});
