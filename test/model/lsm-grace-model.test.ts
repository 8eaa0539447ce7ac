/**
 * Model-based test of what lsm-model.test.ts leaves out: time moves, and
 * tombstones and expired values really are dropped once past a short grace
 * period WHILE writes older than them keep arriving (as from a replica), all
 * within the grace contract (a write arrives within tombstoneGraceMs of its
 * version: background.ts). Under that contract no dropped record may let an
 * older version come back, so the engine must agree exactly with
 * MemoryEngine (which never drops anything) on what is live.
 *
 * Besides sequential puts, deletes, reads, flushes, compactions, restarts
 * and crashes, a "burst" runs writes, a full compaction, background
 * compactions and a paged range scan at the same time; the scan must give
 * each key once, in order, and for every key the burst does not write
 * exactly what the model holds.
 *
 * Seeds are fixed (RINGKV_GRACE_MODEL_SEEDS="1,2,3" runs others); each
 * seed is one run of a fixed number of operations, on the in-memory vfs,
 * whose jobs run in-process, so that a seed replays the same interleaving.
 * RINGKV_GRACE_MODEL_DEBUG=1 prints each step and the engine's log.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { limits } from '../../src/config/limits.js';
import type { Engine } from '../../src/storage/engine.js';
import { type Entry, isLive, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import { makeVersion } from '../../src/storage/entry/version.js';
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { MemoryEngine } from '../../src/storage/memory-engine.js';
import { restoreSnapshot } from '../../src/storage/snapshot.js';
import { MemoryVfs, seededRandom } from '../../src/storage/vfs/index.js';
import { scanAll } from '../conformance/engine-suite.js';
import { TINY } from '../support/lsm-options.js';

const SEEDS = (process.env.RINGKV_GRACE_MODEL_SEEDS ?? '1,2,3,4,5,6,7,8').split(',').map(Number);
const START_MS = 1_700_000_000_000;
const GRACE_MS = 20;
const OPS = 400;
/** Keys: few, so that versions of one key spread over every level; enough for scans to page (batches of 256). */
const KEYS = 48;
const BIG_KEYS = 600;

const keyOf = (i: number) => Buffer.from(`key-${String(i).padStart(4, '0')}`);

function observe(entry: Entry | undefined, nowMs: number): string | undefined {
  return entry !== undefined && isLive(entry, nowMs) ? entry.value.toString('hex') : undefined;
}

async function liveScan(engine: Engine, nowMs: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await scanAll(engine))
    if (isLive(e, nowMs)) out.set(e.key.toString(), e.value.toString('hex'));
  return out;
}

/** What one seed went through: each test checks that the runs dropped records and met late writes. */
const coverage = { dropped: 0, compactions: 0, deepest: 0, lateWrites: 0, bursts: 0, snapshots: 0 };

