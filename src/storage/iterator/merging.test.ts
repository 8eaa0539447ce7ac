import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { compareBytes } from '../../util/bytes.js';
import type { EntryCursor } from '../engine.js';
import { compareVersions, type Entry, EntryKind, tombstoneEntry, valueEntry } from '../entry/entry.js';
import { type MergeOptions, mergeCursors } from './merging.js';

/** A cursor over sorted entries, `batch` at a time; counts its close() calls. */
class ArrayCursor implements EntryCursor {
  closes = 0;
  #at = 0;
  readonly #entries: readonly Entry[];
  readonly #batch: number;
  readonly #yieldEvery: boolean;

  constructor(entries: readonly Entry[], batch = 2, yieldEvery = false) {
    this.#entries = entries;
    this.#batch = batch;
    this.#yieldEvery = yieldEvery;
  }

  async next(): Promise<Entry[] | undefined> {
    // Some sources answer after a turn of the event loop, as a table read does.
    if (this.#yieldEvery) await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.closes > 0 || this.#at >= this.#entries.length) return undefined;
    const batch = this.#entries.slice(this.#at, this.#at + this.#batch);
    this.#at += batch.length;
    return batch;
  }

  async close(): Promise<void> {
    this.closes++;
  }
}

const v = (key: string, version: bigint, value = `${key}${version}`) =>
  valueEntry(Buffer.from(key), version, Buffer.from(value));
const t = (key: string, version: bigint) => tombstoneEntry(Buffer.from(key), version);

const WIDE: MergeOptions = { batchMax: 1000, batchBytesMax: 1 << 20 };

async function drain(cursor: EntryCursor): Promise<{ entries: Entry[]; batches: Entry[][] }> {
  const batches: Entry[][] = [];
  for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) batches.push(batch);
  return { entries: batches.flat(), batches };
}

const show = (entries: readonly Entry[]) =>
  entries.map((e) => `${e.key}:${e.version}${e.kind === EntryKind.Tombstone ? 'x' : `=${e.value}`}`);

