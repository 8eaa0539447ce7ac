/**
 * The Engine contract (src/storage/engine.ts) as a suite any engine must
 * pass. Each engine registers a factory; `reopen` is optional (engines that
 * keep nothing across instances leave it out, and the suite says which
 * tests it skipped and why).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Engine } from '../../src/storage/engine.js';
import { type Entry, EntryKind, isLive, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';

export interface EngineHarness {
  readonly engine: Engine;
  /** Closes and opens the same store again; undefined when the engine keeps nothing. */
  reopen?(): Promise<EngineHarness>;
  dispose(): Promise<void>;
}

export interface EngineFactory {
  readonly name: string;
  /** What the engine offers beyond the core contract; a gap is a skip with a reason, never an edit here. */
  readonly supports: { readonly persistence: boolean };
  create(): Promise<EngineHarness>;
}

const b = (s: string) => Buffer.from(s, 'utf8');

export async function scanAll(
  engine: Pick<Engine, 'scan'>,
  start: Buffer = Buffer.alloc(0),
  end?: Buffer,
): Promise<Entry[]> {
  const cursor = engine.scan({ start, end });
  const out: Entry[] = [];
  try {
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next())
      out.push(...batch);
  } finally {
    await cursor.close();
  }
  return out;
}

async function withEngine(
  factory: EngineFactory,
  fn: (h: EngineHarness) => Promise<EngineHarness | undefined>,
) {
  let harness = await factory.create();
  try {
    harness = (await fn(harness)) ?? harness;
  } finally {
    await harness.dispose();
  }
}

