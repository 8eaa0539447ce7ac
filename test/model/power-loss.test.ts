/**
 * Power loss at any moment, on the crashable in-memory vfs: the LSM engine
 * with tiny limits (so that flushes, compactions, WAL rotations and manifest
 * edits happen all the time) takes concurrent writes with sync on, and the
 * power is cut at a random state-changing file operation: in a write, between
 * a write and its fsync, between a rename and the directory's fsync, inside
 * a flush or a compaction, or during the recovery of an earlier crash. Each
 * seed crashes a store three times in a row, then opens it once more and
 * checks that:
 * - every open succeeds (but one the crash itself cut short): recovery never
 *   fails on what a crash can leave;
 * - every acknowledged write is there: a key reads at least the newest
 *   version acknowledged for it;
 * - nothing wrong is served: every entry read or scanned is one that was
 *   written, byte for byte (unacknowledged writes may or may not be there).
 *
 * Seeds: RINGKV_POWER_LOSS_RUNS (default 30) consecutive seeds from a random
 * start, or from RINGKV_POWER_LOSS_SEED; a failure names its seed:
 *
 *   RINGKV_POWER_LOSS_SEED=1234 RINGKV_POWER_LOSS_RUNS=1 node --test dist/test/model/power-loss.test.js
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Entry, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import { makeVersion } from '../../src/storage/entry/version.js';
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { MemoryVfs, seededRandom } from '../../src/storage/vfs/index.js';
import { scanAll } from '../conformance/engine-suite.js';
import { TINY } from '../support/lsm-options.js';

const RUNS = Number(process.env.RINGKV_POWER_LOSS_RUNS ?? 30);
const FIRST_SEED =
  process.env.RINGKV_POWER_LOSS_SEED === undefined
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(process.env.RINGKV_POWER_LOSS_SEED);
const CRASHES = 3;
const KEYS = 24;
/** The crash comes within this many state-changing file operations after the open starts. */
const OPERATIONS_MAX = 500;
/** Batches of concurrent writes per round, at most: a round usually ends at its crash well before. */
const BATCHES_MAX = 400;

const keyOf = (i: number) => Buffer.from(`key-${String(i).padStart(3, '0')}`);

/** What the runs went through, summed over seeds: printed, so that a passing run shows what it covered. */
const covered = { opensCut: 0, tornLogs: 0, writes: 0, acknowledged: 0 };

/** Every entry written, by key; `acked` marks those whose write() resolved. */
class Written {
  readonly #byKey = new Map<string, { entry: Entry; acked: boolean }[]>();

  add(entry: Entry): { acked: boolean } {
    const record = { entry, acked: false };
    const key = entry.key.toString();
    const list = this.#byKey.get(key) ?? [];
    list.push(record);
    this.#byKey.set(key, list);
    return record;
  }

  keys(): string[] {
    return [...this.#byKey.keys()];
  }

  newestAcked(key: string): bigint | undefined {
    let newest: bigint | undefined;
    for (const { entry, acked } of this.#byKey.get(key) ?? []) {
      if (acked && (newest === undefined || entry.version > newest)) newest = entry.version;
    }
    return newest;
  }

  /** Whether `entry` is one written, kind, version and value alike. */
  has(entry: Entry): boolean {
    return (this.#byKey.get(entry.key.toString()) ?? []).some(
      (w) =>
        w.entry.version === entry.version &&
        w.entry.kind === entry.kind &&
        w.entry.value.equals(entry.value) &&
        w.entry.expiresAtMs === entry.expiresAtMs,
    );
  }
}

function options(vfs: MemoryVfs): LsmOpenOptions {
  return {
    ...TINY,
    dir: '/node/data',
    sync: true,
    vfs,
    backgroundRetryMinMs: 1,
    backgroundRetryMaxMs: 4,
    log: () => {},
  };
}

/** Opens, writes until the power goes (or the round's writes are done), and returns the state the crash left. */
async function crashRound(
  vfs: MemoryVfs,
  rng: () => number,
  written: Written,
  nextVersion: () => bigint,
  round: number,
): Promise<MemoryVfs> {
  const crashed = vfs.crashAtOperation(
    vfs.operations + 1 + Math.floor(rng() * OPERATIONS_MAX),
    seededRandom(Math.floor(rng() * 2 ** 31)),
  );
  let engine: LsmEngine;
  try {
    engine = await LsmEngine.open(options(vfs));
  } catch (err) {
    // Only the crash may stop an open.
    assert.ok(vfs.stopped, `round ${round}: open failed without a crash: ${String(err)}`);
    covered.opensCut++;
    return crashed;
  }
  covered.tornLogs += engine.recovery.filter((log) => log.cutRecords > 0).length;
  for (let batch = 0; batch < BATCHES_MAX && !vfs.stopped; batch++) {
    const count = 1 + Math.floor(rng() * 6);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const key = keyOf(Math.floor(rng() * KEYS));
      // Now and then a version older than the newest: replicas deliver writes out of order.
      const version = nextVersion() - (rng() < 0.1 ? BigInt(Math.floor(rng() * 20)) : 0n);
      const entry =
        rng() < 0.15
          ? tombstoneEntry(key, version)
          : valueEntry(key, version, Buffer.alloc(Math.floor(rng() * 300), Math.floor(rng() * 256)));
      const record = written.add(entry);
      covered.writes++;
      writes.push(
        engine.write(entry).then(() => {
          record.acked = true;
          covered.acknowledged++;
        }),
      );
    }
    await Promise.allSettled(writes);
    const r = rng();
    if (r < 0.03) await engine.flush().catch(() => {});
    else if (r < 0.04) await engine.compact().catch(() => {});
  }
  const after = vfs.stopped ? await crashed : vfs.crash(seededRandom(Math.floor(rng() * 2 ** 31)));
  await engine.crashForTest();
  return after;
}