describe('mergeCursors', () => {
  it('yields the keys of every source in byte order', async () => {
    const merged = mergeCursors(
      [
        new ArrayCursor([v('b', 1n), v('e', 1n), v('h', 1n)]),
        new ArrayCursor([v('a', 1n), v('f', 1n)], 1),
        new ArrayCursor([v('c', 1n), v('d', 1n), v('g', 1n), v('\u00e9', 1n)], 3),
        new ArrayCursor([]),
      ],
      WIDE,
    );
    const { entries } = await drain(merged);
    assert.deepEqual(
      entries.map((e) => e.key.toString()),
      ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', '\u00e9'],
    );
  });

  it('yields a key held by several sources once, at its newest version, wherever that sits', async () => {
    const sources = () => [
      new ArrayCursor([v('a', 5n), v('b', 1n), v('c', 2n)]),
      new ArrayCursor([v('a', 3n), v('b', 9n), v('c', 2n, 'c-big')]),
      new ArrayCursor([v('a', 4n), t('b', 7n), t('c', 2n)]),
    ];
    const { entries } = await drain(mergeCursors(sources(), WIDE));
    // At an equal version a tombstone beats a value (compareVersions).
    assert.deepEqual(show(entries), ['a:5=a5', 'b:9=b9', 'c:2x']);
    const reversed = await drain(mergeCursors(sources().reverse(), WIDE));
    assert.deepEqual(show(reversed.entries), show(entries));
  });

  it('at an equal version and kind, the larger value wins, from any source', async () => {
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      const sources = [new ArrayCursor([v('k', 3n, 'aa')]), new ArrayCursor([v('k', 3n, 'ab')])];
      const { entries } = await drain(
        mergeCursors(
          order.map((i) => sources[i]!),
          WIDE,
        ),
      );
      assert.deepEqual(show(entries), ['k:3=ab']);
    }
  });

  it('at an equal version and value, the later expiry wins (no expiry the latest), from any source', async () => {
    const at = (expiresAtMs: number) => valueEntry(Buffer.from('k'), 3n, Buffer.from('v'), expiresAtMs);
    for (const [a, b, kept] of [
      [5_000, 0, 0],
      [5_000, 6_000, 6_000],
    ]) {
      for (const order of [
        [a, b],
        [b, a],
      ]) {
        const { entries } = await drain(
          mergeCursors(
            order.map((expiresAtMs) => new ArrayCursor([at(expiresAtMs!)])),
            WIDE,
          ),
        );
        assert.deepEqual(
          entries.map((e) => e.expiresAtMs),
          [kept],
          `sources expiring at ${order.join(', ')}`,
        );
      }
    }
  });

  it('keep() sees only the newest version: a dropped tombstone hides the older values under it', async () => {
    const seen: string[] = [];
    const merged = mergeCursors(
      [
        new ArrayCursor([t('a', 9n), v('b', 2n), t('c', 1n)]),
        new ArrayCursor([v('a', 8n), t('b', 1n), v('c', 2n)]),
      ],
      {
        ...WIDE,
        keep: (e) => {
          seen.push(show([e])[0]!);
          return e.kind !== EntryKind.Tombstone;
        },
      },
    );
    const { entries } = await drain(merged);
    assert.deepEqual(show(entries), ['b:2=b2', 'c:2=c2']);
    assert.deepEqual(seen, ['a:9x', 'b:2=b2', 'c:2=c2']);
  });

  it('hands out batches of at most batchMax entries, never empty', async () => {
    const entries = Array.from({ length: 23 }, (_, i) => v(`k${String(i).padStart(2, '0')}`, 1n));
    const merged = mergeCursors(
      [
        new ArrayCursor(
          entries.filter((_, i) => i % 2 === 0),
          3,
        ),
        new ArrayCursor(
          entries.filter((_, i) => i % 2 === 1),
          4,
        ),
      ],
      { batchMax: 5, batchBytesMax: 1 << 20 },
    );
    const { batches } = await drain(merged);
    assert.deepEqual(
      batches.map((b) => b.length),
      [5, 5, 5, 5, 3],
    );
    assert.deepEqual(show(batches.flat()), show(entries));
  });

  it('closes a batch once its keys and values reach batchBytesMax', async () => {
    // Each entry: a 2-byte key and an 8-byte value, 10 bytes.
    const entries = Array.from({ length: 10 }, (_, i) => v(`k${i}`, 1n, `value-0${i}`));
    const { batches } = await drain(
      mergeCursors([new ArrayCursor(entries, 4)], { batchMax: 100, batchBytesMax: 25 }),
    );
    // 10, 20, then 30 >= 25 closes the batch: three entries a batch.
    assert.deepEqual(
      batches.map((b) => b.length),
      [3, 3, 3, 1],
    );
  });

  it('closes every source and calls onClose once, when exhausted', async () => {
    let onClose = 0;
    const sources = [
      new ArrayCursor([v('a', 1n)]),
      new ArrayCursor([v('b', 1n), v('c', 1n)], 1),
      new ArrayCursor([]),
    ];
    const merged = mergeCursors(sources, { ...WIDE, onClose: () => onClose++ });
    await drain(merged);
    assert.equal(onClose, 1);
    assert.deepEqual(
      sources.map((s) => s.closes),
      [1, 1, 1],
    );
    assert.equal(await merged.next(), undefined);
    await merged.close();
    assert.equal(onClose, 1);
  });

  it('closed early, closes every source, calls onClose once and yields nothing more', async () => {
    let onClose = 0;
    const sources = [
      new ArrayCursor([v('a', 1n), v('c', 1n), v('e', 1n)], 1),
      new ArrayCursor([v('b', 1n), v('d', 1n)], 1),
    ];
    const merged = mergeCursors(sources, { batchMax: 2, batchBytesMax: 1 << 20, onClose: () => onClose++ });
    assert.deepEqual(show((await merged.next())!), ['a:1=a1', 'b:1=b1']);
    await merged.close();
    await merged.close();
    assert.equal(onClose, 1);
    assert.deepEqual(
      sources.map((s) => s.closes),
      [1, 1],
    );
    assert.equal(await merged.next(), undefined);
  });

  it('closed before the first next(), still closes its sources', async () => {
    let onClose = 0;
    const sources = [new ArrayCursor([v('a', 1n)])];
    const merged = mergeCursors(sources, { ...WIDE, onClose: () => onClose++ });
    await merged.close();
    assert.equal(onClose, 1);
    assert.equal(sources[0]!.closes, 1);
    assert.equal(await merged.next(), undefined);
  });

  it('with no sources, or only empty ones, yields nothing', async () => {
    let onClose = 0;
    assert.equal(await mergeCursors([], { ...WIDE, onClose: () => onClose++ }).next(), undefined);
    assert.equal(onClose, 1);
    assert.equal(await mergeCursors([new ArrayCursor([]), new ArrayCursor([])], WIDE).next(), undefined);
  });

  it('agrees with a sorted-map model over overlapping sources, in any batch sizes (property)', async () => {
    // Few short keys and few versions, so that sources overlap and versions tie.
    const entryArb = fc
      .record({
        key: fc.uint8Array({ minLength: 1, maxLength: 2, max: 3 }),
        version: fc.bigInt({ min: 1n, max: 4n }),
        tombstone: fc.boolean(),
        value: fc.uint8Array({ maxLength: 3, max: 2 }),
      })
      .map(
        (e): Entry =>
          e.tombstone
            ? tombstoneEntry(Buffer.from(e.key), e.version)
            : valueEntry(Buffer.from(e.key), e.version, Buffer.from(e.value)),
      );
    // One source: one entry per key, in key order (as a memtable or a table hands them out).
    const sourceArb = fc.record({
      entries: fc
        .uniqueArray(entryArb, { maxLength: 14, selector: (e) => e.key.toString('hex') })
        .map((entries) => entries.sort((a, b) => compareBytes(a.key, b.key))),
      batch: fc.integer({ min: 1, max: 5 }),
      yieldEvery: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(sourceArb, { maxLength: 6 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 30 }),
        fc.boolean(),
        async (sources, batchMax, batchBytesMax, dropTombstones) => {
          const model = new Map<string, Entry>();
          for (const { entries } of sources) {
            for (const e of entries) {
              const id = e.key.toString('hex');
              const held = model.get(id);
              if (held === undefined || compareVersions(e, held) > 0) model.set(id, e);
            }
          }
          const expected = [...model.values()]
            .filter((e) => !dropTombstones || e.kind !== EntryKind.Tombstone)
            .sort((a, b) => compareBytes(a.key, b.key));

          const cursors = sources.map((s) => new ArrayCursor(s.entries, s.batch, s.yieldEvery));
          let onClose = 0;
          const merged = mergeCursors(cursors, {
            batchMax,
            batchBytesMax,
            onClose: () => onClose++,
            ...(dropTombstones ? { keep: (e: Entry) => e.kind !== EntryKind.Tombstone } : {}),
          });
          const { entries, batches } = await drain(merged);
          assert.deepEqual(show(entries), show(expected));
          for (const batch of batches) {
            assert.ok(batch.length > 0 && batch.length <= batchMax, `batch of ${batch.length}`);
            // Every entry but the last went in while the batch was under batchBytesMax.
            const before = batch.slice(0, -1).reduce((n, e) => n + e.key.length + e.value.length, 0);
            assert.ok(before < batchBytesMax, `batch of ${before} bytes before its last entry`);
          }
          assert.equal(onClose, 1);
          assert.ok(cursors.every((c) => c.closes === 1));
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });
});
