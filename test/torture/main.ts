/**
 * `npm run torture`: a real cluster of `ringkv serve` processes on loopback
 * under a steady load, abused for a while, then a report card.
 *
 * 1. K nodes (default 3), --sync on, data in a temp dir; small memtables so
 *    that SSTables, flushes and compactions happen within the run, and
 *    anti-entropy every 3 s so that rebuilds finish within it.
 * 2. A load of PUT, GET and DELETE at ack=2&from=3 through every node, by a
 *    client that fails over on a refused connection or the leaving 503
 *    (test/support/load-client.ts); history.ts records every write with
 *    its times and judges every read.
 * 3. For --duration seconds, one abuse after another, picked at random from
 *    --seed (abuses.ts): kill -9, SIGTERM, SIGSTOP, a damaged WAL or
 *    SSTable, bad input, a partition (iptables), a shifted clock
 *    (libfaketime), once beyond the skew bound. Each is followed by heal().
 * 4. The load stops; every node is healed; the cluster converges (verify.ts);
 *    every key is read at quorum and compared with its last acknowledged
 *    write; the nodes' own copies are compared.
 * 5. The card (card.ts) is printed and written to bench/results/. The exit
 *    code is 1 on any loss, stale read, wrong data, crash (from bad input or
 *    not) or other finding, 2 on bad flags.
 *
 * Bounded: the abuse loop by --duration (and a round count), every wait by
 * a deadline; nodes are killed by PID at exit, iptables rules removed.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Load, startLoad, summarize } from '../support/load-client.js';
import { sleep } from '../support/node-process.js';
import { type AbuseName, Abuses, newStats, type RunStats } from './abuses.js';
import { type CardData, renderCard, verdict, writeResults } from './card.js';
import { ClockShifter } from './clock.js';
import { TortureCluster } from './cluster.js';
import { History } from './history.js';
import { NetCut } from './netcut.js';
import { parseOptions, type TortureOptions, UsageError } from './options.js';
import { Random } from './random.js';
import { waitAllUp } from './status.js';
import {
  type Convergence,
  checkEveryKey,
  compareReplicas,
  type FinalCheck,
  waitConverged,
} from './verify.js';

const SKEW_BOUND_MS = 1000;
const NODE_ARGS = [
  '--sync',
  'on',
  '--memtable-bytes',
  '32768',
  '--anti-entropy-interval',
  '3000',
  '--max-clock-skew',
  String(SKEW_BOUND_MS),
  '--log-format',
  'json',
];
const QUERY = { ack: 2, from: 3 } as const;
const LOAD_CONCURRENCY = 8;
const LOAD_KEYS = 240;
/** Plain load between two abuses, ms. */
const GAP_MS: readonly [number, number] = [500, 2500];