async function check(engine: LsmEngine, written: Written): Promise<void> {
  for (const key of written.keys()) {
    const got = await engine.get(Buffer.from(key));
    const acked = written.newestAcked(key);
    if (acked !== undefined) {
      assert.ok(got !== undefined, `${key}: version ${acked} was acknowledged, and the key is gone`);
      assert.ok(
        got.version >= acked,
        `${key}: version ${acked} was acknowledged, and ${got.version} is read`,
      );
    }
    if (got !== undefined) assert.ok(written.has(got), `${key}: read version ${got.version}, never written`);
  }
  for (const entry of await scanAll(engine)) {
    assert.ok(written.has(entry), `scan: ${entry.key} version ${entry.version}, never written`);
  }
}

async function run(seed: number): Promise<void> {
  const rng = seededRandom(seed);
  // With O_DSYNC each WAL write is its own sync; without, the writer fdatasyncs after each batch.
  let vfs = new MemoryVfs({ dsync: rng() < 0.5 });
  await vfs.mkdir('/node');
  const written = new Written();
  // Versions of now: compaction drops tombstones only once they are older than the grace period.
  let version = makeVersion(Date.now(), 0);
  const nextVersion = () => (version += 1n);
  for (let round = 1; round <= CRASHES; round++) {
    vfs = await crashRound(vfs, rng, written, nextVersion, round);
  }
  const engine = await LsmEngine.open(options(vfs));
  try {
    await check(engine, written);
  } finally {
    await engine.close();
  }
}

test(`power loss at random moments, ${RUNS} seeds from ${FIRST_SEED}: recovery succeeds, every acknowledged write is kept, nothing wrong is served`, async (t) => {
  for (let seed = FIRST_SEED; seed < FIRST_SEED + RUNS; seed++) {
    try {
      await run(seed);
    } catch (err) {
      const replay = `RINGKV_POWER_LOSS_SEED=${seed} RINGKV_POWER_LOSS_RUNS=1 node --test dist/test/model/power-loss.test.js`;
      throw new Error(
        `seed ${seed}: ${err instanceof Error ? err.message : String(err)}\nReplay: ${replay}`,
        {
          cause: err,
        },
      );
    }
  }
  // Without acknowledged writes the checks above hold of any engine, even one that refuses them all.
  assert.ok(covered.acknowledged > 0, `none of ${covered.writes} writes was acknowledged`);
  t.diagnostic(
    `${RUNS * CRASHES} crashes: ${covered.opensCut} during an open; ${covered.tornLogs} torn logs cut at open; ` +
      `${covered.acknowledged} of ${covered.writes} writes acknowledged before their crash`,
  );
});

test('the power-loss harness: a hundred writes make enough file operations for a crash to land anywhere', async () => {
  const vfs = new MemoryVfs();
  await vfs.mkdir('/node');
  const engine = await LsmEngine.open(options(vfs));
  const before = vfs.operations;
  for (let i = 0; i < 100; i++)
    await engine.write(valueEntry(keyOf(i % KEYS), BigInt(i + 1), Buffer.alloc(100)));
  assert.ok(
    vfs.operations - before > OPERATIONS_MAX / 5,
    `${vfs.operations - before} operations for 100 writes`,
  );
  await engine.close();
});
