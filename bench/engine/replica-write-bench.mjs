/**
 * `node run.mjs replica-write`: what one replica write costs a node, in
 * process: bytes allocated (the garbage that sets how often the collector
 * pauses the event loop) and CPU, through Replica.write over the store and its
 * anti-entropy index (replica-write-child.mjs; each measurement in a fresh
 * process). With BENCH_BASELINE_ROOT set to another built checkout, both are
 * measured side by side, their order alternating by round.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT_DIR } from '../lib/results.mjs';
import { envInt, envString } from '../lib/settings.mjs';
import { log, mdTable, median } from '../lib/stats.mjs';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'replica-write-child.mjs');

function measure(root, mode, writes) {
  const out = execFileSync(process.execPath, [CHILD, root, mode, String(writes)], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return JSON.parse(out.trim().split('\n').at(-1));
}

export async function runReplicaWriteBench() {
  const rounds = envInt('BENCH_ROUNDS', 5, { min: 1 });
  const allocWrites = envInt('BENCH_REPLICA_ALLOC_WRITES', 20_000, { min: 1000 });
  const cpuWrites = envInt('BENCH_REPLICA_CPU_WRITES', 40_000, { min: 1000 });
  const baseline = envString('BENCH_BASELINE_ROOT', '');
  const builds = [{ name: 'this checkout', root: ROOT_DIR }];
  if (baseline !== '') builds.push({ name: `baseline (${baseline})`, root: path.resolve(baseline) });
  const samples = builds.map(() => ({ alloc: [], cpu: [], rate: [] }));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? builds.map((_, i) => i) : builds.map((_, i) => builds.length - 1 - i);
    for (const i of order) {
      const a = measure(builds[i].root, 'alloc', allocWrites);
      const c = measure(builds[i].root, 'cpu', cpuWrites);
      samples[i].alloc.push(a.allocBytesPerWrite);
      samples[i].cpu.push(c.cpuMicrosPerWrite);
      samples[i].rate.push(c.writesPerSecond);
      log(
        `replica-write ${builds[i].name} [round ${round + 1}/${rounds}]: ${Math.round(a.allocBytesPerWrite)} B allocated ` +
          `a write, ${c.cpuMicrosPerWrite.toFixed(1)} µs CPU a write, ${Math.round(c.writesPerSecond)} writes/s`,
      );
    }
  }
  const figures = builds.map((b, i) => ({
    build: b.name,
    root: b.root,
    allocBytesPerWrite: median(samples[i].alloc),
    cpuMicrosPerWrite: median(samples[i].cpu),
    writesPerSecond: median(samples[i].rate),
    samples: samples[i],
  }));
  const rows = figures.map((f) => [
    f.build,
    String(Math.round(f.allocBytesPerWrite)),
    f.cpuMicrosPerWrite.toFixed(1),
    String(Math.round(f.writesPerSecond)),
  ]);
  const markdown = [
    `Replica writes in process (Replica.write over the LSM store, sync on, and its anti-entropy index with a ` +
      `3-node ring's digests), 16 at a time, 128-byte values over 100,000 keys, after a warm-up of 20,000. ` +
      `Medians of ${rounds} rounds, each measurement in a fresh process: bytes allocated per write ` +
      `(${allocWrites} writes, V8's sampling heap profiler counting collected objects too; includes the ` +
      `driver's own key and entry, about 0.45 KB), CPU per write and writes/s (${cpuWrites} writes).`,
    '',
    mdTable(['build', 'bytes allocated a write', 'CPU µs a write', 'writes/s'], rows),
  ].join('\n');
  return { figures: { rounds, allocWrites, cpuWrites, builds: figures }, markdown };
}
