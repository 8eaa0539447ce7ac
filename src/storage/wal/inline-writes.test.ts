import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { InlineWritePolicy } from './inline-writes.js';

const settings = { bytesMax: 32 * 1024, slowMs: 1, backoffMs: 10_000 };

describe('InlineWritePolicy', () => {
  test('small batches go inline while writes are fast; larger ones never', () => {
    const policy = new InlineWritePolicy(settings);
    for (let t = 0; t < 1000; t++) {
      assert.equal(policy.inline(200, t), true);
      policy.record(0.2, t);
    }
    assert.equal(policy.inline(settings.bytesMax, 1000), true);
    assert.equal(policy.inline(settings.bytesMax + 1, 1000), false);
  });

  test('bytesMax 0 turns inline writes off', () => {
    assert.equal(new InlineWritePolicy({ ...settings, bytesMax: 0 }).inline(1, 0), false);
  });

  test('one very slow write sends writes to the pool for backoffMs, then inline is tried again', () => {
    const policy = new InlineWritePolicy(settings);
    policy.record(0.1, 100);
    policy.record(50, 200);
    assert.equal(policy.inline(200, 201), false);
    assert.equal(policy.inline(200, 200 + settings.backoffMs - 1), false);
    assert.equal(policy.inline(200, 200 + settings.backoffMs), true);
    // The average starts over: one fast write after the backoff keeps writes inline.
    policy.record(0.1, 200 + settings.backoffMs);
    assert.equal(policy.inline(200, 200 + settings.backoffMs + 1), true);
  });

  test('a device that is steadily a little too slow is noticed within a few dozen writes', () => {
    const policy = new InlineWritePolicy(settings);
    let t = 0;
    while (policy.inline(200, t) && t < 100) policy.record(1.5, t++);
    assert.ok(t > 1 && t < 40, `switched after ${t} writes`);
  });

  test('property: writes averaging under slowMs never leave the event loop', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 0.99, noNaN: true }), { maxLength: 500 }),
        (durations) => {
          const policy = new InlineWritePolicy(settings);
          durations.forEach((d, t) => {
            assert.equal(policy.inline(100, t), true);
            policy.record(d, t);
          });
        },
      ),
    );
  });
});
