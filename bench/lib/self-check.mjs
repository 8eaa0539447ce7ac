/**
 * `node run.mjs check`: a quick test of the measuring parts themselves: the
 * histogram's buckets and percentiles, the response parser on every way a
 * response can be split across socket reads, the request template, the flame
 * graph's weights, the histograms read from /metrics (parsed, subtracted,
 * their quantiles, a tails window's figures per node), which window a rate
 * step quotes, that a switch refuses a value it does not take, and (short
 * loads against an in-process server on 127.0.0.1 that never answers) how
 * the load generator counts errors and which requests its send lag covers.
 * A benchmark is only as good as its instruments.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadConfig, runLoad, statusRates, stepWindow } from '../load/driver.mjs';
import { bucketHigh, bucketIndex, bucketLow, Histogram } from '../load/histogram.mjs';
import { KEY_DIGITS, RequestTemplate } from '../load/request-template.mjs';
import { ParseError, ResponseParser } from '../load/response-parser.mjs';
import { cpuProfileTree, renderFlameGraph } from '../profile/flamegraph.mjs';
import { nodeFigures } from '../server/tails.mjs';
import { startCeilingCluster } from '../server/targets.mjs';
import { makeTempDir, removeTempDir } from './procs.mjs';
import { diffHistograms, histogramQuantile, mergeSeries, parseHistograms } from './prom-histograms.mjs';
import { envChoice, envFlag } from './settings.mjs';
import { log } from './stats.mjs';

function checkHistogram() {
  // Buckets are contiguous and each value lands in the bucket whose range holds it.
  for (let v = 0; v < 300000; v += v < 1000 ? 1 : 97) {
    const i = bucketIndex(v);
    assert.ok(bucketLow(i) <= v && v <= bucketHigh(i), `value ${v} outside bucket ${i}`);
    assert.ok(bucketHigh(i) - bucketLow(i) <= Math.max(1, v / 128), `bucket ${i} too wide for ${v}`);
  }
  for (let i = 0; i < 3000; i++) assert.equal(bucketLow(i + 1), bucketHigh(i) + 1);
  assert.equal(bucketIndex(2 ** 40), bucketIndex(2 ** 32 - 1));

  const h = new Histogram();
  for (let v = 1; v <= 10000; v++) h.record(v);
  const within = (got, want) => assert.ok(Math.abs(got - want) <= want / 100 + 1, `${got} vs ${want}`);
  within(h.percentile(50), 5000);
  within(h.percentile(99), 9900);
  assert.equal(h.percentile(100), 10000);
  // The rank of a percentile is exact: 99.9% of 6,000 is the 5,994th value, not the 5,995th
  // (0.999 * 6000 is 5994.000000000001 in floating point).
  for (const n of [1000, 6000, 20000]) {
    const tail = new Histogram();
    for (let i = 0; i < n; i++) tail.record(i < n - n / 1000 ? 100 : 50000);
    assert.equal(tail.percentile(99.9), 100, `p99.9 of ${n} values with ${n / 1000} slow ones`);
  }
  const copy = Histogram.fromJSON(JSON.parse(JSON.stringify(h.toJSON())));
  assert.deepEqual(copy.summary(), h.summary());
  // Merging the halves of a set of values gives the histogram of the whole set.
  const low = new Histogram();
  const high = new Histogram();
  for (let v = 1; v <= 10000; v++) (v <= 5000 ? low : high).record(v);
  assert.deepEqual(
    Histogram.merge([low.toJSON(), new Histogram().toJSON(), high.toJSON()]).summary(),
    h.summary(),
  );
}

/** Feeds `text` split at every pair of cut points; returns the responses seen. */
function parseAllSplits(text) {
  const bytes = Buffer.from(text, 'latin1');
  const expected = [];
  new ResponseParser((...r) => expected.push(r)).feed(bytes);
  for (let a = 1; a < bytes.length; a++) {
    for (let b = a; b < bytes.length; b += Math.max(1, Math.floor(bytes.length / 17))) {
      const seen = [];
      const p = new ResponseParser((...r) => seen.push(r));
      p.feed(bytes.subarray(0, a));
      p.feed(bytes.subarray(a, b));
      p.feed(bytes.subarray(b));
      assert.deepEqual(seen, expected, `split at ${a}/${b}`);
      assert.ok(p.idle);
    }
  }
  return expected;
}

