import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestMetrics, RequestOp } from './request-metrics.js';

test('requests are counted by operation and status', () => {
  const metrics = new RequestMetrics();
  metrics.observe(RequestOp.Get, 200, 0.001);
  metrics.observe(RequestOp.Get, 404, 0.001);
  metrics.observe(RequestOp.Put, 201, 0.002);
  assert.equal(metrics.count(RequestOp.Get), 2);
  assert.equal(metrics.count(RequestOp.Get, 404), 1);
  assert.equal(metrics.count(RequestOp.Put, 201), 1);
  assert.equal(metrics.count(RequestOp.Delete), 0);
});

test('client requests over the threshold are reported; ranges, fast ones and a zero threshold are not', () => {
  const reports: [string, number, number][] = [];
  const metrics = new RequestMetrics({
    slowMs: 100,
    onSlow: (op, status, ms) => reports.push([op, status, ms]),
  });
  metrics.observe(RequestOp.Get, 200, 0.05);
  metrics.observe(RequestOp.Get, 504, 0.25);
  metrics.observe(RequestOp.Put, 201, 0.101);
  metrics.observe(RequestOp.Range, 200, 5);
  metrics.observe(RequestOp.Internode, 200, 5);
  assert.deepEqual(reports, [
    ['get', 504, 250],
    ['put', 201, 101],
  ]);
  const off = new RequestMetrics({ slowMs: 0, onSlow: () => assert.fail('reported with the threshold off') });
  off.observe(RequestOp.Get, 200, 10);
});
