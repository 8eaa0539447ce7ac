import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineTimer, type Expirable } from './deadlines.js';

function item(deadlineMs: number, expired: number[]): Expirable {
  return { deadlineMs, bucket: -1, expire: () => expired.push(deadlineMs) };
}

test('items expire once their deadline passed, never before, and removed ones never', async () => {
  const now = { ms: 0 };
  const expired: number[] = [];
  let ticks = 0;
  const timer = new DeadlineTimer({ resolutionMs: 5, nowMs: () => now.ms, onTick: () => ticks++ });
  const a = item(100, expired);
  const b = item(200, expired);
  const c = item(300, expired);
  for (const i of [a, b, c]) timer.add(i);
  assert.equal(timer.size, 3);
  for (let i = 0; i < 50 && ticks < 3; i++) await sleep(5);
  assert.deepEqual(expired, [], 'nothing is due at time 0');

  now.ms = 150;
  const seen = ticks;
  for (let i = 0; i < 50 && ticks < seen + 2; i++) await sleep(5);
  assert.deepEqual(expired, [100]);
  timer.remove(b);
  assert.equal(b.bucket, -1);
  now.ms = 1000;
  for (let i = 0; i < 50 && expired.length < 2; i++) await sleep(5);
  assert.deepEqual(expired, [100, 300]);
  assert.equal(timer.size, 0);
  // The timer stops once empty: no further ticks.
  const stopped = ticks;
  await sleep(30);
  assert.ok(ticks <= stopped + 1);
  timer.close();
});