async function run(seed: number): Promise<void> {
  const rng = seededRandom(seed);
  const int = (n: number) => Math.floor(rng() * n);
  let nowMs = START_MS;
  let logical = 0;
  const vfs = new MemoryVfs();
  const options: LsmOpenOptions = {
    ...TINY,
    dir: '/data',
    sync: false,
    vfs,
    tombstoneGraceMs: GRACE_MS,
    nowMs: () => nowMs,
    droppableCheckMs: 1,
    droppableShareMin: 0.1,
    log: process.env.RINGKV_GRACE_MODEL_DEBUG ? (line: string) => console.error(line) : () => {},
    ...(process.env.RINGKV_GRACE_MODEL_DEBUG ? { summary: (line: string) => console.error(line) } : {}),
  };
  const model = new MemoryEngine();
  let engine = await LsmEngine.open(options);
  const note = () => {
    const stats = engine.stats();
    coverage.compactions += stats.compactions;
    stats.tablesPerLevel.forEach((n, level) => {
      if (n > 0) coverage.deepest = Math.max(coverage.deepest, level);
    });
  };
  /** A write as a replica may deliver it: its version up to GRACE_MS - 1 ms old (the contract). */
  const recentDeletes: number[] = [];
  const entryFor = (drawn: number): Entry => {
    const lag = rng() < 0.4 ? 1 + int(GRACE_MS - 1) : 0;
    // A late write goes, half the time, to a key deleted lately: what a dropped tombstone could let back.
    const key =
      lag > 0 && recentDeletes.length > 0 && rng() < 0.5 ? recentDeletes[int(recentDeletes.length)]! : drawn;
    if (lag > 0) coverage.lateWrites++;
    // Now and then the same version as another write with another value, kind or expiry (a clash
    // every replica must settle alike: compareVersions).
    const version = makeVersion(nowMs - lag, rng() < 0.2 ? 0 : 1 + (logical++ % 0xfffe));
    if (rng() < 0.25) {
      recentDeletes.push(key);
      if (recentDeletes.length > 8) recentDeletes.shift();
      return tombstoneEntry(keyOf(key), version);
    }
    const ttl = rng();
    const expires = ttl < 0.6 ? 0 : ttl < 0.8 ? nowMs + 1 + int(3 * GRACE_MS) : nowMs - int(GRACE_MS);
    return valueEntry(keyOf(key), version, Buffer.alloc(int(120), int(256)), expires);
  };
  try {
    for (let step = 0; step < OPS; step++) {
      nowMs += int(4);
      const r = rng();
      const where = `seed ${seed} step ${step} at +${nowMs - START_MS} ms`;
      if (process.env.RINGKV_GRACE_MODEL_DEBUG) console.error(where, r);
      if (r < 0.45) {
        const entry = entryFor(int(KEYS));
        await Promise.all([engine.write(entry), model.write(entry)]);
      } else if (r < 0.55) {
        const key = keyOf(int(KEYS));
        assert.equal(
          observe(await engine.get(key), nowMs),
          observe(await model.get(key), nowMs),
          `${where}: get ${key}`,
        );
      } else if (r < 0.6) {
        assert.deepEqual(await liveScan(engine, nowMs), await liveScan(model, nowMs), `${where}: scan`);
      } else if (r < 0.66) {
        await engine.flush();
      } else if (r < 0.7) {
        await engine.compact();
      } else if (r < 0.76) {
        // Time passes beyond the grace: what was deleted or expired becomes droppable.
        nowMs += GRACE_MS + int(GRACE_MS);
        await new Promise((resolve) => setTimeout(resolve, 2));
      } else if (r < 0.9) {
        const snapshotTo = rng() < 0.25 ? `/snapshots/${seed}-${step}` : undefined;
        const snapshot = await burst(engine, model, () => entryFor(int(KEYS)), rng, nowMs, where, snapshotTo);
        if (snapshot !== undefined) {
          // A snapshot taken during the compactions holds, once restored, what the burst's scan could see.
          const dir = `/restored/${seed}-${step}`;
          await restoreSnapshot(vfs, snapshot.dir, dir, limits.levelCount);
          const restored = await LsmEngine.open({ ...options, dir });
          try {
            snapshot.check(await liveScan(restored, nowMs), `${where}: restored snapshot`);
          } finally {
            await restored.close();
          }
          coverage.snapshots++;
        }
        coverage.bursts++;
      } else if (r < 0.93) {
        // Many keys at once, so that scans page over several batches.
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          const entry = entryFor(KEYS + int(BIG_KEYS));
          writes.push(engine.write(entry), model.write(entry));
        }
        await Promise.all(writes);
      } else if (r < 0.97) {
        note();
        await engine.close();
        engine = await LsmEngine.open(options);
      } else {
        note();
        await engine.crashForTest();
        engine = await LsmEngine.open(options);
      }
    }
    assert.deepEqual(await liveScan(engine, nowMs), await liveScan(model, nowMs), `seed ${seed}: final scan`);
    for (let i = 0; i < KEYS; i++) {
      const key = keyOf(i);
      assert.equal(
        observe(await engine.get(key), nowMs),
        observe(await model.get(key), nowMs),
        `seed ${seed}: final get ${key}`,
      );
    }
    // Everything past its grace goes with a full compaction, and the engine still agrees.
    nowMs += 10 * GRACE_MS;
    await engine.compact();
    assert.deepEqual(
      await liveScan(engine, nowMs),
      await liveScan(model, nowMs),
      `seed ${seed}: scan after the last compaction`,
    );
    const kept = (await scanAll(engine)).length;
    const modelKept = (await scanAll(model)).length;
    coverage.dropped += modelKept - kept;
    note();
  } finally {
    await engine.close();
  }
}

