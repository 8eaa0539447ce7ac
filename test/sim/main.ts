/**
 * `npm run sim`: the cluster simulation (cluster-sim.ts) over many seeds.
 *
 *   npm run sim -- --seeds 100                # 100 random seeds
 *   npm run sim -- --seed 1234                # replay one seed
 *   npm run sim -- --seeds 20 --seed 1234     # seeds 1234 .. 1253
 *   npm run sim -- --seeds 50 --nodes 5 --ops 400 --keys 2   # bigger runs, more contention
 *   npm run sim -- --seed 1234 --trace        # and print what happened, request by request
 *
 * One line per seed, then a total; exits 1 if any seed broke a check, and
 * prints how to replay it. The costly invariant checks are on, as in tests
 * (RINGKV_INVARIANTS=1, read when the modules load: hence the late imports).
 */
import { parseArgs } from 'node:util';
import type { SimReport } from './cluster-sim.js';
import type { Exercised } from './sim-node.js';

process.env.RINGKV_INVARIANTS ??= '1';
const { failureReport, passed, runSimulation, summaryLine } = await import('./cluster-sim.js');
const { noneExercised } = await import('./sim-node.js');

const USAGE = 'usage: npm run sim -- [--seeds N] [--seed S] [--nodes 3..5] [--ops M] [--keys K] [--trace]';

function integer(text: string | undefined, name: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || n < min || n > max) {
    console.error(`Bad --${name} ${text}: an integer from ${min} to ${max}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      ops: { type: 'string' },
      keys: { type: 'string' },
      trace: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const first = integer(values.seed, 'seed', 0, 2 ** 31 - 1);
  const count = integer(values.seeds, 'seeds', 1, 1_000_000) ?? 1;
  const nodes = integer(values.nodes, 'nodes', 3, 5);
  const ops = integer(values.ops, 'ops', 1, 1_000_000);
  const keys = integer(values.keys, 'keys', 1, 1_000_000);
  const failed: SimReport[] = [];
  const totals = { ops: 0, acknowledged: 0, crashes: 0, partitions: 0, drops: 0, lost: 0, stale: 0, gaps: 0 };
  let divergent = 0;
  const exercised = noneExercised();
  const startedMs = Date.now();
  for (let i = 0; i < count; i++) {
    const seed = first === undefined ? Math.floor(Math.random() * 2 ** 31) : first + i;
    const report = await runSimulation({
      seed,
      ...(nodes === undefined ? {} : { nodes }),
      ...(ops === undefined ? {} : { ops }),
      ...(keys === undefined ? {} : { keys }),
    });
    console.log(summaryLine(report));
    if (values.trace) console.log(report.trace.join('\n'));
    totals.ops += report.ops;
    totals.acknowledged += report.acknowledged;
    totals.crashes += report.crashes;
    totals.partitions += report.partitions;
    totals.drops += report.drops;
    totals.lost += report.lost.length;
    totals.stale += report.staleReads.length;
    totals.gaps += report.gaps;
    if (report.divergent.length + report.sameVersion.length > 0) divergent++;
    for (const name of Object.keys(exercised) as (keyof Exercised)[])
      exercised[name] += report.exercised[name];
    if (!passed(report)) {
      failed.push(report);
      console.log(failureReport(report));
    }
  }
  console.log(
    `total: ${count} seeds, ${totals.ops} ops, ${totals.acknowledged} acknowledged writes, ${totals.crashes} crashes, ` +
      `${totals.partitions} partitions, ${totals.drops} drops, lost ${totals.lost}, stale reads ${totals.stale}, ` +
      `not converged ${divergent}, gaps ${totals.gaps}; ${failed.length} seeds failed ` +
      `(${((Date.now() - startedMs) / 1000).toFixed(1)} s)`,
  );
  console.log(
    `exercised: ${exercised.flushes} flushes, ${exercised.compactions} compactions, ${exercised.tornTails} torn log tails cut, ` +
      `${exercised.hintsDelivered} hints delivered, ${exercised.antiEntropyRepairs} anti-entropy repairs, ` +
      `${exercised.readRepairs} read repairs, ${exercised.conflictRetries} conflict retries`,
  );
  if (failed.length > 0) {
    console.log(`Failed seeds: ${failed.map((r) => r.seed).join(' ')}`);
    process.exitCode = 1;
  }
}

await main();
