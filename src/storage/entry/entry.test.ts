import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { compareVersions, type Entry, newer, tombstoneEntry, valueEntry } from './entry.js';

const key = Buffer.from('k');
/** One version and value of `key`, expiring at `expiresAtMs` (0: never). */
const expiring = (expiresAtMs: number) => valueEntry(key, 7n, Buffer.from('v'), expiresAtMs);

describe('compareVersions', () => {
  it('at one version and value, the later expiry wins, and no expiry wins over any, in either order', () => {
    // Each one newer than those before it.
    const ordered = [expiring(1), expiring(5_000), expiring(2 ** 48 - 1), expiring(0)];
    for (const [i, a] of ordered.entries()) {
      for (const [j, b] of ordered.entries()) {
        assert.equal(
          Math.sign(compareVersions(a, b)),
          Math.sign(i - j),
          `expiry ${a.expiresAtMs} against ${b.expiresAtMs}`,
        );
      }
    }
    assert.equal(newer(expiring(5_000), expiring(0))?.expiresAtMs, 0);
    assert.equal(newer(expiring(0), expiring(5_000))?.expiresAtMs, 0);
  });

  it('the version comes first, then a tombstone over a value, then the value bytes, then the expiry', () => {
    const v = (version: bigint, value: string, expiresAtMs: number) =>
      valueEntry(key, version, Buffer.from(value), expiresAtMs);
    assert.ok(compareVersions(v(8n, 'a', 1), v(7n, 'b', 0)) > 0);
    assert.ok(compareVersions(tombstoneEntry(key, 7n), v(7n, 'b', 0)) > 0);
    assert.ok(compareVersions(v(7n, 'b', 1), v(7n, 'a', 0)) > 0);
  });

  it('is a total order on the entries of one key: 0 only for equal entries, antisymmetric, transitive (property)', () => {
    // Small domains, so that every tie-break is reached.
    const entryArb = fc
      .record({
        tombstone: fc.boolean(),
        version: fc.bigInt({ min: 0n, max: 2n }),
        value: fc.constantFrom('', 'a', 'b'),
        expiresAtMs: fc.constantFrom(0, 1, 2),
      })
      .map(
        (e): Entry =>
          e.tombstone
            ? tombstoneEntry(key, e.version)
            : valueEntry(key, e.version, Buffer.from(e.value), e.expiresAtMs),
      );
    const same = (a: Entry, b: Entry) =>
      a.version === b.version &&
      a.kind === b.kind &&
      a.value.equals(b.value) &&
      a.expiresAtMs === b.expiresAtMs;
    fc.assert(
      fc.property(entryArb, entryArb, entryArb, (a, b, c) => {
        assert.equal(compareVersions(a, b) === 0, same(a, b));
        assert.equal(Math.sign(compareVersions(a, b)) + Math.sign(compareVersions(b, a)), 0);
        if (compareVersions(a, b) > 0 && compareVersions(b, c) > 0) assert.ok(compareVersions(a, c) > 0);
      }),
      propertyParams({ numRuns: 2000 }),
    );
  });
});
