import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { compareBytes } from '../../util/bytes.js';
import { encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import { compareVersions, type Entry, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { NODE_OVERHEAD_BYTES } from './arena-skiplist.js';
import { Memtable } from './memtable.js';

// Bytes at the edges of signed and unsigned order, so that a comparison that
// treats 0x80-0xff as negative, or a zero byte as an end, orders keys wrongly.
const edgeByte = fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff);
// A shared run of 0-40 bytes, then a short tail: keys equal in their 16 cached bytes (or
// in the 32 compared inline) and differing after, zero-extensions of others, the empty key.
const keyArb = fc
  .tuple(fc.integer({ min: 0, max: 40 }), edgeByte, fc.array(edgeByte, { maxLength: 4 }))
  .map(([run, fill, tail]) => Buffer.concat([Buffer.alloc(run, fill), Buffer.from(tail)]));
const entryArb = fc
  .record({
    key: keyArb,
    version: fc.bigInt({ min: 0n, max: 6n }),
    tombstone: fc.boolean(),
    value: fc.uint8Array({ maxLength: 4 }),
  })
  .map(({ key, version, tombstone, value }) =>
    tombstone ? tombstoneEntry(key, version) : valueEntry(key, version, Buffer.from(value)),
  );
const stepArb = fc.oneof(
  { weight: 4, arbitrary: entryArb.map((entry) => ({ put: entry })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ start: keyArb, end: fc.option(keyArb, { nil: undefined }) })
      .map((range) => ({ range })),
  },
  { weight: 2, arbitrary: fc.constant({ batch: true }) },
);

const id = (key: Buffer) => key.toString('hex');
const show = (e: Entry | undefined) =>
  e === undefined ? 'none' : `${id(e.key)}@${e.version}/${e.kind}/${e.value.toString('hex')}`;

describe('Memtable (property)', () => {
  it('reads as a map of newest versions, scans in order under writes, and bounds its versions and bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 200 }), async (steps) => {
        const memtable = new Memtable(1);
        const model = new Map<string, Entry>();
        let acceptedBytes = 0;
        let minAccepted: bigint | undefined;
        let maxAccepted = 0n;
        // Scans opened along the way, stepped in small batches while writes go on.
        const scans: {
          cursor: ReturnType<Memtable['cursor']>;
          start: Buffer;
          end: Buffer | undefined;
          seen: Buffer[];
          atOpen: string[];
        }[] = [];
        for (const step of steps) {
          if ('put' in step) {
            const entry = step.put;
            const known = model.get(id(entry.key));
            memtable.put(entry);
            if (known === undefined || compareVersions(entry, known) > 0) {
              model.set(id(entry.key), entry);
              acceptedBytes += encodedEntryBytes(entry);
              if (minAccepted === undefined || entry.version < minAccepted) minAccepted = entry.version;
              if (entry.version > maxAccepted) maxAccepted = entry.version;
            }
          } else if ('range' in step) {
            const { start, end } = step.range;
            const atOpen = [...model.values()]
              .filter(
                (e) => compareBytes(e.key, start) >= 0 && (end === undefined || compareBytes(e.key, end) < 0),
              )
              .map((e) => id(e.key));
            scans.push({ cursor: memtable.cursor(start, end, 3, 1 << 20), start, end, seen: [], atOpen });
          } else {
            for (const scan of scans) {
              for (const entry of (await scan.cursor.next()) ?? []) {
                // Each entry is the key's newest version as of this batch, inside the range, past the last.
                assert.equal(show(entry), show(model.get(id(entry.key))));
                assert.ok(compareBytes(entry.key, scan.start) >= 0);
                if (scan.end !== undefined) assert.ok(compareBytes(entry.key, scan.end) < 0);
                const last = scan.seen[scan.seen.length - 1];
                if (last !== undefined) assert.ok(compareBytes(last, entry.key) < 0, 'scan order');
                scan.seen.push(Buffer.from(entry.key));
              }
            }
          }
          const sorted = [...model.values()].sort((a, b) => compareBytes(a.key, b.key));
          assert.equal(memtable.count, sorted.length);
          // The bounds a compaction (minVersion: tombstones below it may go) and reads rely on.
          assert.equal(memtable.minVersion === undefined, sorted.length === 0);
          assert.equal(memtable.minVersion, minAccepted);
          assert.equal(memtable.maxVersion, maxAccepted);
          for (const e of sorted) {
            assert.ok(memtable.minVersion! <= e.version, 'minVersion is a lower bound');
            assert.ok(memtable.maxVersion >= e.version, 'maxVersion is an upper bound');
          }
          assert.equal(memtable.bytes, acceptedBytes + sorted.length * NODE_OVERHEAD_BYTES);
        }
        const sorted = [...model.values()].sort((a, b) => compareBytes(a.key, b.key));
        assert.deepEqual([...memtable.entries()].map(show), sorted.map(show));
        assert.equal(
          memtable.encodedBytes(),
          sorted.reduce((sum, e) => sum + encodedEntryBytes(e), 0),
        );
        for (const e of sorted) assert.equal(show(memtable.get(e.key)), show(e));
        // Drained, each scan has returned every key in its range that was there when it opened.
        for (const scan of scans) {
          for (let batch = await scan.cursor.next(); batch !== undefined; batch = await scan.cursor.next()) {
            for (const entry of batch) scan.seen.push(Buffer.from(entry.key));
          }
          const seen = new Set(scan.seen.map(id));
          for (const key of scan.atOpen) assert.ok(seen.has(key), `scan missed ${key}`);
          for (let i = 1; i < scan.seen.length; i++)
            assert.ok(compareBytes(scan.seen[i - 1]!, scan.seen[i]!) < 0);
        }
        // The frozen memtable encodes the same entries back to back, in order, in any batch size.
        memtable.freeze();
        const target = Buffer.alloc(memtable.encodedBytes());
        const cursor = { node: 0 };
        let at = memtable.encodeInto(target, 0, cursor, 2);
        for (let turns = 0; cursor.node !== 0 && turns < sorted.length; turns++) {
          at = memtable.encodeInto(target, at, cursor, 2);
        }
        assert.equal(cursor.node, 0);
        assert.equal(at, target.length);
        const expected = Buffer.alloc(target.length);
        let end = 0;
        for (const e of sorted) end = encodeEntry(e, expected, end);
        assert.ok(target.equals(expected), 'encoded entries');
      }),
      propertyParams({ numRuns: 200 }),
    );
  });
});
