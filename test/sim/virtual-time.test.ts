import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { VirtualTime } from './virtual-time.js';

/** Math.random()'s first draw under a VirtualTime of `seed`. */
function randomOf(seed: number): number {
  const time = new VirtualTime({ startMs: 0, seed });
  time.install();
  try {
    return Math.random();
  } finally {
    time.uninstall();
  }
}

test('virtual time: timers run in time order without real waiting; clocks and Math.random follow', async () => {
  const time = new VirtualTime({ startMs: 1_000_000, seed: 7 });
  const realSetTimeout = globalThis.setTimeout;
  const realNow = Date.now;
  const startedMs = realNow();
  const order: string[] = [];
  time.install();
  try {
    const run = async () => {
      setTimeout(() => order.push(`b@${Date.now()}`), 60_000);
      setTimeout(() => order.push(`a@${Date.now()}`), 30_000);
      let ticks = 0;
      const interval = setInterval(() => {
        if (++ticks === 3) clearInterval(interval);
      }, 1000);
      const cancelled = setTimeout(() => order.push('never'), 10);
      clearTimeout(cancelled);
      setImmediate(() => order.push(`immediate@${performance.now()}`));
      await nextTurn();
      await sleep(90_000); // node:timers/promises, as the engine and the hints import it
      order.push(`slept@${Date.now()}`, `ticks=${ticks}`);
      return Math.random();
    };
    const random = await time.run(run(), Number.POSITIVE_INFINITY);
    assert.deepEqual(order, ['immediate@0', 'a@1030000', 'b@1060000', 'slept@1090000', 'ticks=3']);
    assert.equal(time.elapsedMs, 90_000);
    assert.equal(random, randomOf(7), 'Math.random is seeded');
    assert.notEqual(random, randomOf(8));
  } finally {
    time.uninstall();
  }
  assert.equal(globalThis.setTimeout, realSetTimeout, 'uninstall restores the globals');
  assert.equal(Date.now, realNow);
  assert.ok(Date.now() - startedMs < 10_000, 'no real waiting');
});

test('virtual time: a run with nothing left to do is a deadlock, not a hang', async () => {
  const time = new VirtualTime({ startMs: 0, seed: 1 });
  time.install();
  try {
    await assert.rejects(time.run(new Promise(() => undefined), 1000), /deadlock/);
  } finally {
    time.uninstall();
  }
});
