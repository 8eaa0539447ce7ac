import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineTimer } from '../../util/deadlines.js';
import { CorruptionError, RingkvError } from '../../util/errors.js';
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
  const down = () => new RingkvError('RINGKV_UNAVAILABLE', 'down');
  for (const peer of ['a', 'b', 'c']) t.fail(peer, down());
  assert.equal(calls.length, 0, 'two replicas may still answer');
  t.fail('d', down());
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

const diskFull = () =>
  new RingkvError('RINGKV_NO_SPACE', 'Disk full: WAL write failed: /data/000012.log: ENOSPC');

test("504 at the deadline lists the failures collected so far (a replica's Disk full)", () => {
  const { t, calls } = tally(2, 3);
  t.succeed();
  t.fail('b', diskFull());
  t.expire(); // what the timer does at the deadline
  assert.equal(
    calls[0]?.err?.message,
    'Only 1 of 2 required replicas answered within 60000 ms; 1 failed: b: Disk full: WAL write failed: /data/000012.log: ENOSPC',
  );
});

test('the same 504 whichever timer fires first: a failure past the deadline ends the round as the deadline does', () => {
  // The coordinator's timer and the transport's expire the same deadline: either may run first.
  let nowMs = 1000;
  const timer = new DeadlineTimer({ resolutionMs: 1, nowMs: () => nowMs });
  const rounds = [0, 1].map(() => {
    const calls: (RingkvError | undefined)[] = [];
    const t = new Tally({
      needed: 2,
      total: 3,
      deadlineMs: 1100,
      timeoutMs: 100,
      deadlines: timer,
      onDone: (err) => calls.push(err),
    });
    t.succeed();
    t.fail('b', diskFull());
    return { t, calls };
  });
  nowMs = 1100;
  rounds[0]!.t.expire();
  rounds[1]!.t.fail('c', new RingkvError('RINGKV_TIMEOUT', 'Peer c did not answer in time'));
  timer.close();
  const [first, second] = rounds.map(({ calls }) => calls[0]?.message);
  assert.match(first ?? '', /within 100 ms; 1 failed: b: Disk full/);
  assert.equal(second, first);
});

test('after a pause of the event loop, a failure read past the deadline before two successes still lets them make the quorum', () => {
  let nowMs = 1000;
  const timer = new DeadlineTimer({ resolutionMs: 1, nowMs: () => nowMs });
  const calls: (RingkvError | undefined)[] = [];
  const t = new Tally({
    needed: 2,
    total: 3,
    deadlineMs: 1050,
    timeoutMs: 50,
    deadlines: timer,
    onDone: (err) => calls.push(err),
  });
  // All three answered in time, during a pause; they are read after the deadline, the failure first.
  nowMs = 1300;
  t.fail('a', diskFull());
  t.succeed();
  t.succeed();
  timer.close();
  assert.deepEqual(calls, [undefined]);
});

test('reasons name damaged files, I/O and internal errors by code only: no path, no raw text', () => {
  const { t, calls } = tally(1, 3);
  t.fail('a', new CorruptionError('/var/lib/ringkv/000123.sst', 4096, 'block checksum mismatch'));
  // A peer's errors come with its message inside the transport's.
  t.fail('b', new RingkvError('RINGKV_IO', 'Peer b failed: WAL fdatasync failed: /data/000007.log: EIO'));
  t.fail('c', new TypeError("Cannot read properties of undefined (reading 'x') at /srv/ringkv/dist/x.js"));
  const message = calls[0]?.err?.message ?? '';
  assert.equal(
    message,
    'Only 0 of 1 required replicas answered; 3 failed: a: RINGKV_CORRUPTION: a damaged file; b: RINGKV_IO: an I/O error; c: Internal error',
  );
});
