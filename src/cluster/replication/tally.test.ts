import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineTimer } from '../../util/deadlines.js';
import { RingkvError } from '../../util/errors.js';
import { Tally } from './tally.js';

const deadlines = new DeadlineTimer({ resolutionMs: 1 });
afterEach(() => assert.equal(deadlines.size, 0, 'a done tally leaves the timer'));

/** A tally of `needed` of `total` whose onDone() calls are recorded. */
function tally(needed: number, total: number, deadlineMs = Date.now() + 60_000) {
  const calls: { err: RingkvError | undefined; conflict: bigint | undefined }[] = [];
  const t = new Tally({
    needed,
    total,
    deadlineMs,
    timeoutMs: 60_000,
    deadlines,
    onDone: (err, conflict) => calls.push({ err, conflict }),
  });
  return { t, calls };
}

test('done once `needed` succeeded; later answers change nothing', () => {
  const { t, calls } = tally(2, 3);
  t.succeed();
  assert.equal(t.done, false);
  t.fail('c', new Error('down'));
  t.succeed();
  assert.equal(t.done, true);
  t.fail('b', new Error('late'));
  t.succeed();
  assert.deepEqual(calls, [{ err: undefined, conflict: undefined }]);
});

test('fails as soon as `needed` can no longer be reached, naming at most three reasons', () => {
  const { t, calls } = tally(2, 5);
  for (const peer of ['a', 'b', 'c']) t.fail(peer, new Error('down'));
  assert.equal(calls.length, 0, 'two replicas may still answer');
  t.fail('d', new Error('down'));
  assert.equal(calls.length, 1);
  const err = calls[0]!.err;
  assert.ok(err instanceof RingkvError && err.code === 'RINGKV_NOT_ENOUGH_REPLICAS');
  assert.match(err.message, /Only 0 of 2 required replicas answered; 4 failed: a: down; b: down; c: down$/);
});

test('finish() ends the round early with a conflict, once', () => {
  const { t, calls } = tally(2, 3);
  t.finish(undefined, 7n);
  t.finish(undefined, 9n);
  t.succeed();
  t.succeed();
  assert.deepEqual(calls, [{ err: undefined, conflict: 7n }]);
});

test('504 at the deadline', async () => {
  const { t, calls } = tally(1, 1, Date.now() + 5);
  for (let i = 0; i < 100 && calls.length === 0; i++) await sleep(5);
  assert.equal(t.done, true);
  assert.match(calls[0]?.err?.message ?? '', /Only 0 of 1 required replicas answered within 60000 ms/);
});
