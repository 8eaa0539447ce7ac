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
