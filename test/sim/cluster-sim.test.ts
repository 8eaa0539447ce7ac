/**
 * The cluster simulation (cluster-sim.ts) in `npm test`: a few random seeds
 * of the whole cluster under power losses, partitions and message losses;
 * one seed run twice, for the same outcome; and broken clusters that the
 * checks must catch, so that a pass means something. Long runs: `npm run sim
 * -- --seeds N`.
 *
 * Seeds are random per run (RINGKV_SIM_SEEDS of them, default 5); a failure
 * prints its seed, what broke, and the command that replays it
 * (`npm run sim -- --seed S`). RINGKV_SIM_SEED=S makes this file use S.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failureReport, passed, runSimulation, type SimOptions, type SimReport } from './cluster-sim.js';

const FIXED_SEED = process.env.RINGKV_SIM_SEED;
const SEEDS = FIXED_SEED === undefined ? Number(process.env.RINGKV_SIM_SEEDS ?? 5) : 1;

/** RINGKV_SIM_SEED, or a random one. */
function randomSeed(): number {
  return FIXED_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(FIXED_SEED);
}

test('cluster simulation: no acknowledged write lost, no stale quorum read, replicas converge', async () => {
  const covered = { acknowledged: 0, crashes: 0, partitions: 0, drops: 0, hints: 0, repairs: 0 };
  for (let i = 0; i < SEEDS; i++) {
    const report = await runSimulation({ seed: randomSeed() });
    assert.ok(passed(report), failureReport(report));
    covered.acknowledged += report.acknowledged;
    covered.crashes += report.crashes;
    covered.partitions += report.partitions;
    covered.drops += report.drops;
    covered.hints += report.exercised.hintsDelivered;
    covered.repairs += report.exercised.antiEntropyRepairs + report.exercised.readRepairs;
  }
  console.log(`cluster simulation, ${SEEDS} seeds: ${JSON.stringify(covered)}`);
  assert.ok(covered.acknowledged > 0, 'writes were acknowledged');
});

test('cluster simulation: a seed replays, outcome by outcome, from the command failures print', async () => {
  const seed = randomSeed();
  const first = await runSimulation({ seed, ops: 100 });
  // What the replay command passes: the options the seed had drawn, given explicitly.
  const second = await runSimulation({ seed, ops: 100, nodes: first.nodes, keys: first.keys });
  assert.deepEqual(second.trace, first.trace, `seed ${seed} ran differently twice`);
  assert.equal(second.digest, first.digest);
});

/** Runs seeds of a broken cluster until the checks catch one (they should at the first). */
async function caught(options: Omit<SimOptions, 'seed'>): Promise<SimReport> {
  const tried: number[] = [];
  for (let i = 0; i < 4; i++) {
    const report = await runSimulation({ ...options, seed: randomSeed() + i, ops: 120 });
    if (!passed(report)) return report;
    tried.push(report.seed);
  }
  assert.fail(`The checks missed a broken cluster (${JSON.stringify(options)}) on seeds ${tried.join(', ')}`);
}

test('cluster simulation: the checks catch a network that acknowledges replica writes and drops them', async () => {
  const report = await caught({ lieAboutWrites: true });
  assert.ok(report.staleReads.length + report.lost.length > 0, failureReport(report));
  assert.match(failureReport(report), new RegExp(`npm run sim -- --seed ${report.seed} `));
});

test('cluster simulation: the checks catch ack=1 with sync off under power losses', async () => {
  const report = await caught({ ack: 1, sync: false });
  assert.ok(report.staleReads.length + report.lost.length > 0, failureReport(report));
});