function checkParser() {
  const body = 'x'.repeat(128);
  assert.deepEqual(parseAllSplits(`HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n`), [[201, 0, false]]);
  assert.deepEqual(
    parseAllSplits(`HTTP/1.1 200 OK\r\ncontent-length: 128\r\nKeep-Alive: timeout=5\r\n\r\n${body}`),
    [[200, 128, false]],
  );
  assert.deepEqual(
    parseAllSplits(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '4\r\nab\nc\r\n1A;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n',
    ),
    [[200, 30, false]],
  );
  assert.deepEqual(
    parseAllSplits(
      `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc`,
    ),
    [[404, 3, true]],
  );
  assert.deepEqual(
    parseAllSplits(`HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi`),
    [
      [204, 0, false],
      [200, 2, false],
    ],
  );
  for (const bad of [
    'HTTP/1.1 2x0 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'garbage garbage\r\n\r\n',
  ]) {
    assert.throws(() => new ResponseParser(() => {}).feed(Buffer.from(bad)), ParseError, bad);
  }
}

function checkTemplate() {
  const t = new RequestTemplate({
    method: 'PUT',
    path: '/v0/entity?id=',
    keyPrefix: 'k',
    querySuffix: '&ack=2&from=3',
    host: '127.0.0.1',
    port: 8080,
    valueBytes: 32,
  });
  t.setKey(123456789);
  const text = t.buffer.toString('latin1');
  const key = `k${'123456789'.padStart(KEY_DIGITS, '0')}`;
  assert.ok(text.startsWith(`PUT /v0/entity?id=${key}&ack=2&from=3 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n`));
  const [head, bodyText] = text.split('\r\n\r\n');
  assert.ok(head.includes('Content-Length: 32'));
  assert.equal(Buffer.byteLength(bodyText, 'latin1'), 32);
  assert.ok(bodyText.startsWith('123456789'.padStart(KEY_DIGITS, '0')));
  const g = new RequestTemplate({
    ...{ method: 'GET', path: '/v0/entity?id=', keyPrefix: 'k', querySuffix: '' },
    host: 'h',
    port: 1,
    valueBytes: 32,
  });
  g.setKey(7);
  assert.equal(
    g.buffer.toString('latin1'),
    `GET /v0/entity?id=k${'7'.padStart(KEY_DIGITS, '0')} HTTP/1.1\r\nHost: h:1\r\n\r\n`,
  );
}

function checkFlameGraph() {
  const frame = (functionName, lineNumber = 0) => ({
    functionName,
    url: 'file:///x/dist/src/a.js',
    lineNumber,
    columnNumber: 0,
    scriptId: '1',
  });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 5] },
      { id: 2, callFrame: frame('main'), children: [4, 6] },
      { id: 3, callFrame: frame('(idle)'), children: [] },
      { id: 4, callFrame: frame('work', 9), children: [] },
      { id: 5, callFrame: frame('(garbage collector)'), children: [] },
      { id: 6, callFrame: frame('work', 9), children: [] }, // merged with node 4
    ],
    samples: [2, 4, 4, 4, 3, 3, 5, 6],
    startTime: 0,
    endTime: 8000,
  };
  const tree = cpuProfileTree(profile);
  assert.equal(tree.idle, 2);
  assert.equal(tree.root.total, 6);
  const main = [...tree.root.children.values()].find((n) => n.name === 'main');
  assert.equal(main.total, 5);
  assert.equal(main.self, 1);
  assert.equal(main.children.size, 1);
  const work = [...main.children.values()][0];
  assert.equal(work.total, 4);
  assert.equal(work.line, 10);
  assert.equal(work.file, 'dist/src/a.js');
  const svg = renderFlameGraph(tree, { title: 't<&>' });
  assert.ok(
    svg.startsWith('<?xml') && svg.includes('t&lt;&amp;&gt;') && svg.includes('work (dist/src/a.js:10)'),
  );
}

function checkPromHistograms() {
  const text = (minor, major) =>
    [
      '# HELP gc GC pauses',
      '# TYPE gc histogram',
      `gc_bucket{le="0.001",kind="minor"} ${minor[0]}`,
      `gc_bucket{le="0.01",kind="minor"} ${minor[1]}`,
      `gc_bucket{le="+Inf",kind="minor"} ${minor[2]}`,
      `gc_sum{kind="minor"} ${minor[2] * 0.002}`,
      `gc_count{kind="minor"} ${minor[2]}`,
      `gc_bucket{le="0.001",kind="major"} 0`,
      `gc_bucket{le="0.01",kind="major"} ${major}`,
      `gc_bucket{le="+Inf",kind="major"} ${major}`,
      `gc_count{kind="major"} ${major}`,
      'other_bucket{le="1"} 5',
    ].join('\n');
  const start = parseHistograms(text([10, 20, 20], 1), ['gc']);
  const end = parseHistograms(text([60, 120, 120], 3), ['gc']);
  assert.deepEqual(Object.keys(start), ['gc'], 'only the histograms asked for');
  const diff = diffHistograms(start, end);
  const minor = diff.gc['kind="minor"'];
  assert.deepEqual(minor.cumulative, [50, 100, 100]);
  assert.equal(minor.count, 100);
  // Half of the window's 100 pauses were at most 1 ms: the median is 1 ms, p99 inside (1, 10] ms.
  assert.equal(histogramQuantile(minor, 0.5), 0.001);
  assert.ok(Math.abs(histogramQuantile(minor, 0.99) - (0.001 + 0.009 * 0.98)) < 1e-9);
  const all = mergeSeries(diff.gc);
  assert.deepEqual(all.cumulative, [50, 102, 102]);
  assert.equal(mergeSeries(diff.gc, (labels) => labels.includes('kind="major"')).count, 2);
  assert.equal(histogramQuantile(mergeSeries({}), 0.99), null, 'no pauses: no quantile');
}

