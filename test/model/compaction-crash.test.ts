/**
 * Power loss at EVERY state-changing file operation of a flush and a
 * compaction (power-loss.test.ts picks a few at random): the new table's
 * writes and fsync, the MANIFEST.tmp write, fsync and rename, the
 * directory's fsync, the inputs' deletion, and the same for the WAL the
 * flush retires. The store holds tombstones and expired values that the
 * compaction drops (grace 0), values they shadow in a deeper level, and
 * versions older than a tombstone written after it (a replica's late
 * write). After each crash the store must open (no crash leaves a MANIFEST
 * naming a missing table) and read exactly what was acknowledged: nothing
 * lost, nothing deleted come back, then and after one more full compaction.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Entry, isLive, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import { makeVersion } from '../../src/storage/entry/version.js';
import { LsmEngine, type LsmOpenOptions } from '../../src/storage/lsm-engine.js';
import { MemoryEngine } from '../../src/storage/memory-engine.js';
import { MemoryVfs, seededRandom } from '../../src/storage/vfs/index.js';
import { scanAll } from '../conformance/engine-suite.js';
import { TINY } from '../support/lsm-options.js';

const T0 = 1_700_000_000_000;
const NOW = T0 + 60_000;
const KEYS = 30;
/** Crash points tried before giving up on reaching the end (the workloads take far fewer). */
const OPERATIONS_MAX = 400;

const keyOf = (i: number) => Buffer.from(`key-${String(i).padStart(3, '0')}`);
const version = (ms: number, logical: number) => makeVersion(T0 + ms, logical);

function options(vfs: MemoryVfs, l0CompactionTrigger: number): LsmOpenOptions {
  return {
    ...TINY,
    dir: '/data',
    sync: true,
    vfs,
    l0CompactionTrigger,
    // No level is ever over its size: only the compactions the workload asks for run.
    levelBytesBase: 1 << 30,
    tableBytesTarget: 512,
    memtableBytesMax: 1 << 20,
    tombstoneGraceMs: 0,
    nowMs: () => NOW,
    droppableCheckMs: 3_600_000,
    backgroundRetryMinMs: 1,
    backgroundRetryMaxMs: 2,
    log: () => {},
  };
}

/** A store with values at the bottom, tombstones and expired values above them, and late writes under the tombstones. */
async function prepare(
  l0CompactionTrigger: number,
): Promise<{ vfs: MemoryVfs; model: MemoryEngine; engine: LsmEngine }> {
  const vfs = new MemoryVfs();
  const model = new MemoryEngine();
  const engine = await LsmEngine.open(options(vfs, l0CompactionTrigger));
  const write = async (entry: Entry) => {
    await engine.write(entry);
    await model.write(entry);
  };
  for (let i = 0; i < KEYS; i++) await write(valueEntry(keyOf(i), version(10, i), Buffer.alloc(40, i)));
  await engine.compact();
  for (let i = 0; i < 10; i++) await write(tombstoneEntry(keyOf(i), version(30, i)));
  for (let i = 10; i < 20; i++) await write(valueEntry(keyOf(i), version(30, i), Buffer.alloc(30, 100 + i)));
  for (let i = 20; i < 25; i++)
    await write(valueEntry(keyOf(i), version(30, i), Buffer.alloc(30, 7), T0 + 40));
  await engine.flush();
  // Late writes: older than the tombstones (they stay deleted), newer than the values below.
  for (let i = 0; i < 5; i++) await write(valueEntry(keyOf(i), version(20, i), Buffer.alloc(20, 200 + i)));
  for (let i = 25; i < KEYS; i++) await write(tombstoneEntry(keyOf(i), version(40, i)));
  return { vfs, model, engine };
}

function observe(entry: Entry | undefined): string | undefined {
  return entry !== undefined && isLive(entry, NOW) ? entry.value.toString('hex') : undefined;
}

async function assertAgrees(engine: LsmEngine, model: MemoryEngine, where: string): Promise<void> {
  for (let i = 0; i < KEYS; i++) {
    assert.equal(
      observe(await engine.get(keyOf(i))),
      observe(await model.get(keyOf(i))),
      `${where}: ${keyOf(i)}`,
    );
  }
  const live = async (e: LsmEngine | MemoryEngine) =>
    (await scanAll(e)).filter((x) => isLive(x, NOW)).map((x) => `${x.key}=${x.value.toString('hex')}`);
  assert.deepEqual(await live(engine), await live(model), `${where}: scan`);
}

async function waitForCompactions(engine: LsmEngine, count: number, vfs: MemoryVfs): Promise<void> {
  while (engine.stats().compactions < count && !vfs.stopped) await new Promise((r) => setTimeout(r, 1));
}

const workloads: {
  name: string;
  l0CompactionTrigger: number;
  run(engine: LsmEngine, vfs: MemoryVfs): Promise<void>;
}[] = [
  {
    name: 'a full compaction (flush of the late writes, then every table merged at the bottom)',
    l0CompactionTrigger: 100,
    run: (engine) => engine.compact(),
  },
  {
    name: 'a flush that brings level 0 to its trigger, and the level 0 to 1 compaction it starts',
    l0CompactionTrigger: 2,
    async run(engine, vfs) {
      const before = engine.stats().compactions;
      await engine.flush();
      await waitForCompactions(engine, before + 1, vfs);
    },
  },
];

describe('power loss at every file operation of a flush and a compaction', () => {
  for (const workload of workloads) {
    test(workload.name, async () => {
      let completed = false;
      let crashes = 0;
      for (let at = 1; at <= OPERATIONS_MAX && !completed; at++) {
        const { vfs, model, engine } = await prepare(workload.l0CompactionTrigger);
        const crashed = vfs.crashAtOperation(vfs.operations + at, seededRandom(at));
        let failure: unknown;
        await workload.run(engine, vfs).catch((err: unknown) => {
          failure = err;
        });
        if (!vfs.stopped) {
          assert.equal(failure, undefined, `no crash, yet the workload failed: ${String(failure)}`);
          await assertAgrees(engine, model, 'without a crash');
          // Not close(): its close record would meet the crash still armed past the workload's end.
          await engine.crashForTest();
          completed = true;
          break;
        }
        crashes++;
        const after = await crashed;
        await engine.crashForTest();
        const where = `crash at operation ${at}`;
        let reopened: LsmEngine;
        try {
          reopened = await LsmEngine.open(options(after, workload.l0CompactionTrigger));
        } catch (err) {
          assert.fail(`${where}: the store does not open: ${String(err)}`);
        }
        try {
          await assertAgrees(reopened, model, where);
          await reopened.compact();
          await assertAgrees(reopened, model, `${where}, then a full compaction`);
        } finally {
          await reopened.close();
        }
      }
      console.log(`${workload.name}: ${crashes} crash points`);
      assert.ok(completed, `the workload did not end within ${OPERATIONS_MAX} operations`);
      assert.ok(crashes >= 10, `only ${crashes} crash points: the workload touches too few files`);
    });
  }
});
