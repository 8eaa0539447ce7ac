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
});

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
              : valueEntry(w.key, w.version, w.value);
            const id = w.key.toString('hex');
            const known = model.get(id);
            const newer = known === undefined || compareVersions(entry, known) > 0;
            if (newer) model.set(id, entry);
            assert.equal(list.upsert(entry), newer);
          }
          const sorted = [...model.values()].sort((a, b) => compareBytes(a.key, b.key));
          const walked: string[] = [];
          for (let node = list.next(0); node !== 0; node = list.next(node)) {
            const e = list.entryAt(node);
            walked.push(`${e.key.toString('hex')}@${e.version}/${e.kind}/${e.value.toString('hex')}`);
          }
          assert.deepEqual(
            walked,
            sorted.map((e) => `${e.key.toString('hex')}@${e.version}/${e.kind}/${e.value.toString('hex')}`),
          );
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
});
