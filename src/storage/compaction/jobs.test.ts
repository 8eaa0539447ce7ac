import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { plain, tempDir, writeTable } from '../../../test/support/sstable-fixtures.js';
import { compareBytes } from '../../util/bytes.js';
import { isRingkvError } from '../../util/errors.js';
import { encodedEntryBytes, encodeEntry } from '../entry/codec.js';
import { compareVersions, type Entry, EntryKind, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { makeVersion } from '../entry/version.js';
import { filePath } from '../files.js';
import { scanTableSync } from '../sstable/index.js';
import { fsError } from '../vfs/errors.js';
import { isNoSpace, storageError } from '../vfs/index.js';
import { type CompactionJob, fromJobError, runCompaction, runFlush, toJobError } from './jobs.js';

const NOW_MS = 1_700_000_000_000;
const GRACE_MS = 1000;
const WRITER = { blockBytes: 512, bloomBitsPerKey: 10 };

/** A compaction job of the tests: 1 KiB output tables, aged at NOW_MS with GRACE_MS. */
function compactionJob(
  dir: string,
  inputs: number[],
  outputFileNumbers: number[],
  options: { bottom: boolean; obsoleteBelowVersion: bigint },
): CompactionJob {
  return {
    kind: 'compaction',
    dir,
    inputs,
    outputFileNumbers,
    tableBytesTarget: 1024,
    ...options,
    nowMs: NOW_MS,
    tombstoneGraceMs: GRACE_MS,
    writer: WRITER,
  };
}

// Few short keys, so that tables share keys; versions near NOW_MS, so that some tombstones are past the grace.
const keyArb = fc.integer({ min: 0, max: 60 }).map((n) => Buffer.from(`k${n}`));
const entryArb = fc
  .record({
    key: keyArb,
    tombstone: fc.boolean(),
    ageMs: fc.integer({ min: 0, max: 2 * GRACE_MS }),
    logical: fc.integer({ min: 0, max: 2 }),
    expiry: fc.oneof(fc.constant(0), fc.integer({ min: -2 * GRACE_MS, max: GRACE_MS })),
    value: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b.map((x) => x & 1))),
  })
  .map((e): Entry => {
    const version = makeVersion(NOW_MS - e.ageMs, e.logical);
    if (e.tombstone) return tombstoneEntry(e.key, version);
    return valueEntry(e.key, version, e.value, e.expiry === 0 ? 0 : NOW_MS + e.expiry);
  });
/** A table's entries: one per key, in key order. */
const tableArb = fc
  .uniqueArray(entryArb, { minLength: 1, maxLength: 50, selector: (e) => e.key.toString('hex') })
  .map((entries) => entries.sort((a, b) => compareBytes(a.key, b.key)));