export function engineSuite(factory: EngineFactory): void {
  describe(`Engine contract: ${factory.name}`, () => {
    test('get returns what was written, and undefined for an absent key', () =>
      withEngine(factory, async ({ engine }) => {
        await engine.write(valueEntry(b('a'), 1n, b('one')));
        const got = await engine.get(b('a'));
        assert.equal(got?.value.toString(), 'one');
        assert.equal(got?.version, 1n);
        assert.equal(await engine.get(b('b')), undefined);
        return undefined;
      }));

    test('the newest version wins whatever the arrival order', () =>
      withEngine(factory, async ({ engine }) => {
        await engine.write(valueEntry(b('k'), 5n, b('five')));
        await engine.write(valueEntry(b('k'), 3n, b('three')));
        assert.equal((await engine.get(b('k')))?.value.toString(), 'five');
        await engine.write(tombstoneEntry(b('k'), 4n));
        assert.equal((await engine.get(b('k')))?.kind, EntryKind.Value);
        await engine.write(tombstoneEntry(b('k'), 6n));
        const got = await engine.get(b('k'));
        assert.equal(got?.kind, EntryKind.Tombstone);
        assert.equal(got?.version, 6n);
        return undefined;
      }));

    test('equal versions break ties the same way everywhere: tombstone, then larger value', () =>
      withEngine(factory, async ({ engine }) => {
        await engine.write(valueEntry(b('t'), 9n, b('b')));
        await engine.write(valueEntry(b('t'), 9n, b('a')));
        assert.equal((await engine.get(b('t')))?.value.toString(), 'b');
        await engine.write(tombstoneEntry(b('t'), 9n));
        assert.equal((await engine.get(b('t')))?.kind, EntryKind.Tombstone);
        // The other arrival orders: the same winners, not the first or the last to arrive.
        await engine.write(valueEntry(b('u'), 9n, b('a')));
        await engine.write(valueEntry(b('u'), 9n, b('b')));
        assert.equal((await engine.get(b('u')))?.value.toString(), 'b');
        await engine.write(tombstoneEntry(b('v'), 9n));
        await engine.write(valueEntry(b('v'), 9n, b('z')));
        assert.equal((await engine.get(b('v')))?.kind, EntryKind.Tombstone);
        return undefined;
      }));

    test('empty values, binary keys and expiry times are stored exactly', () =>
      withEngine(factory, async ({ engine }) => {
        const key = Buffer.from([0, 255, 10, 0]);
        await engine.write(valueEntry(key, 2n, Buffer.alloc(0)));
        await engine.write(valueEntry(b('ttl'), 3n, b('x'), 1234567890123));
        const empty = await engine.get(key);
        assert.equal(empty?.value.length, 0);
        assert.ok(empty && isLive(empty, Date.now()));
        const ttl = await engine.get(b('ttl'));
        assert.equal(ttl?.expiresAtMs, 1234567890123);
        assert.ok(ttl && !isLive(ttl, 1234567890123));
        return undefined;
      }));

    test('scan returns [start, end) in key order with the newest version of each key', () =>
      withEngine(factory, async ({ engine }) => {
        for (const k of ['d', 'a', 'c', 'b', 'e']) await engine.write(valueEntry(b(k), 1n, b(`${k}1`)));
        await engine.write(valueEntry(b('c'), 2n, b('c2')));
        await engine.write(tombstoneEntry(b('d'), 2n));
        const all = await scanAll(engine);
        assert.deepEqual(
          all.map((e) => e.key.toString()),
          ['a', 'b', 'c', 'd', 'e'],
        );
        assert.equal(all[2]?.value.toString(), 'c2');
        assert.equal(all[3]?.kind, EntryKind.Tombstone);
        const mid = await scanAll(engine, b('b'), b('d'));
        assert.deepEqual(
          mid.map((e) => e.key.toString()),
          ['b', 'c'],
        );
        assert.deepEqual(await scanAll(engine, b('f')), []);
        assert.deepEqual(await scanAll(engine, b('c'), b('c')), []);
        return undefined;
      }));

    test('concurrent writes all land', () =>
      withEngine(factory, async ({ engine }) => {
        const n = 500;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            engine.write(valueEntry(b(`k${String(i).padStart(4, '0')}`), BigInt(i + 1), b(`v${i}`))),
          ),
        );
        const all = await scanAll(engine);
        assert.equal(all.length, n);
        assert.equal((await engine.get(b('k0499')))?.value.toString(), 'v499');
        return undefined;
      }));

    test('flush and compact keep every answer the same', () =>
      withEngine(factory, async ({ engine }) => {
        // Compaction may drop old tombstones, so compare what a reader can see.
        const live = async () => (await scanAll(engine)).filter((e) => isLive(e, Date.now()));
        for (let i = 0; i < 300; i++)
          await engine.write(valueEntry(b(`k${i % 100}`), BigInt(i + 1), b(`v${i}`)));
        await engine.write(tombstoneEntry(b('k7'), 1000n));
        const before = await live();
        assert.equal(before.length, 99);
        await engine.flush();
        assert.deepEqual(await live(), before);
        await engine.compact();
        assert.deepEqual(await live(), before);
        const k7 = await engine.get(b('k7'));
        assert.ok(k7 === undefined || !isLive(k7, Date.now()));
        assert.equal((await engine.get(b('k99')))?.value.toString(), 'v299');
        return undefined;
      }));

    const noPersistence = !factory.supports.persistence && 'the engine keeps nothing across instances';
    test('data survives close and reopen', { skip: noPersistence }, () =>
      withEngine(factory, async (harness) => {
        assert.ok(harness.reopen, 'a persistent engine offers reopen');
        await harness.engine.write(valueEntry(b('x'), 1n, b('kept')));
        await harness.engine.write(tombstoneEntry(b('y'), 2n));
        const next = await harness.reopen();
        assert.equal((await next.engine.get(b('x')))?.value.toString(), 'kept');
        assert.equal((await next.engine.get(b('y')))?.kind, EntryKind.Tombstone);
        return next;
      }),
    );

    test('calls after close reject with RINGKV_CLOSED (scan throws it)', async () => {
      const harness = await factory.create();
      await harness.engine.close();
      await assert.rejects(harness.engine.get(b('a')), { code: 'RINGKV_CLOSED' });
      await assert.rejects(harness.engine.write(valueEntry(b('a'), 1n, b('v'))), { code: 'RINGKV_CLOSED' });
      assert.throws(() => harness.engine.scan({ start: b('') }), { code: 'RINGKV_CLOSED' });
      await harness.dispose();
    });
  });
}
