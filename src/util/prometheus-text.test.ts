import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Histogram } from './histogram.js';
import { formatValue, PrometheusText } from './prometheus-text.js';

test('writes HELP and TYPE once per family, then its samples, with labels escaped', () => {
  const text = new PrometheusText();
  text.counter('x_requests_total', 'Requests\nanswered, by path \\ "kind"', [
    { labels: { path: 'a"b\\c\nd', kind: 'get' }, value: 3 },
    { value: 0 },
  ]);
  text.gauge('x_up', 'Up', [{ value: 1 }]);
  assert.equal(
    text.toString(),
    [
      '# HELP x_requests_total Requests\\nanswered, by path \\\\ "kind"',
      '# TYPE x_requests_total counter',
      'x_requests_total{path="a\\"b\\\\c\\nd",kind="get"} 3',
      'x_requests_total 0',
      '# HELP x_up Up',
      '# TYPE x_up gauge',
      'x_up 1',
      '',
    ].join('\n'),
  );
});

test('writes a histogram with cumulative buckets, +Inf equal to the count, sum and count', () => {
  const histogram = new Histogram([0.001, 0.01, 0.1]);
  for (const value of [0.0005, 0.001, 0.002, 0.05, 3]) histogram.observe(value);
  assert.deepEqual([...histogram.counts], [2, 1, 1, 1]);
  const text = new PrometheusText();
  text.histogram('x_seconds', 'Latency', [{ labels: { op: 'get' }, histogram }]);
  assert.deepEqual(text.toString().split('\n').slice(2, -1), [
    'x_seconds_bucket{op="get",le="0.001"} 2',
    'x_seconds_bucket{op="get",le="0.01"} 3',
    'x_seconds_bucket{op="get",le="0.1"} 4',
    'x_seconds_bucket{op="get",le="+Inf"} 5',
    'x_seconds_sum{op="get"} 3.0535',
    'x_seconds_count{op="get"} 5',
  ]);
});

test('appends foreign text without blank lines; refuses bad names, a counter without _total, a family twice', () => {
  const text = new PrometheusText();
  text.append('# HELP a_b A\n# TYPE a_b gauge\na_b 1\n\n# HELP c C\n# TYPE c gauge\nc 2\n');
  assert.equal(text.toString(), '# HELP a_b A\n# TYPE a_b gauge\na_b 1\n# HELP c C\n# TYPE c gauge\nc 2\n');
  assert.throws(() => text.counter('x_requests', 'No suffix', []));
  assert.throws(() => text.gauge('9lives', 'Bad name', []));
  assert.throws(() => text.gauge('x_bad_label', 'Bad label', [{ labels: { 'a-b': '1' }, value: 1 }]));
  text.gauge('x_once', 'Once', []);
  assert.throws(() => text.gauge('x_once', 'Twice', []));
});

test('formats values as the format reads them', () => {
  assert.equal(formatValue(Number.POSITIVE_INFINITY), '+Inf');
  assert.equal(formatValue(Number.NEGATIVE_INFINITY), '-Inf');
  assert.equal(formatValue(Number.NaN), 'NaN');
  assert.equal(formatValue(1e-7), '1e-7');
  assert.equal(formatValue(42), '42');
});

test('a histogram refuses bounds that do not ascend', () => {
  assert.throws(() => new Histogram([]));
  assert.throws(() => new Histogram([0.1, 0.1]));
});
