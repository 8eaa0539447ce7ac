/**
 * `node run.mjs check`: a quick test of the measuring parts themselves, with
 * no server and no timing: the histogram's buckets and percentiles, the
 * response parser on every way a response can be split across socket reads,
 * the request template, the flame graph's weights, and the histograms read
 * from /metrics (parsed, subtracted, their quantiles). A benchmark is only
 * as good as its instruments.
 */
import assert from 'node:assert/strict';
import { bucketHigh, bucketIndex, bucketLow, Histogram } from '../load/histogram.mjs';
import { KEY_DIGITS, RequestTemplate } from '../load/request-template.mjs';
import { ParseError, ResponseParser } from '../load/response-parser.mjs';
import { cpuProfileTree, renderFlameGraph } from '../profile/flamegraph.mjs';
import { diffHistograms, histogramQuantile, mergeSeries, parseHistograms } from './prom-histograms.mjs';
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

export function runSelfCheck() {
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
}
