/**
 * One measurement of the replica write path, in its own process (a fresh
 * heap): a node's store (LSM engine, sync on) under its anti-entropy index,
 * with digests kept for a 3-node ring, written through Replica.write as
 * internode writes arrive, CONCURRENCY at a time (1: each write a log batch of
 * its own, as at a node's moderate loads). Prints one JSON line: writes/s,
 * CPU µs per write, and (mode "alloc") the bytes allocated per write, counted
 * by V8's sampling heap profiler including objects already collected.
 *
 *   node replica-write-child.mjs ROOT alloc|cpu WRITES CONCURRENCY
 * ROOT is the checkout whose dist/ is measured.
 */
import fs from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, mode, writesArg, concurrencyArg] = process.argv.slice(2);
const load = (file) => import(pathToFileURL(path.join(root, 'dist/src', file)).href);
const storage = await load('storage/index.js');
const { IndexedEngine } = await load('cluster/antientropy/indexed-engine.js');
const { lsmIndexes } = await load('cluster/antientropy/index-store.js');
const { treeFileIn } = await load('cluster/antientropy/tree-file.js');
const { Replica } = await load('cluster/replication/replica.js');
const { RecentWrites } = await load('cluster/replication/recent-writes.js');
const { HybridClock } = await load('cluster/clock.js');
const { Ring } = await load('cluster/ring/index.js');

const WRITES = Number(writesArg);
const CONCURRENCY = Number(concurrencyArg);
const KEYS = 100_000;
const dir = fs.mkdtempSync(path.join(process.env.BENCH_TMP ?? path.join(root, 'bench'), '.replica-write-'));
try {
  const main = await storage.openEngine({ dir: path.join(dir, 'data'), sync: true });
  const engine = await IndexedEngine.open({
    main,
    indexes: lsmIndexes(dir),
    treeFile: treeFileIn(dir),
    log: () => {},
    verifyIntervalMs: 0,
  });
  const ring = new Ring(['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3']);
  engine.watchRing(() => ring);
  const clock = new HybridClock();
  const recentWrites = new RecentWrites({
    windowMs: 60_000,
    entriesMax: 131_072,
    keyBytesMax: 16 << 20,
    initialFloor: 0n,
  });
  const replica = new Replica({ engine, clock, recentWrites });
  const value = Buffer.alloc(128, 'v');
  let next = 0;
  const writer = async (until) => {
    while (next < until) {
      const key = Buffer.from(`key-${(next++ * 7919) % KEYS}`);
      await replica.write(storage.valueEntry(key, clock.now(), value));
    }
  };
  const writeUntil = (until) => Promise.all(Array.from({ length: CONCURRENCY }, () => writer(until)));
  // Warm-up: the code compiled, the index and its digests ready, the keys known.
  await writeUntil(KEYS / 5);
  await engine.settled();

  const session = new inspector.Session();
  session.connect();
  const post = (method, params) =>
    new Promise((resolve, reject) =>
      session.post(method, params, (err, r) => (err ? reject(err) : resolve(r))),
    );
  if (mode === 'alloc') {
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  const cpu = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await writeUntil(next + WRITES);
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const used = process.cpuUsage(cpu);
  let allocBytesPerWrite;
  if (mode === 'alloc') {
    const { profile } = await post('HeapProfiler.stopSampling');
    let bytes = 0;
    const walk = (node) => {
      bytes += node.selfSize;
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    // The writer loop's own key Buffer and entry object are this script's, not the path's.
    allocBytesPerWrite = bytes / WRITES;
  }
  session.disconnect();
  await engine.close();
  process.stdout.write(
    `${JSON.stringify({
      writesPerSecond: (WRITES / elapsedMs) * 1000,
      cpuMicrosPerWrite: (used.user + used.system) / WRITES,
      allocBytesPerWrite,
    })}\n`,
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
