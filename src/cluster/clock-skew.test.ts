import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClockSkewMonitor } from './clock-skew.js';

const B = 'http://127.0.0.1:2';
const C = 'http://127.0.0.1:3';

test('a peer beyond the bound is named until a sample within it, or until it is forgotten (it left the cluster)', () => {
  const lines: string[] = [];
  const skew = new ClockSkewMonitor({ boundMs: 1000, log: (line) => lines.push(line) });
  skew.sample(B, 5000, 10);
  skew.sample(C, 1200, 600); // within the bound once half the round trip is allowed for
  assert.deepEqual(skew.beyond, [B]);
  assert.equal(lines.length, 1);
  skew.sample(B, 20, 2);
  assert.deepEqual(skew.beyond, []);
  assert.match(lines[1]!, /back within/);

  skew.sample(B, -3000, 2);
  skew.forget(B);
  assert.deepEqual(skew.beyond, []);
  const status = skew.status() as { maxAbsSkewMs: number; peers: Record<string, unknown> };
  assert.deepEqual(Object.keys(status.peers), [C]);
  assert.equal(status.maxAbsSkewMs, 1200);
  skew.forget('http://127.0.0.1:9');
});
