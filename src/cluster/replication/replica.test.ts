import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryEngine, makeVersion, valueEntry } from '../../storage/index.js';
import { HybridClock } from '../clock.js';
import { createReplica } from './replica.js';

test('Replica: a write below the known version is applied and answered as a conflict; versions advance the clock', async () => {
  const engine = new MemoryEngine();
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  const floor = makeVersion(1_001_000, 0);
  // Just started: anything at or below now + skew may be older than what the engine holds.
  const early = valueEntry(Buffer.from('k'), makeVersion(1_000_500, 0), Buffer.from('a'));
  assert.equal(await replica.write(early), floor);
  assert.deepEqual(await engine.get(Buffer.from('k')), early, 'applied all the same');
  const later = valueEntry(Buffer.from('k'), makeVersion(1_002_000, 3), Buffer.from('b'));
  assert.equal(await replica.write(later), undefined);
  assert.equal(
    await replica.write(valueEntry(Buffer.from('k'), makeVersion(1_001_500, 0), Buffer.from('c'))),
    later.version,
  );
  assert.ok(clock.now() > later.version, 'the clock observed the written version');
  assert.deepEqual(
    (await engine.get(Buffer.from('k')))?.value,
    Buffer.from('b'),
    'the engine kept the newest',
  );
  assert.equal(replica.stats().conflicts, 2);
});

test('Replica: a write older than what the store holds is a conflict, beyond the memory and after a restart', async () => {
  const engine = new MemoryEngine();
  // Written through a node whose clock ran 30 s ahead, before this replica (re)started.
  const held = valueEntry(Buffer.from('k'), makeVersion(1_030_000, 0), Buffer.from('v0'));
  await engine.write(held);
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  // Above the recent-writes floor (now + skew), so only the store knows of the newer version.
  const stale = valueEntry(Buffer.from('k'), makeVersion(1_010_000, 0), Buffer.from('v1'));
  assert.equal(await replica.write(stale), held.version);
  assert.equal(replica.stats().storedConflicts, 1);
  assert.ok(clock.now() > held.version, 'the clock moved past the held version');
  // A newer write of the key, and a write of another key, are not conflicts.
  const newer = valueEntry(Buffer.from('k'), makeVersion(1_030_001, 0), Buffer.from('v2'));
  assert.equal(await replica.write(newer), undefined);
  assert.equal(
    await replica.write(valueEntry(Buffer.from('other'), makeVersion(1_030_002, 0), Buffer.from('x'))),
    undefined,
  );
  assert.equal(replica.stats().conflicts, 1);
  // The memory learned the held version: a later stale write conflicts by the memory alone.
  const again = valueEntry(Buffer.from('k'), makeVersion(1_010_001, 0), Buffer.from('v3'));
  assert.equal(await replica.write(again), newer.version);
  assert.equal(replica.stats().storedConflicts, 1);
});

test('Replica: two concurrent writes of a fresh key do not both conflict (no retry ping-pong)', async () => {
  const engine = new MemoryEngine();
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  for (let i = 0; i < 20; i++) {
    const key = Buffer.from(`fresh-${i}`);
    const first = valueEntry(key, makeVersion(1_010_000 + 2 * i, 0), Buffer.from('a'));
    const second = valueEntry(key, makeVersion(1_010_001 + 2 * i, 0), Buffer.from('b'));
    const [one, two] = await Promise.all([replica.write(first), replica.write(second)]);
    // The newer write never conflicts: the memory knew only the older one when it came.
    assert.equal(two, undefined, `round ${i}`);
    assert.ok(one === undefined || one === second.version, `round ${i}: ${one}`);
  }
});

test('Replica: scan pages hold at most limit entries and say whether more follow', async () => {
  const engine = new MemoryEngine();
  const replica = createReplica(engine, new HybridClock(), { clockSkewMaxMs: 0 });
  for (let i = 0; i < 5; i++) await engine.write(valueEntry(Buffer.from(`k${i}`), 1n, Buffer.from('v')));
  const first = await replica.scan(Buffer.from('k'), undefined, 3);
  assert.deepEqual(
    first.entries.map((e) => e.key.toString()),
    ['k0', 'k1', 'k2'],
  );
  assert.equal(first.more, true);
  const rest = await replica.scan(Buffer.from('k3'), Buffer.from('k9'), 3);
  assert.deepEqual(
    rest.entries.map((e) => e.key.toString()),
    ['k3', 'k4'],
  );
  assert.equal(rest.more, false);
  const exact = await replica.scan(Buffer.from('k3'), undefined, 2);
  assert.equal(exact.more, false, 'exactly limit entries left: nothing more');
});

