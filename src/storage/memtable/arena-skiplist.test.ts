import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { compareBytes } from '../../util/bytes.js';
import { encodedEntryBytes } from '../entry/codec.js';
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

describe('ArenaSkipList arena chunks', () => {
  const CHUNK = 1024 * 1024;
  /** A value entry whose encoded record is exactly `recordBytes` long (codec.ts), its bytes all `fill`. */
  const sized = (key: string, version: bigint, recordBytes: number, fill: number): Entry => {
    const keyBytes = Buffer.from(key);
    let valueBytes = recordBytes - encodedEntryBytes(valueEntry(keyBytes, version, Buffer.alloc(0)));
    // The value's length varint grows with it: shrink until the record is exact.
    while (encodedEntryBytes(valueEntry(keyBytes, version, Buffer.alloc(valueBytes))) > recordBytes)
      valueBytes--;
    const entry = valueEntry(keyBytes, version, Buffer.alloc(valueBytes, fill));
    assert.equal(encodedEntryBytes(entry), recordBytes);
    return entry;
  };

  it('gives large records buffers of their own and keeps filling the chunk, so little is allocated beyond the records', () => {
    const list = new ArenaSkipList();
    // Small records between records larger than a chunk, and between records of 300 KB.
    for (let i = 0; i < 10; i++) {
      list.upsert(sized(`big${i}`, 1n, 2 * CHUNK, 1));
      list.upsert(sized(`small${i}`, 1n, 100, 2));
      list.upsert(sized(`mid${i}`, 1n, 300 * 1024, 3));
    }
    // The records, and at most the one chunk the small ones share.
    assert.ok(
      list.allocatedBytes <= list.arenaBytes + CHUNK,
      `${list.allocatedBytes} bytes allocated for ${list.arenaBytes} bytes of records`,
    );
  });

  it('keeps records that fill a chunk exactly, would straddle its end, or exceed a chunk intact', () => {
    const list = new ArenaSkipList();
    const writes: Entry[] = [
      sized('a', 1n, CHUNK, 1), // a chunk's size: a buffer of its own
      sized('b', 1n, 40, 2), // starts the first chunk
      sized('c', 1n, CHUNK / 4, 3), // the largest record a chunk takes
      sized('g', 1n, CHUNK / 4 + 1, 10), // one byte more: a buffer of its own
      ...[1, 2].map((n) => sized(`c${n}`, 1n, CHUNK / 4, 3 + n)),
      sized('c3', 1n, CHUNK / 4 - 100, 11), // the chunk is now 60 bytes short of full
      sized('d', 1n, 61, 4), // one byte too many: a new chunk, not a straddle
      sized('e', 1n, 3 * CHUNK + 5, 5), // larger than a chunk: one of its own
      sized('f', 1n, 30, 6), // after it, the same chunk as before
      sized('a', 2n, CHUNK - 100, 7), // a newer version of a key whose record sat alone
      sized('', 1n, 20, 8), // the empty key, with a value
      sized('b', 2n, 2 * CHUNK, 9), // a newer version larger than a chunk
    ];
    const expected = new Map<string, Entry>();
    let recordBytes = 0;
    for (const entry of writes) {
      assert.equal(list.upsert(entry), true);
      expected.set(entry.key.toString(), entry);
      recordBytes += encodedEntryBytes(entry);
      assert.equal(list.arenaBytes, recordBytes);
    }
    const sorted = [...expected.values()].sort((a, b) => compareBytes(a.key, b.key));
    const walked: Entry[] = [];
    for (let node = list.next(0); node !== 0; node = list.next(node)) walked.push(list.entryAt(node));
    assert.deepEqual(walked.map(show), sorted.map(show));
    for (const entry of sorted) {
      const node = list.find(entry.key);
      assert.notEqual(node, 0, `find ${entry.key.toString()}`);
      const read = list.entryAt(node);
      assert.ok(read.value.equals(entry.value), `value of ${entry.key.toString()}`);
      assert.ok(list.keyAt(node).equals(entry.key));
      assert.equal(list.encodedLength(node), encodedEntryBytes(entry));
      const copy = Buffer.alloc(encodedEntryBytes(entry) + 2);
      assert.equal(list.copyEncoded(node, copy, 1), copy.length - 1);
    }
  });
});
