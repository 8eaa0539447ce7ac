import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InFlight } from './in-flight.js';

test('work is found by its tag until removed; slots are reused as the set grows and shrinks', () => {
  const inFlight = new InFlight();
  const live = new Map<number, { work: Promise<unknown>; tag: number }>();
  let seed = 3;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  let slotsSeen = 0;
  for (let n = 0; n < 3000; n++) {
    // Grows to a few hundred, then drains: every path of the free-slot stack.
    const adding = n < 1500 ? random(3) !== 0 : random(3) === 0;
    if (adding || live.size === 0) {
      const tag = random(2 ** 32);
      const work = Promise.resolve(n);
      const slot = inFlight.add(work, tag);
      assert.equal(live.has(slot), false, `slot ${slot} is taken`);
      live.set(slot, { work, tag });
      slotsSeen = Math.max(slotsSeen, slot + 1);
    } else {
      const slots = [...live.keys()];
      const slot = slots[random(slots.length)]!;
      inFlight.remove(slot);
      live.delete(slot);
    }
    assert.equal(inFlight.size, live.size);
    if (n % 100 === 0) {
      const below = (tag: number): boolean => tag < 2 ** 31;
      const expected = [...live.values()].filter((w) => below(w.tag)).map((w) => w.work);
      assert.deepEqual(new Set(inFlight.matching(below)), new Set(expected));
    }
  }
  // Slots are reused: never more than the most ever under way at once, rounded up to a power of two.
  assert.ok(slotsSeen <= 1024, `slots used: ${slotsSeen}`);
});

test('a reserved slot counts as work under way at once, holds its work once filled, and ends with it', async () => {
  const inFlight = new InFlight();
  let finish!: () => void;
  const slot = inFlight.reserve(7);
  // Before fill(): found, as something already settled (the work has not started to wait on anything).
  const early = inFlight.matching((tag) => tag === 7);
  assert.equal(early.length, 1);
  assert.equal(inFlight.size, 1);
  const work = new Promise<void>((resolve) => (finish = resolve));
  inFlight.fill(slot, work);
  assert.deepEqual(
    inFlight.matching((tag) => tag === 7),
    [work],
  );
  assert.deepEqual(
    inFlight.matching((tag) => tag !== 7),
    [],
  );
  finish();
  await work;
  inFlight.remove(slot);
  assert.equal(inFlight.size, 0);
  assert.deepEqual(
    inFlight.matching(() => true),
    [],
  );
  // Work that ended (and removed its slot) before fill(): fill() files nothing, and a reuse of the slot is not disturbed.
  const gone = inFlight.reserve(1);
  inFlight.remove(gone);
  inFlight.fill(gone, Promise.resolve());
  assert.equal(inFlight.size, 0);
  const other = Promise.resolve('other');
  const reused = inFlight.add(other, 2);
  assert.equal(reused, gone, 'the freed slot is reused');
  inFlight.fill(gone, Promise.resolve('late'));
  assert.deepEqual(
    inFlight.matching(() => true),
    [other],
  );
});