/**
 * A node's tail figures need both of its snapshots: with the start's histograms missing (a status or
 * /metrics read that failed), the end's counts since the node started are no window's figures.
 */
function checkTailNodeFigures() {
  const text = (gcCount, gcSeconds) =>
    [
      `ringkv_nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor"} ${gcCount}`,
      `ringkv_nodejs_gc_duration_seconds_bucket{le="+Inf",kind="minor"} ${gcCount}`,
      `ringkv_nodejs_gc_duration_seconds_sum{kind="minor"} ${gcSeconds}`,
      `ringkv_nodejs_gc_duration_seconds_count{kind="minor"} ${gcCount}`,
    ].join('\n');
  const names = ['ringkv_nodejs_gc_duration_seconds'];
  const snap = (gcCount, gcSeconds) => ({
    atMs: 0,
    body: { histograms: parseHistograms(text(gcCount, gcSeconds), names) },
  });
  // 10,000 pauses since the node started, 20 of them in this 2 s window.
  const both = nodeFigures(snap(9980, 9.98), snap(10000, 10), 2, 'get');
  assert.equal(both.gcPerS, 10);
  assert.ok(Math.abs(both.gcShare - 0.01) < 1e-9);
  for (const [start, end] of [
    [{ atMs: 0, body: null }, snap(10000, 10)],
    [{ atMs: 0, body: { histograms: null } }, snap(10000, 10)],
    [undefined, snap(10000, 10)],
    [snap(9980, 9.98), { atMs: 0, body: null }],
  ]) {
    const figures = nodeFigures(start, end, 2, 'get');
    assert.deepEqual(Object.keys(figures).sort(), Object.keys(both).sort());
    for (const [k, v] of Object.entries(figures)) assert.equal(v, null, `${k} without both snapshots`);
  }
}

/** A rate step's reported figures come from a window that agrees with its verdict. */
function checkStepWindow() {
  const w = (pass, p99Ms, errorCount) => ({ pass, result: { latency: { p99Ms }, measured: { errorCount } } });
  // Passed 2 of 3; the failed window (3 errors) has the middle p99.
  const passing = [w(true, 4, 0), w(false, 6, 3), w(true, 8, 0)];
  assert.deepEqual(stepWindow(passing, true), passing[2]);
  // Failed 2 of 3 on errors, with low p99s; the passing window is in the middle.
  const failing = [w(false, 2, 5), w(true, 5, 0), w(false, 7, 1)];
  assert.equal(stepWindow(failing, false).pass, false);
  // Of two that agree, the worse; of three, the middle.
  assert.deepEqual(stepWindow([w(true, 9, 0), w(true, 3, 0)], true).result.latency.p99Ms, 9);
  assert.deepEqual(stepWindow([w(true, 9, 0), w(false, 30, 0), w(true, 3, 0)], true).result.latency.p99Ms, 9);
}

