/**
 * A node that is back is used at once (real processes): a node stopped with
 * SIGTERM and started again, the moment its /v0/health?ready=1 answers 200,
 * serves and is served by its peers, with no request answered 504 in the
 * meantime; hints for the writes it missed reach it without waiting for the
 * handoff schedule. And a hung node (SIGSTOP, its sockets open) costs the
 * requests that do not need it nothing, and is used again once continued.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  rangeEntries,
  startCluster,
  storeStatus,
  type TestCluster,
  waitPeerState,
} from '../support/cluster.js';
import { entityPath, type HttpAnswer, httpRequest } from '../support/http-client.js';
import { checkValues, describeEvents, startLoad, summarize } from '../support/load-client.js';
import {
  killAllStarted,
  pauseNode,
  resumeNode,
  sleep,
  stopNode,
  waitHealthReady,
} from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

type Params = Record<string, string | number>;

/**
 * Requests sent together, each labelled: label -> its status (and, with
 * `withBody`, its body), or the error, for one assertion that names them all.
 */
async function together(
  requests: Record<string, { answer: Promise<HttpAnswer>; withBody?: boolean }>,
): Promise<Record<string, string>> {
  const entries = Object.entries(requests);
  const settled = await Promise.allSettled(entries.map(([, request]) => request.answer));
  const out: Record<string, string> = {};
  settled.forEach((result, i) => {
    const [label, request] = entries[i]!;
    if (result.status === 'rejected') {
      out[label] = `error ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`;
    } else {
      const { status, body } = result.value;
      out[label] =
        request.withBody || status >= 300 ? `${status} ${body.toString().slice(0, 80)}` : String(status);
    }
  });
  return out;
}

