import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { RecentWrites } from './recent-writes.js';

const k = (text: string) => Buffer.from(text);

function recent(
  options: { entriesMax?: number; keyBytesMax?: number; initialFloor?: bigint; floorMax?: bigint } = {},
) {
  const clock = { ms: 0 };
  const floorMax = options.floorMax;
  const writes = new RecentWrites({
    windowMs: 3000,
    entriesMax: options.entriesMax ?? 100,
    keyBytesMax: options.keyBytesMax ?? 1 << 20,
    initialFloor: options.initialFloor ?? 0n,
    nowMs: () => clock.ms,
    ...(floorMax === undefined ? {} : { floorMax: () => floorMax }),
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

  test('a forgotten version past floorMax (a clock beyond the skew bound) raises the floor only to floorMax', () => {
    const { writes, clock } = recent({ floorMax: 1000n });
    writes.record(k('ahead'), 5000n);
    writes.record(k('a'), 900n);
    clock.ms = 4000;
    // Both forgotten: the floor is 1000, not 5000, so other keys' writes above 1000 go through.
    assert.equal(writes.record(k('b'), 2000n), undefined);
    assert.equal(writes.record(k('c'), 950n), 1000n, 'below the capped floor: still a conflict');
    assert.equal(writes.floor, 1000n);
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

  test('at the edge of the window a key is forgotten into the floor, so a write below it still conflicts', () => {
    const { writes, clock } = recent();
    writes.record(k('a'), 100n);
    clock.ms = 2999;
    assert.equal(writes.record(k('a'), 99n), 100n, 'still remembered');
    clock.ms = 5999;
    assert.equal(writes.record(k('b'), 101n), undefined);
    assert.equal(writes.size, 1, 'a is forgotten exactly one window after its last write');
    assert.equal(writes.floor, 100n);
    assert.equal(writes.record(k('a'), 100n), 100n, 'at the floor: a conflict');
  });

  test('keys are told apart by their exact bytes, and a flood of distinct keys stays within the bound', () => {
    const { writes } = recent({ entriesMax: 1000 });
    // The same text in UTF-8 and in Latin-1, and keys that differ in one byte.
    assert.equal(writes.record(Buffer.from('é', 'utf8'), 10n), undefined);
    assert.equal(writes.record(Buffer.from('é', 'latin1'), 5n), undefined);
    assert.equal(writes.record(Buffer.from([0, 1]), 7n), undefined);
    assert.equal(writes.record(Buffer.from([0, 2]), 6n), undefined);
    for (let i = 0; i < 50_000; i++) writes.record(k(`flood${i}`), BigInt(100 + i));
    assert.equal(writes.size, 1000);
    const floor = BigInt(100 + 50_000 - 1000 - 1);
    assert.equal(writes.floor, floor, 'the newest forgotten version');
    assert.equal(writes.record(k('flood0'), 150n), floor, 'a forgotten key still conflicts below it');
  });

  test('the initial floor makes every older write conflict (after a restart)', () => {
    const { writes } = recent({ initialFloor: 1000n });
    assert.equal(writes.record(k('a'), 999n), 1000n);
    assert.equal(writes.record(k('b'), 1001n), undefined);
  });

  test('a key is unchecked from its first write until the store was read for it, and again once forgotten', () => {
    const { writes, clock } = recent();
    writes.record(k('a'), 10n);
    const token = writes.lastUnchecked;
    assert.notEqual(token, undefined, 'its first write');
    writes.record(k('a'), 20n);
    assert.equal(writes.lastUnchecked, token, 'a write before the store was read');
    writes.learnStored(k('a'), 50n, token!);
    assert.equal(writes.known(k('a')), 50n, 'the version found in the store is known');
    assert.equal(writes.record(k('a'), 30n), 50n);
    assert.equal(writes.lastUnchecked, undefined);
    writes.learnStored(k('b'), 99n, token!);
    assert.equal(writes.size, 1, 'a key not held learns nothing');
    clock.ms = 4000;
    writes.record(k('a'), 60n);
    const again = writes.lastUnchecked;
    assert.notEqual(again, undefined, 'forgotten, then written again');
    // A read made before it was forgotten does not check the key remembered again.
    writes.learnStored(k('a'), 55n, token!);
    writes.record(k('a'), 61n);
    assert.equal(writes.lastUnchecked, again);
    assert.equal(writes.known(k('a')), 61n);
  });

  test('keeps its contract past the first capacities: many keys, and few keys rewritten often', () => {
    const { writes, clock } = recent({ entriesMax: 10_000 });
    for (let i = 0; i < 5000; i++) assert.equal(writes.record(k(`key${i}`), BigInt(1000 + i)), undefined);
    assert.equal(writes.size, 5000);
    for (let i = 0; i < 5000; i += 499) assert.equal(writes.known(k(`key${i}`)), BigInt(1000 + i));
    // Three keys written 20,000 times: the stale records are dropped, the newest kept.
    for (let i = 0; i < 20_000; i++) writes.record(k(`hot${i % 3}`), BigInt(10_000 + i));
    assert.equal(writes.size, 5003);
    assert.equal(writes.known(k('hot0')), 29_998n);
    assert.equal(writes.known(k('hot2')), 29_997n);
    assert.equal(writes.record(k('hot1'), 29_999n), 29_999n, 'an equal version still conflicts');
    assert.equal(writes.known(k('key4990')), 5990n, 'older keys are still remembered');
    assert.equal(writes.floor, 0n, 'nothing was forgotten');
    // All of it ages out in write order: the floor ends at the newest version seen.
    clock.ms = 10_000;
    assert.equal(writes.record(k('late'), 1n), 29_999n);
    assert.equal(writes.size, 1);
    assert.equal(writes.floor, 29_999n);
  });

  test('agrees with a plain model (one map in write order) on every answer, size and floor', () => {
    // The model: a Map whose insertion order is write order, walked from the front to forget.
    class Model {
      readonly entries = new Map<string, { version: bigint; atMs: number }>();
      keyBytes = 0;
      floor = 0n;
      constructor(
        readonly windowMs: number,
        readonly entriesMax: number,
        readonly keyBytesMax: number,
      ) {}
      record(id: string, version: bigint, nowMs: number): bigint | undefined {
        for (const [oldId, e] of this.entries) {
          if (e.atMs > nowMs - this.windowMs) break;
          this.forget(oldId, e.version);
        }
        const known = this.entries.get(id);
        const newest = known !== undefined && known.version > this.floor ? known.version : this.floor;
        if (known === undefined) this.keyBytes += id.length;
        this.entries.delete(id);
        this.entries.set(id, {
          version: known !== undefined && known.version > version ? known.version : version,
          atMs: nowMs,
        });
        for (const [oldId, e] of this.entries) {
          if (this.entries.size <= this.entriesMax && this.keyBytes <= this.keyBytesMax) break;
          this.forget(oldId, e.version);
        }
        return version <= newest ? newest : undefined;
      }
      forget(id: string, version: bigint): void {
        this.entries.delete(id);
        this.keyBytes -= id.length;
        if (version > this.floor) this.floor = version;
      }
    }
    const op = fc.record({
      key: fc.integer({ min: 0, max: 40 }),
      version: fc.bigInt({ min: 1n, max: 500n }),
      // Mostly no time passing, so that rewrites within the window pile up stale records.
      advanceMs: fc.oneof(
        { arbitrary: fc.constant(0), weight: 8 },
        { arbitrary: fc.integer({ min: 0, max: 400 }), weight: 1 },
      ),
    });
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 200, maxLength: 1000 }),
        // Up to more entries than keys, so that rewrites pile up stale records between forgets.
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 4, max: 400 }),
        (ops, entriesMax, keyBytesMax) => {
          const clock = { ms: 0 };
          const writes = new RecentWrites({
            windowMs: 1000,
            entriesMax,
            keyBytesMax,
            initialFloor: 0n,
            nowMs: () => clock.ms,
          });
          const model = new Model(1000, entriesMax, keyBytesMax);
          for (const { key, version, advanceMs } of ops) {
            clock.ms += advanceMs;
            const id = `k${key}`;
            assert.equal(writes.record(k(id), version), model.record(id, version, clock.ms));
            assert.equal(writes.size, model.entries.size);
            assert.equal(writes.floor, model.floor);
          }
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });
});
