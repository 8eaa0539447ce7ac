import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RecentWrites } from './recent-writes.js';

const k = (text: string) => Buffer.from(text);

function recent(options: { entriesMax?: number; keyBytesMax?: number; initialFloor?: bigint } = {}) {
  const clock = { ms: 0 };
  const writes = new RecentWrites({
    windowMs: 3000,
    entriesMax: options.entriesMax ?? 100,
    keyBytesMax: options.keyBytesMax ?? 1 << 20,
    initialFloor: options.initialFloor ?? 0n,
    nowMs: () => clock.ms,
  });
  return { writes, clock };
}

describe('RecentWrites', () => {
  test('a write at or below the version known for its key is a conflict carrying that version', () => {
    const { writes } = recent();
    assert.equal(writes.record(k('a'), 10n), undefined);
    assert.equal(writes.record(k('a'), 7n), 10n);
    assert.equal(writes.record(k('a'), 10n), 10n, 'an equal version is a conflict too');
    assert.equal(writes.record(k('a'), 11n), undefined);
    assert.equal(writes.known(k('a')), 11n);
    assert.equal(writes.record(k('b'), 1n), undefined, 'keys are judged apart');
  });

  test('an older write does not lower what is known', () => {
    const { writes } = recent();
    writes.record(k('a'), 50n);
    writes.record(k('a'), 20n);
    assert.equal(writes.known(k('a')), 50n);
  });

  test('forgetting by age raises the floor, so a write below a forgotten version still conflicts', () => {
    const { writes, clock } = recent();
    writes.record(k('a'), 100n);
    clock.ms = 2999;
    writes.record(k('b'), 5n);
    assert.equal(writes.size, 2);
    clock.ms = 3001;
    assert.equal(writes.record(k('c'), 200n), undefined);
    assert.equal(writes.size, 2, 'a was forgotten');
    assert.equal(writes.floor, 100n);
    assert.equal(writes.record(k('a'), 90n), 100n);
  });

  test('forgetting by count and by key bytes keeps the bound, oldest first', () => {
    const byCount = recent({ entriesMax: 3 }).writes;
    for (let i = 1; i <= 10; i++) byCount.record(k(`key${i}`), BigInt(i));
    assert.equal(byCount.size, 3);
    assert.equal(byCount.floor, 7n);
    assert.equal(byCount.known(k('key10')), 10n);
    assert.equal(byCount.record(k('key2'), 6n), 7n, 'below the floor: a conflict even for a forgotten key');

    const byBytes = recent({ keyBytesMax: 10 }).writes;
    byBytes.record(k('aaaa'), 1n);
    byBytes.record(k('bbbb'), 2n);
    byBytes.record(k('cccc'), 3n);
    assert.equal(byBytes.size, 2);
    assert.equal(byBytes.floor, 1n);
  });

  test('the initial floor makes every older write conflict (after a restart)', () => {
    const { writes } = recent({ initialFloor: 1000n });
    assert.equal(writes.record(k('a'), 999n), 1000n);
    assert.equal(writes.record(k('b'), 1001n), undefined);
  });
});
