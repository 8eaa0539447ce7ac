import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compareVersions,
  LOGICAL_MAX,
  MemoryEngine,
  makeVersion,
  newer,
  valueEntry,
  versionLogical,
  versionPhysicalMs,
} from '../storage/index.js';
import { HybridClock } from './clock.js';
import { createReplica } from './replication/replica.js';

const T = 1_700_000_000_000;

/** A clock whose wall time the test sets. */
function clockAt(options: { maxDriftMs?: number; clockSkewMaxMs?: number } = {}) {
  const wall = { ms: T };
  return { clock: new HybridClock({ wallMs: () => wall.ms, ...options }), wall };
}

describe('HybridClock', () => {
  test('a burst past the counter in one millisecond borrows the next one: no wrap, no repeat', () => {
    const { clock } = clockAt();
    let last = 0n;
    for (let i = 0; i < 3 * (LOGICAL_MAX + 1) + 5; i++) {
      const version = clock.now();
      assert.ok(version > last, `write ${i}`);
      last = version;
    }
    assert.equal(versionPhysicalMs(last), T + 3, 'three borrowed milliseconds');
    assert.equal(versionLogical(last), 4);
  });

  test('the wall clock stepping back (NTP) does not take versions back', () => {
    const { clock, wall } = clockAt();
    const before = clock.now();
    wall.ms = T - 5000;
    const after = [clock.now(), clock.now()];
    assert.ok(after[0]! > before && after[1]! > after[0]!);
    assert.equal(versionPhysicalMs(after[1]!), T, 'held at the newest time seen until the wall catches up');
    wall.ms = T + 1;
    assert.equal(clock.now(), makeVersion(T + 1, 0));
  });

  test('an observed version is stamped above; one past the drift bound is refused and not followed', () => {
    const { clock } = clockAt({ maxDriftMs: 60_000 });
    const seen = makeVersion(T + 60_000, LOGICAL_MAX);
    assert.equal(clock.observe(seen), true);
    const next = clock.now();
    assert.ok(next > seen);
    assert.equal(next, makeVersion(T + 60_001, 0), 'a full counter moves to the next millisecond');
    assert.equal(clock.observe(makeVersion(T + 60_001, 5)), false, '1 ms past the bound');
    assert.equal(clock.observe(makeVersion(T + 3_600_000, 0)), false);
    assert.equal(clock.now(), next + 1n, 'a refused version does not drag the clock');
    assert.equal(clock.observe(makeVersion(T - 10, 7)), true, 'an older version changes nothing');
    assert.equal(clock.now(), next + 2n);
  });

  test('restarted with its wall clock behind its stored versions, it stamps above them', () => {
    // What the node does with engine.maxVersion() at start (node.ts seedClock).
    const stored = makeVersion(T + 10_000, 42);
    const { clock } = clockAt();
    assert.equal(clock.observe(stored), true);
    assert.ok(clock.now() > stored);
  });

  test('two clocks in one millisecond stamp one version; replicas break the tie alike, whatever the order', () => {
    const a = clockAt().clock.now();
    const b = clockAt().clock.now();
    assert.equal(a, b, 'versions carry no node id');
    const key = Buffer.from('k');
    const one = valueEntry(key, a, Buffer.from('one'));
    const two = valueEntry(key, b, Buffer.from('two'));
    assert.equal(newer(one, two), newer(two, one));
    assert.ok(compareVersions(one, two) !== 0);
  });

  test('under the largest skew, a coordinator follows the conflict of a replica started lately, whose clock is ahead', async () => {
    for (const skewMs of [1000, 40_000, 60_000]) {
      // The replica's wall clock runs skewMs ahead; it just started, so its floor is its wall clock + skewMs.
      const replica = createReplica(new MemoryEngine(), new HybridClock({ wallMs: () => T + skewMs }), {
        clockSkewMaxMs: skewMs,
      });
      const { clock } = clockAt({ clockSkewMaxMs: skewMs });
      const conflict = await replica.write(valueEntry(Buffer.from('k'), clock.now(), Buffer.from('v')));
      assert.equal(conflict, makeVersion(T + 2 * skewMs, 0), `skew ${skewMs}`);
      assert.equal(
        clock.observe(conflict),
        true,
        `skew ${skewMs}: followed, so the write is stamped again above`,
      );
      assert.ok(clock.now() > conflict);
    }
  });
});