/** A switch takes its values and its default, and refuses any other value rather than falling back to the default. */
function checkSettings() {
  const name = 'BENCH_SELF_CHECK_SWITCH';
  const saved = process.env[name];
  try {
    delete process.env[name];
    assert.equal(envChoice(name, '1', ['0', '1']), '1');
    assert.equal(envFlag(name, true), true);
    process.env[name] = '0';
    assert.equal(envChoice(name, '1', ['0', '1']), '0');
    assert.equal(envFlag(name, true), false);
    for (const bad of ['yes', '2', 'off']) {
      process.env[name] = bad;
      assert.throws(() => envChoice(name, '1', ['0', '1']), {
        message: `${name} must be 0 or 1: got ${bad}`,
      });
    }
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}

/** Rates of /v0/status counters: per second between the snapshots, summed over the nodes. */
function checkStatusRates() {
  const snap = (atMs, user) => ({ atMs, body: user === null ? null : { cpu: { user, system: 0 } } });
  const run = (start, end) => statusRates({ status: { start, end } }, { cpuUser: 'cpu.user' }).cpuUser;
  assert.equal(run([snap(0, 100), snap(0, 100)], [snap(2000, 300), snap(2000, 500)]), 300);
  // A node whose snapshot failed at one end: the sum over the others would be no rate at all.
  assert.equal(run([snap(0, 100), snap(0, 100)], [snap(2000, 300), snap(2000, null)]), null);
  assert.equal(run([snap(0, null), snap(0, 100)], [snap(2000, 300), snap(2000, 500)]), null);
}

/** Runs `fn(port)` with a server on 127.0.0.1 that accepts connections and never answers. */
async function withSilentServer(fn) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await fn(server.address().port);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

/**
 * One short load run against a server that accepts connections and never answers: every request
 * due in the window is an error exactly once, and the timeline's slots (which the restart and join
 * benches cut into windows) hold every one of them, the backlog left unsent at the end included.
 */
async function checkUnansweredLoad() {
  await withSilentServer(async (port) => {
    const rate = 100;
    const durationMs = 1000;
    const result = await runLoad(
      loadConfig({
        targets: [{ host: '127.0.0.1', port }],
        connections: 2,
        rate,
        warmupMs: 0,
        durationMs,
        timeoutMs: 300,
        timelineMs: 100,
      }),
    );
    const due = (rate * durationMs) / 1000;
    assert.equal(result.measured.ok, 0);
    assert.equal(result.measured.errorCount, due, 'each request due in the window is one error');
    let inSlots = 0;
    for (const slot of result.timeline.slots) {
      const e = slot.errors;
      inSlots += e.body + e.socket + e.parse + e.timeout + e.connect + e.unfinished;
      for (const n of Object.values(e.status)) inSlots += n;
    }
    assert.equal(inSlots, due, 'the slots hold every error of the window');
  });
}

/**
 * sendLag, the generator's own lateness, is that of the measured window, as the latencies are. Against
 * a server that never answers, each connection sends one request on its timer, due in the warm-up;
 * the rest leave after a reconnect (a timeout's) or never: no request of the window left on a timer.
 */
async function checkSendLagWindow() {
  await withSilentServer(async (port) => {
    const result = await runLoad(
      loadConfig({
        targets: [{ host: '127.0.0.1', port }],
        connections: 2,
        rate: 100,
        warmupMs: 200,
        durationMs: 100,
        timeoutMs: 400,
      }),
    );
    assert.equal(result.measured.sent, 0);
    assert.equal(result.measured.errorCount, 10, 'the 10 requests due in the window are errors');
    assert.equal(result.sendLag.count, 0, 'no send lag from requests due in the warm-up');
  });
}

/**
 * The durable ceiling cluster (--log-dir): a PUT with ack=3 is answered only
 * once every node's log holds its copy, the records written over the zeros, and the
 * value reads back from another node.
 */
async function checkDurableCeiling() {
  const work = makeTempDir('check-ceiling');
  const logDir = path.join(work, 'logs');
  const logBytes = 1 << 16;
  const ceiling = await startCeilingCluster({
    nodes: 3,
    logFile: path.join(work, 'ceiling.log'),
    logDir,
    logBytes,
  });
  try {
    const [first, second] = ceiling.ports.map((port) => `http://127.0.0.1:${port}`);
    const value = `durable-${process.pid}`;
    const put = await fetch(`${first}/v0/entity?id=k1&ack=3&from=3`, { method: 'PUT', body: value });
    assert.equal(put.status, 201);
    // The record: the key's length (u16), the key, the value.
    const record = Buffer.concat([Buffer.from([0, 2]), Buffer.from('k1'), Buffer.from(value)]);
    const logs = fs.readdirSync(logDir).map((name) => fs.readFileSync(path.join(logDir, name)));
    assert.equal(logs.length, 3);
    for (const bytes of logs) assert.equal(bytes.length, logBytes, 'a log keeps the size of its zeros');
    const holding = logs.filter((bytes) => bytes.subarray(0, record.length).equals(record)).length;
    assert.equal(holding, 3, `answered with ${holding} of 3 logs holding the write, 3 asked`);
    const get = await fetch(`${second}/v0/entity?id=k1&ack=1&from=3`);
    assert.equal(get.status, 200);
    assert.equal(await get.text(), value);
  } finally {
    await ceiling.stop();
    removeTempDir(work);
  }
}

export async function runSelfCheck() {
  checkHistogram();
  log('check: histogram ok');
  checkParser();
  log('check: response parser ok');
  checkTemplate();
  log('check: request template ok');
  checkFlameGraph();
  log('check: flame graph ok');
  checkPromHistograms();
  log('check: /metrics histograms ok');
  checkStatusRates();
  log('check: status rates ok');
  checkStepWindow();
  log('check: rate step figures ok');
  checkSettings();
  log('check: settings ok');
  checkTailNodeFigures();
  log('check: tail figures per node ok');
  await checkUnansweredLoad();
  log('check: load generator error accounting ok');
  await checkSendLagWindow();
  log('check: load generator send lag ok');
  await checkDurableCeiling();
  log('check: durable ceiling cluster ok');
}