/**
 * Writes, a full compaction and a paged scan, at the same time. The scan
 * must give every key at most once and in order; a key the burst does not
 * write must read as the model holds it; one it writes, as before or as one
 * of the burst's writes (which of them lands first is not fixed).
 */
async function burst(
  engine: LsmEngine,
  model: MemoryEngine,
  entry: () => Entry,
  rng: () => number,
  nowMs: number,
  where: string,
  snapshotTo?: string,
): Promise<{ dir: string; check: (live: Map<string, string>, where: string) => void } | undefined> {
  const before = await liveScan(model, nowMs);
  const entries = Array.from({ length: 1 + Math.floor(rng() * 12) }, entry);
  const written = new Map<string, Set<string | undefined>>();
  for (const e of entries) {
    const key = e.key.toString();
    const allowed = written.get(key) ?? new Set([before.get(key)]);
    allowed.add(observe(e, nowMs));
    written.set(key, allowed);
  }
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  const seen: Entry[] = [];
  const scanning = (async () => {
    try {
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        seen.push(...batch);
        // Let the compaction and the writes run between batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      await cursor.close();
    }
  })();
  const work: Promise<unknown>[] = [scanning];
  for (const e of entries) {
    work.push(engine.write(e), model.write(e));
    if (rng() < 0.3) work.push(engine.compact());
    if (rng() < 0.2) work.push(engine.flush());
  }
  if (snapshotTo !== undefined) work.push(engine.snapshot(snapshotTo));
  await Promise.all(work);
  for (let i = 1; i < seen.length; i++) {
    assert.ok(
      Buffer.compare(seen[i - 1]!.key, seen[i]!.key) < 0,
      `${where}: the scan gave ${seen[i - 1]!.key} then ${seen[i]!.key}`,
    );
  }
  const check = (live: Map<string, string>, what: string) => {
    const keys = new Set([...before.keys(), ...live.keys(), ...written.keys()]);
    for (const key of keys) {
      const got = live.get(key);
      const allowed = written.get(key);
      if (allowed === undefined) assert.equal(got, before.get(key), `${what}, ${key}`);
      else assert.ok(allowed.has(got), `${what}, ${key} read ${got}`);
    }
  };
  check(
    new Map(seen.filter((e) => isLive(e, nowMs)).map((e) => [e.key.toString(), e.value.toString('hex')])),
    `${where}: scan during a compaction`,
  );
  return snapshotTo === undefined ? undefined : { dir: snapshotTo, check };
}

test(`LSM engine agrees with the model while tombstones and expired values are dropped past a ${GRACE_MS} ms grace and late writes arrive within it (seeds ${SEEDS.join(',')})`, async () => {
  for (const seed of SEEDS) await run(seed);
  assert.ok(
    coverage.deepest >= 2,
    `runs reached only level ${coverage.deepest}: ${JSON.stringify(coverage)}`,
  );
  assert.ok(coverage.dropped > 0, `no record was ever dropped: ${JSON.stringify(coverage)}`);
  assert.ok(
    coverage.lateWrites > 0 && coverage.bursts > 0 && coverage.snapshots > 0,
    JSON.stringify(coverage),
  );
  console.log(`grace model coverage: ${JSON.stringify(coverage)}`);
});
