import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { compareBytes } from '../../util/bytes.js';
import { compareVersions, type Entry, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { ArenaSkipList } from './arena-skiplist.js';

// Keys over a tiny alphabet, zeros included, behind a shared prefix of 0-20 bytes: equal
// words, zero-extensions and differences past the 16 cached bytes all occur.
const keyArb = fc
  .tuple(fc.integer({ min: 0, max: 20 }), fc.uint8Array({ maxLength: 6 }))
  .map(([prefix, tail]) => Buffer.concat([Buffer.alloc(prefix, 0x61), Buffer.from(tail.map((b) => b & 3))]));
const writeArb = fc.record({
  key: keyArb,
  version: fc.bigInt({ min: 0n, max: 5n }),
  tombstone: fc.boolean(),
  value: fc.uint8Array({ maxLength: 3 }).map((b) => Buffer.from(b)),
  // A few expiries, so that one version and value arrives with two of them.
  expiresAtMs: fc.constantFrom(0, 1, 2),
});

const show = (e: Entry) =>
  `${e.key.toString('hex')}@${e.version}/${e.kind}/${e.value.toString('hex')}/${e.expiresAtMs}`;

describe('ArenaSkipList (property)', () => {
  it('keeps the newest version of each key, in key order, and finds and seeks as a sorted map', () => {
    fc.assert(
      fc.property(
        fc.array(writeArb, { maxLength: 300 }),
        fc.array(keyArb, { maxLength: 20 }),
        (writes, probes) => {
          const list = new ArenaSkipList();
          const model = new Map<string, Entry>();
          for (const w of writes) {
            const entry = w.tombstone
              ? tombstoneEntry(w.key, w.version)
              : valueEntry(w.key, w.version, w.value, w.expiresAtMs);
            const id = w.key.toString('hex');
            const known = model.get(id);
            const newer = known === undefined || compareVersions(entry, known) > 0;
            if (newer) model.set(id, entry);
            assert.equal(list.upsert(entry), newer);
          }
          const sorted = [...model.values()].sort((a, b) => compareBytes(a.key, b.key));
          const walked: string[] = [];
          for (let node = list.next(0); node !== 0; node = list.next(node)) {
            walked.push(show(list.entryAt(node)));
          }
          assert.deepEqual(walked, sorted.map(show));
          assert.equal(list.count, sorted.length);
          for (const probe of [...probes, ...sorted.map((e) => e.key)]) {
            const found = list.find(probe);
            assert.equal(found !== 0, model.has(probe.toString('hex')));
            if (found !== 0) assert.ok(list.keyAt(found).equals(probe));
            const at = list.seek(probe);
            const expected = sorted.find((e) => compareBytes(e.key, probe) >= 0);
            if (expected === undefined) assert.equal(at, 0);
            else assert.ok(list.keyAt(at).equals(expected.key), `seek ${probe.toString('hex')}`);
          }
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });

  it('keeps the later expiry of one version and value, whichever arrives first; no expiry is the latest', () => {
    const key = Buffer.from('k');
    const at = (expiresAtMs: number) => valueEntry(key, 7n, Buffer.from('v'), expiresAtMs);
    for (const [first, second, kept] of [
      [5_000, 0, 0],
      [0, 5_000, 0],
      [5_000, 6_000, 6_000],
      [6_000, 5_000, 6_000],
    ] as const) {
      const list = new ArenaSkipList();
      assert.equal(list.upsert(at(first)), true);
      assert.equal(list.upsert(at(second)), second === kept, `${second} after ${first}`);
      assert.equal(list.entryAt(list.find(key)).expiresAtMs, kept, `${first} then ${second}`);
    }
  });
});