describe('flush and compaction jobs (property)', () => {
  const tmp = tempDir();
  after(() => tmp.remove());
  let fileNumber = 1;

  it('a flush writes the same bytes as adding the decoded entries one by one', () => {
    fc.assert(
      fc.property(tableArb, (entries) => {
        const encoded = Buffer.alloc(entries.reduce((sum, e) => sum + encodedEntryBytes(e), 0));
        let at = 0;
        for (const entry of entries) at = encodeEntry(entry, encoded, at);
        const flushed = fileNumber++;
        const result = runFlush({
          kind: 'flush',
          dir: tmp.dir,
          fileNumber: flushed,
          entries: encoded,
          writer: WRITER,
        });
        const added = fileNumber++;
        const meta = writeTable(filePath(tmp.dir, added, 'sst'), entries, WRITER, added);
        assert.deepEqual(result.tables[0], { ...meta, fileNumber: flushed });
        assert.ok(
          readFileSync(filePath(tmp.dir, flushed, 'sst')).equals(
            readFileSync(filePath(tmp.dir, added, 'sst')),
          ),
        );
      }),
      propertyParams({ numRuns: 100 }),
    );
  });

  it('a compaction keeps the newest version of each key, and at the bottom drops what is obsolete below the bound', () => {
    // The bound: nothing outside (2^64), or the smallest version held outside, around the generated versions.
    const boundArb = fc.oneof(
      fc.constant(1n << 64n),
      fc
        .record({ ageMs: fc.integer({ min: 0, max: 2 * GRACE_MS }), logical: fc.integer({ min: 0, max: 2 }) })
        .map(({ ageMs, logical }) => makeVersion(NOW_MS - ageMs, logical)),
    );
    fc.assert(
      fc.property(
        fc.array(tableArb, { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        boundArb,
        (tables, bottom, bound) => {
          const inputs = tables.map((entries) => {
            const n = fileNumber++;
            writeTable(filePath(tmp.dir, n, 'sst'), entries, WRITER, n);
            return n;
          });
          const newest = new Map<string, Entry>();
          for (const entry of tables.flat()) {
            const id = entry.key.toString('hex');
            const known = newest.get(id);
            if (known === undefined || compareVersions(entry, known) > 0) newest.set(id, entry);
          }
          const merged = [...newest.values()].sort((a, b) => compareBytes(a.key, b.key));
          const dropped = merged.filter((e) => bottom && obsolete(e) && e.version < bound);
          const expected = merged.filter((e) => !dropped.includes(e));
          const outputFileNumbers = Array.from({ length: 8 }, () => fileNumber++);
          const result = runCompaction(
            compactionJob(tmp.dir, inputs, outputFileNumbers, {
              bottom: bottom,
              obsoleteBelowVersion: bound,
            }),
          );
          assert.equal(result.entriesIn, merged.length);
          assert.equal(result.entriesDropped, merged.length - expected.length);
          const droppedMax = dropped.reduce<bigint | undefined>(
            (max, e) => (max === undefined || e.version > max ? e.version : max),
            undefined,
          );
          assert.equal(result.obsoleteVersionMax, droppedMax);
          const out = result.tables.flatMap((t) => [
            ...scanTableSync(filePath(tmp.dir, t.fileNumber, 'sst')),
          ]);
          assert.deepEqual(out.map(plain), expected.map(plain));
        },
      ),
      propertyParams({ numRuns: 100 }),
    );
  });
});

describe('a compaction of one version and value with two expiries', () => {
  const tmp = tempDir();
  after(() => tmp.remove());
  let fileNumber = 1;

  it('keeps the later one, whichever table holds it; no expiry is the latest', () => {
    const version = makeVersion(NOW_MS, 0);
    const at = (expiresAtMs: number) => valueEntry(Buffer.from('k'), version, Buffer.from('v'), expiresAtMs);
    for (const [a, b, kept] of [
      [NOW_MS + 5_000, 0, 0],
      [NOW_MS + 5_000, NOW_MS + 6_000, NOW_MS + 6_000],
    ]) {
      for (const order of [
        [a!, b!],
        [b!, a!],
      ]) {
        const inputs = order.map((expiresAtMs) => {
          const n = fileNumber++;
          writeTable(filePath(tmp.dir, n, 'sst'), [at(expiresAtMs)], WRITER, n);
          return n;
        });
        const result = runCompaction(
          compactionJob(tmp.dir, inputs, [fileNumber++], { bottom: true, obsoleteBelowVersion: 1n << 64n }),
        );
        const out = result.tables.flatMap((t) => [...scanTableSync(filePath(tmp.dir, t.fileNumber, 'sst'))]);
        assert.deepEqual(out.map(plain), [plain(at(kept!))], `tables expiring at ${order.join(', ')}`);
      }
    }
  });
});

describe('a value written after its expiry', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  it('stays a grace period after its version, as a tombstone would: it hides older values on the other replicas', () => {
    // A retry re-stamps the version but not the expiry, and a clock ahead stamps versions past the wall
    // clock: the value expired before it took effect, and until replicas have exchanged it, it deletes.
    const key = Buffer.from('k');
    const written = makeVersion(NOW_MS - GRACE_MS / 2, 0);
    const lateValue = valueEntry(key, written, Buffer.from('v'), NOW_MS - 2 * GRACE_MS);
    writeTable(filePath(tmp.dir, 1, 'sst'), [lateValue], WRITER, 1);
    const job = compactionJob(tmp.dir, [1], [2], { bottom: true, obsoleteBelowVersion: 1n << 64n });
    const kept = runCompaction(job);
    assert.equal(kept.entriesDropped, 0, 'dropped half a grace after its version');
    assert.equal(kept.tables[0]?.droppable?.fromMs, NOW_MS - GRACE_MS / 2, 'counted from its version');
    // A grace after its version, it goes.
    const later = runCompaction({ ...job, inputs: [2], outputFileNumbers: [3], nowMs: NOW_MS + GRACE_MS });
    assert.equal(later.entriesDropped, 1);
  });
});

describe('compaction output file numbers', () => {
  const tmp = tempDir();
  after(() => tmp.remove());

  it('the last reserved number takes the rest: a job whose reservation is short does not fail', () => {
    const entries = Array.from({ length: 200 }, (_, i) =>
      valueEntry(Buffer.from(`k${String(i).padStart(4, '0')}`), makeVersion(NOW_MS, 0), Buffer.alloc(100, 1)),
    );
    writeTable(filePath(tmp.dir, 1, 'sst'), entries, WRITER, 1);
    const result = runCompaction(
      compactionJob(tmp.dir, [1], [2, 3], { bottom: true, obsoleteBelowVersion: 1n << 64n }),
    );
    assert.deepEqual(
      result.tables.map((t) => t.fileNumber),
      [2, 3],
    );
    assert.ok(result.tables[1]!.fileBytes > 10 * 1024, 'the second table holds the rest');
    const out = result.tables.flatMap((t) => [...scanTableSync(filePath(tmp.dir, t.fileNumber, 'sst'))]);
    assert.deepEqual(out.map(plain), entries.map(plain));
  });
});

/** The rule isObsolete implements, stated on an Entry. */
function obsolete(entry: Entry): boolean {
  if (entry.kind === EntryKind.Tombstone) return Number(entry.version >> 16n) + GRACE_MS <= NOW_MS;
  // A value counts from its expiry, or from its version if it was written already expired.
  const fromMs = Math.max(entry.expiresAtMs, Number(entry.version >> 16n));
  return entry.expiresAtMs !== 0 && fromMs + GRACE_MS <= NOW_MS;
}

describe('a job failure crossing from the worker', () => {
  it('keeps a full disk a full disk, and wraps it as RINGKV_NO_SPACE naming what failed', () => {
    const full = fsError('ENOSPC', 'write', '/data/000009.sst');
    const crossed = fromJobError(toJobError(new Error('Flush failed', { cause: full })));
    assert.ok(isRingkvError(crossed, 'RINGKV_NO_SPACE'));
    assert.ok(isNoSpace(crossed));
    const error = storageError('Flush failed in /data', crossed);
    assert.equal(error.code, 'RINGKV_NO_SPACE');
    assert.equal(error.message, 'Disk full: Flush failed in /data: Flush failed');
    // Said once, however deep it was wrapped; a quota counts too; other failures stay RINGKV_IO.
    assert.equal(
      storageError('Outer', error).message,
      'Disk full: Outer: Flush failed in /data: Flush failed',
    );
    assert.equal(storageError('Write', fsError('EDQUOT', 'write', '/data/x')).code, 'RINGKV_NO_SPACE');
    const eio = fromJobError(toJobError(fsError('EIO', 'write', '/data/000009.sst')));
    assert.ok(!isNoSpace(eio));
    assert.equal(storageError('Flush failed in /data', eio).code, 'RINGKV_IO');
  });
});
