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

function measure(root, mode, writes, concurrency) {
  const out = execFileSync(process.execPath, [CHILD, root, mode, String(writes), String(concurrency)], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return JSON.parse(out.trim().split('\n').at(-1));
}

/** Writes in flight at once: 16 (a log batch holds many) and 1 (each write a batch of its own). */
const CONCURRENCIES = [16, 1];

export async function runReplicaWriteBench() {
  const rounds = envInt('BENCH_ROUNDS', 5, { min: 1 });
  const allocWrites = envInt('BENCH_REPLICA_ALLOC_WRITES', 20_000, { min: 1000 });
  const cpuWrites = envInt('BENCH_REPLICA_CPU_WRITES', 40_000, { min: 1000 });
  const baseline = envString('BENCH_BASELINE_ROOT', '');
  const builds = [{ name: 'this checkout', root: ROOT_DIR }];
  if (baseline !== '') builds.push({ name: `baseline (${baseline})`, root: path.resolve(baseline) });
  const cases = builds.flatMap((build) => CONCURRENCIES.map((concurrency) => ({ build, concurrency })));
  const samples = cases.map(() => ({ alloc: [], cpu: [], rate: [] }));
  for (let round = 0; round < rounds; round++) {
    const order = cases.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      const { build, concurrency } = cases[i];
      // One at a time, each write waits for its own log write: a quarter as many keep the time alike.
      const scale = concurrency === 1 ? 4 : 1;
      const a = measure(build.root, 'alloc', Math.ceil(allocWrites / scale), concurrency);
      const c = measure(build.root, 'cpu', Math.ceil(cpuWrites / scale), concurrency);
      samples[i].alloc.push(a.allocBytesPerWrite);
      samples[i].cpu.push(c.cpuMicrosPerWrite);
      samples[i].rate.push(c.writesPerSecond);
      log(
        `replica-write ${build.name}, ${concurrency} at a time [round ${round + 1}/${rounds}]: ` +
          `${Math.round(a.allocBytesPerWrite)} B allocated a write, ${c.cpuMicrosPerWrite.toFixed(1)} µs CPU ` +
          `a write, ${Math.round(c.writesPerSecond)} writes/s`,
      );
    }
  }
  const figures = cases.map(({ build, concurrency }, i) => ({
    build: build.name,
    root: build.root,
    concurrency,
    allocBytesPerWrite: median(samples[i].alloc),
    cpuMicrosPerWrite: median(samples[i].cpu),
    writesPerSecond: median(samples[i].rate),
    samples: samples[i],
  }));
  const rows = figures.map((f) => [
    f.build,
    String(f.concurrency),
    String(Math.round(f.allocBytesPerWrite)),
    f.cpuMicrosPerWrite.toFixed(1),
    String(Math.round(f.writesPerSecond)),
  ]);
  const markdown = [
    `Replica writes in process (Replica.write over the LSM store, sync on, and its anti-entropy index with a ` +
      `3-node ring's digests), 128-byte values over 100,000 keys, after a warm-up of 20,000 writes; 16 at a time ` +
      `(a log batch holds many) and 1 at a time (each write a log batch of its own, as at a node's moderate ` +
      `loads; a quarter as many writes). Medians of ${rounds} rounds, each measurement in a fresh process: bytes ` +
      `allocated per write (${allocWrites} writes, V8's sampling heap profiler counting collected objects too; ` +
      `includes the driver's own key and entry, about 0.45 KB), CPU per write and writes/s (${cpuWrites} ` +
      `writes). CPU and rates move with the machine's load; the bytes do not.`,
    '',
    mdTable(['build', 'at a time', 'bytes allocated a write', 'CPU µs a write', 'writes/s'], rows),
  ].join('\n');
  return { figures: { rounds, allocWrites, cpuWrites, cases: figures }, markdown };
}