/** Polls `check` every 50 ms for at most `timeoutMs`; true once it held. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    if (await check()) return true;
    await sleep(50);
  }
  return check();
}

for (const size of [2, 3]) {
  describe(`${size}-node cluster: a node restarted with SIGTERM is used as soon as it is ready`, () => {
    let cluster: TestCluster;
    const last = size - 1;
    const all: Params = { ack: size, from: size };
    const url = (i: number) => cluster.urls[i]!;
    const put = (i: number, key: string, value: string, params: Params = all) =>
      httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'PUT', body: value });
    const get = (i: number, key: string, params: Params = all) =>
      httpRequest(`${url(i)}${entityPath(key, params)}`);
    const del = (i: number, key: string, params: Params = all) =>
      httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'DELETE' });
    const clusterRange = (i: number) => httpRequest(`${url(i)}/v0/entities?start=a&scope=cluster`);
    const localRange = async (i: number, prefix: string) =>
      (await rangeEntries(cluster.nodes[i]!.port, `/v0/entities?start=${prefix}&end=${prefix}~`)).entries;

    before(async () => {
      cluster = await startCluster({
        count: size,
        // Handoffs on their schedule only every 10 minutes: a hint that arrives
        // promptly was sent because the peer came back.
        args: ['--sync', 'off', '--anti-entropy-interval', '0'],
        envFor: () => ({ RINGKV_HINT_HANDOFF_INTERVAL_MS: '600000' }),
      });
    });
    after(async () => {
      await killAllStarted();
      await removeTempDirs();
    });

    it(`/v0/health answers 200 ok, and ?ready=1 answers 200 on every running node`, async () => {
      for (let i = 0; i < size; i++) {
        const health = await httpRequest(`${url(i)}/v0/health`);
        assert.equal(health.status, 200);
        assert.deepEqual(JSON.parse(health.body.toString()), { status: 'ok' });
        assert.equal((await httpRequest(`${url(i)}/v0/health?ready=1`)).status, 200);
      }
    });

    it(`right after ready: GET, PUT, DELETE with ack=from=${size} and a cluster range succeed through every node`, async () => {
      const others = Array.from({ length: last }, (_, i) => i);
      for (const i of [...others, last]) {
        assert.equal((await put(0, `kept-${i}`, `before-${i}`)).status, 201);
        assert.equal((await put(0, `doomed-${i}`, 'x')).status, 201);
      }
      assert.deepEqual(await stopNode(cluster.nodes[last]!), { code: 0, signal: null });
      await cluster.restart(last, { readiness: 'health' });
      // At once, all together: each of them is among the first requests after the restart.
      const requests: Parameters<typeof together>[0] = {};
      const want: Record<string, string> = {};
      for (const i of [...others, last]) {
        const via = i === last ? 'the restarted node' : `node ${i}`;
        requests[`GET via ${via}`] = { answer: get(i, `kept-${i}`), withBody: true };
        want[`GET via ${via}`] = `200 before-${i}`;
        requests[`PUT via ${via}`] = { answer: put(i, `fresh-${i}`, `new-${i}`) };
        want[`PUT via ${via}`] = '201';
        requests[`DELETE via ${via}`] = { answer: del(i, `doomed-${i}`) };
        want[`DELETE via ${via}`] = '202';
        requests[`cluster range via ${via}`] = { answer: clusterRange(i) };
        want[`cluster range via ${via}`] = '200';
      }
      assert.deepEqual(await together(requests), want);

      const expected: [string, string][] = [];
      for (let i = 0; i < size; i++) expected.push([`fresh-${i}`, `new-${i}`], [`kept-${i}`, `before-${i}`]);
      expected.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      for (let i = 0; i < size; i++) {
        const range = await rangeEntries(cluster.nodes[i]!.port, '/v0/entities?start=a&scope=cluster');
        assert.equal(range.status, 200);
        assert.deepEqual(range.entries, expected, `cluster range via node ${i}`);
      }
    });

    it('the writes a stopped node missed reach it as soon as it is back, not on the handoff schedule', async () => {
      assert.deepEqual(await stopNode(cluster.nodes[last]!), { code: 0, signal: null });
      // One replica is down, so these are written with ack=1 in a 2-node cluster and at quorum in a 3-node one.
      const missed: [string, string][] = [];
      for (let n = 0; n < 5; n++) {
        const key = `missed-${n}`;
        assert.equal(
          (await put(n % last, key, `while-down-${n}`, { ack: size - 1, from: size })).status,
          201,
        );
        missed.push([key, `while-down-${n}`]);
      }
      await cluster.restart(last, { readiness: 'health' });
      assert.ok(
        await eventually(async () => (await localRange(last, 'missed-')).length === missed.length, 5000),
        `the restarted node's own copies: ${JSON.stringify(await localRange(last, 'missed-'))}`,
      );
      assert.deepEqual(await localRange(last, 'missed-'), missed);
      // And they are read at their newest through it, with every replica asked.
      for (const [key, value] of missed) {
        const answer = await get(last, key);
        assert.equal(`${answer.status} ${answer.body}`, `200 ${value}`);
      }
    });
  });
}

describe('3-node cluster: a hung node (SIGSTOP)', () => {
  let cluster: TestCluster;
  const url = (i: number) => cluster.urls[i]!;
  const HUNG = 2;

  before(async () => {
    cluster = await startCluster({ count: 3, args: ['--sync', 'off', '--anti-entropy-interval', '0'] });
  });
  afterEach(() => {
    // Whatever happened, the paused process is continued (and killed in `after`).
    if (cluster !== undefined) resumeNode(cluster.nodes[HUNG]!);
  });
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('requests through the other nodes at ack=2&from=3 keep succeeding; once continued, the node is used again', async (t) => {
    const hung = cluster.nodes[HUNG]!;
    const load = startLoad({
      urls: [url(0), url(1)],
      concurrency: 4,
      ratePerSecond: 200,
      keys: 40,
      query: { ack: 2, from: 3 },
      // The nodes answer by their --request-timeout (1 s; 504 if ack is out of reach); this catches a hang.
      timeoutMs: 3000,
      maxDurationMs: 15_000,
    });
    let report: Awaited<ReturnType<typeof load.stop>>;
    try {
      await sleep(500);
      load.setPhase('node C stopped');
      pauseNode(hung);
      // Past the time after which the other nodes give up on C's open connections (2 s of silence).
      await sleep(3000);
      load.setPhase('node C continued');
      resumeNode(hung);
      await sleep(500);
    } finally {
      report = await load.stop();
    }
    t.diagnostic(summarize(report));
    assert.equal(report.failures.length, 0, describeEvents(report.failures));
    assert.equal(report.failovers.length, 0, describeEvents(report.failovers));
    assert.ok(
      (report.phases['node C stopped']?.answered ?? 0) > 100,
      `requests were answered while C was stopped: ${JSON.stringify(report.phases)}`,
    );
    assert.deepEqual(await checkValues(load, cluster.urls, { ack: 2, from: 3 }), []);

    // Back: every replica answers again (within a bounded wait), through every node.
    const all = { ack: 3, from: 3 };
    assert.ok(
      await eventually(
        async () =>
          (
            await httpRequest(`${url(0)}${entityPath('after-continue', all)}`, {
              method: 'PUT',
              body: 'v',
            })
          ).status === 201,
        10_000,
      ),
      'a PUT with ack=3&from=3 succeeds once C is continued',
    );
    for (let i = 0; i < 3; i++) {
      for (let peer = 0; peer < 3; peer++) {
        if (peer !== i)
          assert.ok(await waitPeerState(url(i), url(peer), 'up'), `node ${i} sees node ${peer} up`);
      }
      const peers = (await storeStatus(url(i))).peers as Record<string, string>;
      assert.deepEqual(Object.values(peers), ['up', 'up'], `node ${i}: ${JSON.stringify(peers)}`);
      const key = `after-continue-${i}`;
      assert.equal(
        (await httpRequest(`${url(i)}${entityPath(key, all)}`, { method: 'PUT', body: `v${i}` })).status,
        201,
      );
      const read = await httpRequest(`${url((i + 1) % 3)}${entityPath(key, all)}`);
      assert.equal(`${read.status} ${read.body}`, `200 v${i}`);
      assert.equal((await httpRequest(`${url(i)}${entityPath(key, all)}`, { method: 'DELETE' })).status, 202);
    }
    await waitHealthReady(hung, 5000);
  });
});
