import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { encodedEntryBytes, encodeEntry } from './codec.js';
import { compareVersions, type Entry, tombstoneEntry, valueEntry } from './entry.js';
import { RecordView } from './record.js';
import { versionPhysicalMs } from './version.js';

const keyArb = fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes));
// A small version range besides the full one, so that equal versions (and the kind and value tie-breaks) occur.
const versionArb = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 3n }));
const entryArb = (key?: Buffer) =>
  fc
    .record({
      key: key === undefined ? keyArb : fc.constant(key),
      tombstone: fc.boolean(),
      version: versionArb,
      // A few small expiries too, so that one version and value occurs with two of them.
      expiresAtMs: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 2 ** 48 - 1 }),
      ),
      value: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes.map((b) => b & 1))),
    })
    .map(
      (e): Entry =>
        e.tombstone ? tombstoneEntry(e.key, e.version) : valueEntry(e.key, e.version, e.value, e.expiresAtMs),
    );

/** `entry` encoded at `pad` bytes into a buffer with `pad` bytes of garbage on each side. */
function encodeAt(entry: Entry, pad: number): Buffer {
  const size = encodedEntryBytes(entry);
  const buf = Buffer.alloc(size + 2 * pad, 0xee);
  encodeEntry(entry, buf, pad);
  return buf;
}

function parsed(buf: Buffer, offset: number, limit: number): RecordView {
  const view = new RecordView();
  assert.equal(view.parse(buf, offset, limit), undefined);
  return view;
}

describe('RecordView (property)', () => {
  it('reads every field of an encoded entry in place', () => {
    fc.assert(
      fc.property(entryArb(), fc.nat(16), (entry, pad) => {
        const buf = encodeAt(entry, pad);
        const view = parsed(buf, pad, buf.length);
        assert.equal(view.start, pad);
        assert.equal(view.byteLength, encodedEntryBytes(entry));
        assert.equal(view.kind, entry.kind);
        assert.equal(view.version, entry.version);
        assert.equal(view.versionPhysicalMs, versionPhysicalMs(entry.version));
        assert.equal(view.expiresAtMs, entry.expiresAtMs);
        assert.ok(buf.subarray(view.keyStart, view.keyEnd).equals(entry.key));
        assert.ok(buf.subarray(view.valueStart, view.end).equals(entry.value));
        const back = view.toEntry();
        assert.deepEqual(
          { ...back, key: back.key.toString('hex'), value: back.value.toString('hex') },
          {
            ...entry,
            key: entry.key.toString('hex'),
            value: entry.value.toString('hex'),
          },
        );
      }),
      propertyParams({ numRuns: 1000 }),
    );
  });

  it('orders keys as Buffer.compare and versions as compareVersions', () => {
    const key = Buffer.from('k');
    fc.assert(
      fc.property(entryArb(), entryArb(), entryArb(key), entryArb(key), (a, b, sameA, sameB) => {
        const [va, vb] = [parsed(encodeAt(a, 3), 3, Infinity), parsed(encodeAt(b, 0), 0, Infinity)];
        assert.equal(Math.sign(va.compareKey(vb)), Math.sign(Buffer.compare(a.key, b.key)));
        const [sa, sb] = [parsed(encodeAt(sameA, 1), 1, Infinity), parsed(encodeAt(sameB, 2), 2, Infinity)];
        assert.equal(Math.sign(sa.compareVersion(sb)), Math.sign(compareVersions(sameA, sameB)));
        assert.equal(Math.sign(sb.compareVersion(sa)), Math.sign(compareVersions(sameB, sameA)));
        assert.equal(Math.sign(sa.compareVersionTo(sameB)), Math.sign(compareVersions(sameA, sameB)));
        assert.equal(Math.sign(sb.compareVersionTo(sameA)), Math.sign(compareVersions(sameB, sameA)));
        assert.equal(sa.compareVersionTo(sameA), 0);
      }),
      propertyParams({ numRuns: 2000 }),
    );
  });

  it('at one version and value, the later expiry is newer, and no expiry newer than any', () => {
    const at = (expiresAtMs: number, offset: number) =>
      parsed(
        encodeAt(valueEntry(Buffer.from('k'), 7n, Buffer.from('v'), expiresAtMs), offset),
        offset,
        Infinity,
      );
    for (const [a, b] of [
      [0, 5_000],
      [6_000, 5_000],
      [0, 2 ** 48 - 1],
    ] as const) {
      assert.ok(at(a, 1).compareVersion(at(b, 2)) > 0, `${a} over ${b}`);
      assert.ok(at(b, 2).compareVersion(at(a, 1)) < 0, `${b} under ${a}`);
    }
    assert.equal(at(5_000, 1).compareVersion(at(5_000, 2)), 0);
  });

  it('names what is wrong with bytes that are not a whole record', () => {
    fc.assert(
      fc.property(entryArb(), fc.nat(), (entry, cut) => {
        const buf = encodeAt(entry, 0);
        const limit = cut % buf.length;
        const reason = new RecordView().parse(buf, 0, limit);
        assert.equal(typeof reason, 'string');
      }),
      propertyParams({ numRuns: 500 }),
    );
    const buf = encodeAt(valueEntry(Buffer.from('key'), 1n, Buffer.from('value')), 0);
    buf[0] = 9;
    assert.equal(new RecordView().parse(buf, 0, buf.length), 'unknown entry kind 9');
  });
});
