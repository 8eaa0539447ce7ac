/**
 * ringkv benchmarks: `node run.mjs [command]` from bench/ (or `npm run bench`
 * from the checkout, which builds first and runs `all`).
 *
 *   engine          storage engine vs LevelDB, in process
 *   server          one node vs the ceiling server, open-loop rate search
 *   cluster         a 3-node local cluster, binary internode protocol vs HTTP, then a rolling restart
 *   restart         a rolling restart of a 3-node cluster under load (SIGTERM, one node at a time)
 *   join            a fourth node joins a loaded 3-node cluster of 1M keys: streaming MB/s, latency before and during
 *   anti-entropy    3 nodes of 1M keys: idle CPU, cost of a repair by the number of differing keys, a wiped replica
 *   profile put|get CPU and heap profiles of a node under load, as flame graphs
 *   micro           hot helpers, current code vs candidates
 *   replica-write   bytes allocated and CPU per replica write, in process (BENCH_BASELINE_ROOT: beside another build)
 *   all             micro, engine, server, cluster, join, anti-entropy, profile put, profile get (default)
 *   check           quick self-test of the load generator's parts (no ringkv servers)
 *   render FILE     flame graph SVG of an existing .cpuprofile/.heapprofile
 *
 * Settings come from BENCH_* environment variables (README.md). Results go
 * to bench/results/<stamp>-<command>.{json,md}. Exit code 1 when a part failed.
 */
import { runEngineBench } from './engine/engine-bench.mjs';
import { runReplicaWriteBench } from './engine/replica-write-bench.mjs';
import { makeStamp, writeResults } from './lib/results.mjs';
import { runSelfCheck } from './lib/self-check.mjs';
import { log } from './lib/stats.mjs';
import { runMicroBench } from './micro/micro-bench.mjs';
import { renderFile, runProfile } from './profile/profile.mjs';
import { runAntiEntropyBench } from './server/anti-entropy-bench.mjs';
import { runClusterBench } from './server/cluster-bench.mjs';
import { runJoinBench } from './server/join-bench.mjs';
import { runRestartBench } from './server/restart-bench.mjs';
import { runServerBench } from './server/server-bench.mjs';

const USAGE =
  'usage: node run.mjs [engine|server|cluster|restart|join|anti-entropy|profile put|profile get|micro|replica-write|all|check|render FILE]';

async function runMode(mode, arg, stamp) {
  const started = Date.now();
  let outcome;
  switch (mode) {
    case 'engine':
      outcome = await runEngineBench();
      break;
    case 'server':
      outcome = await runServerBench();
      break;
    case 'cluster':
      outcome = await runClusterBench();
      break;
    case 'restart':
      outcome = await runRestartBench();
      break;
    case 'join':
      outcome = await runJoinBench();
      break;
    case 'anti-entropy':
      outcome = await runAntiEntropyBench();
      break;
    case 'profile':
      outcome = await runProfile(arg, stamp);
      break;
    case 'micro':
      outcome = await runMicroBench();
      break;
    case 'replica-write':
      outcome = await runReplicaWriteBench();
      break;
    default:
      throw new Error(USAGE);
  }
  const name = mode === 'profile' ? `profile-${arg}` : mode;
  const files = writeResults(stamp, name, outcome.figures, outcome.markdown);
  log(`${name} done in ${Math.round((Date.now() - started) / 1000)} s: ${files.md}`);
  process.stdout.write(`\n## ${name}\n\n${outcome.markdown}\n\n`);
  return { name, failed: Boolean(outcome.failed), markdown: outcome.markdown };
}

async function main() {
  const [mode = 'all', arg] = process.argv.slice(2);
  const stamp = makeStamp();
  if (mode === 'check') {
    await runSelfCheck();
    return 0;
  }
  if (mode === 'render') {
    if (!arg) throw new Error(USAGE);
    renderFile(arg);
    return 0;
  }
  if (mode === 'help' || mode === '--help' || mode === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const plan =
    mode === 'all'
      ? [
          ['micro'],
          ['engine'],
          ['server'],
          ['cluster'],
          ['join'],
          ['anti-entropy'],
          ['profile', 'put'],
          ['profile', 'get'],
        ]
      : [[mode, arg]];
  let failed = false;
  const sections = [];
  for (const [m, a] of plan) {
    try {
      const r = await runMode(m, a, stamp);
      failed ||= r.failed;
      sections.push(`## ${r.name}\n\n${r.markdown}`);
    } catch (err) {
      failed = true;
      const message = err instanceof Error ? err.message : String(err);
      log(`${m}${a ? ` ${a}` : ''} failed: ${message}`);
      sections.push(`## ${m}${a ? ` ${a}` : ''}\n\nFailed: ${message.split('\n')[0]}`);
      if (plan.length === 1) throw err;
    }
  }
  if (plan.length > 1)
    writeResults(stamp, 'all', { parts: plan.map((p) => p.join(' ')) }, sections.join('\n\n'));
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