test('Replica: an entry stored beside it (an anti-entropy pull, a stream) is known: a later write below it is a conflict', async () => {
  const engine = new MemoryEngine();
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  const key = Buffer.from('k');
  // Written through the replica: its memory holds the key at v100.
  assert.equal(
    await replica.write(valueEntry(key, makeVersion(1_002_000, 0), Buffer.from('v100'))),
    undefined,
  );
  // A pull stores v300 straight into the engine.
  const pulled = valueEntry(key, makeVersion(1_004_000, 0), Buffer.from('v300'));
  await engine.write(pulled);
  replica.noteStored(pulled.key, pulled.version);
  // A write at v200 must not be taken as the newest.
  const between = valueEntry(key, makeVersion(1_003_000, 0), Buffer.from('v200'));
  assert.equal(await replica.write(between), pulled.version);
  assert.ok(clock.now() > pulled.version);
});

test('Replica: writes of a key arriving while its store read-back is under way are judged against the store too', async () => {
  const engine = new MemoryEngine();
  const key = Buffer.from('k');
  // Stored before this replica (re)started by a clock beyond the bound: above the recent-writes floor.
  const held = valueEntry(key, makeVersion(1_030_000, 0), Buffer.from('v0'));
  await engine.write(held);
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  const first = valueEntry(key, makeVersion(1_010_000, 0), Buffer.from('v1'));
  const second = valueEntry(key, makeVersion(1_020_000, 0), Buffer.from('v2'));
  // The second arrives before the first's read-back: the memory then knows only the first.
  const [one, two] = await Promise.all([replica.write(first), replica.write(second)]);
  assert.equal(one, held.version);
  assert.equal(two, held.version, 'the store holds a newer version: not acknowledged as conflict-free');
  assert.deepEqual((await engine.get(key))?.value, Buffer.from('v0'));
});

test('Replica: a write at the version the store holds, which the store keeps over it (tie-break), is a conflict', async () => {
  const engine = new MemoryEngine();
  const key = Buffer.from('k');
  const version = makeVersion(1_030_000, 0);
  // Stamped by another coordinator at the same version before a restart; it wins the tie (larger bytes).
  const held = valueEntry(key, version, Buffer.from('zz'));
  await engine.write(held);
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  assert.equal(await replica.write(valueEntry(key, version, Buffer.from('aa'))), version);
  assert.deepEqual((await engine.get(key))?.value, Buffer.from('zz'), 'the store kept the other entry');
  // The entry the store holds, delivered again (a hint, a repair), is no conflict; nor is one that wins the tie.
  const other = Buffer.from('other');
  const again = valueEntry(other, version, Buffer.from('b'));
  await engine.write(again);
  const fresh = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  assert.equal(await fresh.write(again), undefined);
  assert.equal(await fresh.write(valueEntry(Buffer.from('third'), version, Buffer.from('x'))), undefined);
});

test('Replica: a write stamped past the drift bound (a peer clock hours ahead) is stored and remembered, not followed', async () => {
  const engine = new MemoryEngine();
  const clock = new HybridClock({ wallMs: () => 1_000_000 });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: 1000 });
  const ahead = valueEntry(Buffer.from('k'), makeVersion(1_000_000 + 3_600_000, 0), Buffer.from('ahead'));
  assert.equal(await replica.write(ahead), undefined);
  assert.ok(clock.now() < makeVersion(1_002_000, 0), 'the clock was not dragged an hour forward');
  // A later write of the key is answered with that version: its coordinator cannot follow it (a 504, write-round.ts).
  const later = valueEntry(Buffer.from('k'), makeVersion(1_002_000, 0), Buffer.from('later'));
  assert.equal(await replica.write(later), ahead.version);
  assert.equal(new HybridClock({ wallMs: () => 1_000_000 }).observe(ahead.version), false);
});
