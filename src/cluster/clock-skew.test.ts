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
  // A warning (lineLog logs it at warn): writes through the two nodes may be misordered.
  assert.match(lines[0]!, /^Warning: Clock of http:\/\/127\.0\.0\.1:2 differs/);
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

test('beyond the bound only when even the most favourable reading of the sample is; one line per crossing', () => {
  const lines: string[] = [];
  const skew = new ClockSkewMonitor({ boundMs: 1000, log: (line) => lines.push(line) });
  skew.sample(B, 1100, 200); // 1100 - 100: at the bound, not past it
  skew.sample(B, -1100, 200);
  assert.deepEqual(skew.beyond, []);
  skew.sample(B, -1101, 200);
  assert.deepEqual(skew.beyond, [B], 'behind counts as well as ahead');
  for (let i = 0; i < 5; i++) skew.sample(B, 4000 + i, 2);
  assert.equal(lines.length, 1, 'logged once while it stays beyond');
  skew.sample(B, 900, 2);
  skew.sample(B, 800, 2);
  assert.equal(lines.length, 2);
});