async function main(): Promise<number> {
  let options: TortureOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`torture: ${err.message}`);
    return 2;
  }
  const startedAt = new Date();
  const t0 = Date.now();
  const note = (line: string): void => {
    const stamped = `[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}`;
    stats.timeline.push(stamped);
    console.log(stamped);
  };
  const stats: RunStats = newStats();
  let phase = 'start';
  const random = new Random(options.seed);
  const root = await mkdtemp(join(tmpdir(), 'ringkv-torture-'));
  // Also on Ctrl-C (the nodes are killed first: their exit handler was registered earlier).
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  const clock = await ClockShifter.detect();
  const netcut = NetCut.setup();
  const cluster = await TortureCluster.create({
    count: options.nodes,
    root,
    args: NODE_ARGS,
    clock,
    phase: () => phase,
  });
  const history = new History(() => phase);
  let load: Load | undefined;
  const setPhase = (next: string): void => {
    phase = next;
    load?.setPhase(next);
  };
  const abuses = new Abuses({
    cluster,
    random,
    netcut,
    clock,
    history,
    stats,
    skewBoundMs: SKEW_BOUND_MS,
    setPhase,
    note,
  });
  const { names, skipped } = abuses.available();
  const settings = `${options.nodes} nodes, ${NODE_ARGS.filter((a) => a !== '--log-format' && a !== 'json').join(' ')}; load ack=${QUERY.ack}&from=${QUERY.from}, ${options.rate}/s, ${LOAD_CONCURRENCY} clients, ${LOAD_KEYS} keys`;
  console.log(`torture: ${options.command}\n  ${settings}\n  data in ${root}`);
  for (const line of skipped) console.log(`  skipped: ${line}`);

  let harnessError: string | undefined;
  let abuseMs = 0;
  let convergence: Convergence = { converged: false, ms: 0, detail: 'not reached' };
  let check: FinalCheck = { keys: 0, matched: 0, lost: [], unreadable: [], ms: 0 };
  let replicas: CardData['replicas'] = 'not compared';
  const failovers: Record<string, number> = {};
  let loadPhases = '';
  try {
    await cluster.startAll();
    if (!(await waitAllUp(cluster.urls, 20_000)))
      throw new Error('The nodes did not see each other up after starting');
    note(`cluster up: ${cluster.urls.join(', ')}`);
    setPhase('steady');
    const running = startLoad({
      urls: cluster.urls,
      concurrency: LOAD_CONCURRENCY,
      ratePerSecond: options.rate,
      keys: LOAD_KEYS,
      query: QUERY,
      timeoutMs: 5000,
      maxDurationMs: (options.durationS + 900) * 1000,
      maxRequests: options.rate * (options.durationS + 900),
      seed: random.seed(),
      onResult: history.record,
    });
    load = running;
    await sleep(2000);
    const abuseStart = Date.now();
    await abuseLoop(options, abuses, names, random, abuseStart);
    // Every probe at least once, however short the run.
    if (abuses.probesLeft > 0) await abuses.sendProbes(random.int(0, options.nodes - 1), abuses.probesLeft);
    await abuses.heal();
    abuseMs = Date.now() - abuseStart;
    setPhase('after the abuse');
    await sleep(2000);
    const report = await running.stop();
    load = undefined;
    for (const event of report.failovers) failovers[event.kind] = (failovers[event.kind] ?? 0) + 1;
    loadPhases = summarize(report);
    note(`load stopped: ${report.requests} requests`);
    setPhase('convergence');
    await abuses.heal();
    convergence = await waitConverged(cluster.urls);
    note(
      convergence.converged ? `converged in ${convergence.ms} ms` : `NOT converged: ${convergence.detail}`,
    );
    setPhase('final check');
    check = await checkEveryKey(running, history, cluster.urls, QUERY);
    note(
      `final check: ${check.matched} of ${check.keys} keys as expected, ${check.lost.length} lost, ${check.unreadable.length} unreadable`,
    );
    replicas =
      options.nodes === QUERY.from
        ? await compareReplicas(cluster.urls)
        : `not compared: each key lives on ${QUERY.from} of ${options.nodes} nodes`;
  } catch (err) {
    harnessError = err instanceof Error ? (err.stack ?? err.message) : String(err);
    note(`the run broke off: ${harnessError}`);
    if (load !== undefined) await load.stop();
  } finally {
    setPhase('shutdown');
    netcut.heal();
    await cluster.shutdown();
    netcut.teardown();
    await rm(root, { recursive: true, force: true });
  }

  const data: CardData = {
    options,
    startedAt,
    settings,
    durationsMs: { total: Date.now() - t0, abuse: abuseMs, convergence: convergence.ms, check: check.ms },
    totals: history.totals,
    failovers,
    loadPhases,
    badReads: history.badReads,
    stats,
    crashes: cluster.crashes,
    restarts: cluster.restarts,
    convergence,
    check,
    replicas,
    skipped,
    harnessError: harnessError?.split('\n')[0],
  };
  const v = verdict(data);
  const card = renderCard(data, v);
  console.log(`\n${card}`);
  const path = writeResults(data, v, card);
  console.log(`\nwritten to ${path}`);
  return v.pass ? 0 : 1;
}

/**
 * Abuses until the duration is over (or a round count, as a second bound),
 * with plain load between them; the skew beyond the bound comes once, by
 * the middle of the run at the latest.
 */
async function abuseLoop(
  options: TortureOptions,
  abuses: Abuses,
  names: readonly AbuseName[],
  random: Random,
  startMs: number,
): Promise<void> {
  const durationMs = options.durationS * 1000;
  const roundsMax = options.durationS + 10;
  const repeatable = names.filter((name) => name !== 'clock skew beyond the bound');
  const beyond = names.includes('clock skew beyond the bound');
  for (let round = 0; round < roundsMax && Date.now() - startMs < durationMs; round++) {
    const elapsed = Date.now() - startMs;
    const name: AbuseName =
      beyond && !abuses.beyondDone && (elapsed >= durationMs / 2 || random.chance(1 / (names.length * 2)))
        ? 'clock skew beyond the bound'
        : random.pick(repeatable);
    await abuses.run(name);
    await abuses.heal();
    await sleep(random.int(GAP_MS[0], GAP_MS[1]));
  }
}

// Ctrl-C or a kill: exit through process.exit so that the exit handlers run
// (node-process.ts kills the nodes by PID, netcut.ts removes its rules).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`torture: ${signal}, stopping`);
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
