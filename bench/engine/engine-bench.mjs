/**
 * Engine benchmark, in process: ringkv's storage engine (openEngine from the
 * compiled project) against LevelDB (classic-level), same workload, same
 * durability, same process, rounds interleaved (ringkv, LevelDB, ringkv, ...)
 * so that drift on a shared machine hits both alike; medians are quoted.
 *
 * Workloads:
 *   write-sync-on / write-sync-off: N random writes (16-byte random keys,
 *     128-byte random values) with C writes in flight, into a fresh store per
 *     round. In flight together, writes can share an fsync (group commit in
 *     ringkv; LevelDB's writer queue batches concurrent puts likewise).
 *   read: a store filled once with K keys in random order (sync off; LevelDB
 *     by batches), closed and reopened, then N random point reads of present
 *     keys with C in flight. Each round reopens the store
 *     (BENCH_ENGINE_REOPEN=0: keeps it open) and reads a different sample
 *     of keys after an untimed warm-up of N/10 reads. Before the reads, each
 *     store is compacted fully (BENCH_ENGINE_READ_COMPACT=0: not), so that
 *     both are read in a settled shape: otherwise what is left of each
 *     store's compactions from the fill runs during the read rounds, its
 *     own and the other store's (they share the process and the cores).
 *
 * Values are random bytes so that LevelDB's block compression gains nothing
 * that a real workload would not give it.
 *
 *   json: ringkv alone, its block compression codecs side by side (none,
 *     lz4, deflate), on JSON documents of 200-2,000 bytes (lib/json-docs.mjs).
 *     Each round, for each codec in turn: a fresh store filled with D
 *     documents under random keys, C writes in flight (writes/s: flushes and
 *     compactions, which compress, run meanwhile), a full compaction, the
 *     bytes of its tables. Then the last round's stores are opened together
 *     for random point reads of present keys, C in flight, in batches of N
 *     that alternate between the codecs, twice: with a block cache far
 *     smaller than the data (most reads miss it, and so read and decompress
 *     a block) and with the default cache, which holds it all (every key
 *     read once, untimed, first: the reads then measure hits).
 */
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { makeDocuments } from '../lib/json-docs.mjs';
import { makeTempDir, removeTempDir } from '../lib/procs.mjs';
import { ROOT_DIR } from '../lib/results.mjs';
import { envFlag, envInt, envList, envString } from '../lib/settings.mjs';
import { fmtInt, fmtPercent, log, mdTable, median, ratio } from '../lib/stats.mjs';

const KEY_BYTES = 16;

export function engineSettings() {
  return {
    rounds: envInt('BENCH_ROUNDS', 3, { min: 1 }),
    concurrency: envInt('BENCH_ENGINE_CONCURRENCY', 64, { min: 1 }),
    valueBytes: envInt('BENCH_VALUE_BYTES', 128, { min: 1 }),
    writeOpsSync: envInt('BENCH_ENGINE_WRITE_OPS_SYNC', 20000, { min: 1 }),
    writeOps: envInt('BENCH_ENGINE_WRITE_OPS', 200000, { min: 1 }),
    keys: envInt('BENCH_ENGINE_KEYS', 1000000, { min: 1 }),
    readOps: envInt('BENCH_ENGINE_READ_OPS', 200000, { min: 1 }),
    reopen: envFlag('BENCH_ENGINE_REOPEN', true),
    compactBeforeReads: envFlag('BENCH_ENGINE_READ_COMPACT', true),
    workloads: envList(
      'BENCH_ENGINE_WORKLOADS',
      ['write-sync-on', 'write-sync-off', 'read', 'json'],
      ['write-sync-on', 'write-sync-off', 'read', 'json'],
    ),
    jsonDocs: envInt('BENCH_ENGINE_JSON_DOCS', 100000, { min: 1 }),
    jsonReadOps: envInt('BENCH_ENGINE_JSON_READ_OPS', 10000, { min: 1 }),
    jsonReadBatches: envInt('BENCH_ENGINE_JSON_READ_BATCHES', 15, { min: 1 }),
    jsonCodecs: envList('BENCH_ENGINE_JSON_CODECS', ['none', 'lz4', 'deflate'], ['none', 'lz4', 'deflate']),
    jsonSmallCacheBytes: envInt('BENCH_ENGINE_JSON_SMALL_CACHE_BYTES', 16 * 2 ** 20, { min: 0 }),
    // LevelDB does its work on libuv's thread pool, whose size bounds how many
    // of its writes can be in one group commit; recorded, not changed.
    threadPoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
    storageModule: envString('BENCH_STORAGE_MODULE', path.join(ROOT_DIR, 'dist/src/storage/index.js')),
  };
}

/** Random keys and values, generated before any timing starts. */
class Workload {
  keys;
  values;
  #valueBytes;

  constructor(keyCount, valueBytes) {
    this.keys = Buffer.allocUnsafe(keyCount * KEY_BYTES);
    randomFillSync(this.keys);
    // 1 MiB of random value bytes; value i starts at a varying offset in it.
    this.values = Buffer.allocUnsafe(1 << 20);
    randomFillSync(this.values);
    this.#valueBytes = valueBytes;
  }

  key(i) {
    return this.keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES);
  }

  value(i) {
    const span = this.values.length - this.#valueBytes;
    const at = (i * 7919) % span;
    return this.values.subarray(at, at + this.#valueBytes);
  }
}

/** Runs op(i) for i in [from, to) with `concurrency` calls in flight; resolves when all are done. */
async function runConcurrent(from, to, concurrency, op) {
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      await op(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, to - from) }, worker));
}

/** The two stores behind one small interface. */
function ringkvStore(storage) {
  let version = 1n;
  return {
    name: 'ringkv',
    async open(dir, sync) {
      const engine = await storage.openEngine({ dir, sync });
      return {
        put: (key, value) => engine.write(storage.valueEntry(key, version++, value)),
        get: async (key) => {
          const entry = await engine.get(key);
          return entry !== undefined && entry.kind === storage.EntryKind.Value ? entry.value : undefined;
        },
        async fill(workload, from, to) {
          await runConcurrent(from, to, 256, (i) =>
            engine.write(storage.valueEntry(workload.key(i), version++, workload.value(i))),
          );
        },
        compact: () => engine.compact(),
        stats: () => engine.stats(),
        close: () => engine.close(),
      };
    },
  };
}

function levelStore(ClassicLevel) {
  return {
    name: 'leveldb',
    async open(dir, sync) {
      const db = new ClassicLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await db.open();
      const putOptions = { sync };
      return {
        put: (key, value) => db.put(key, value, putOptions),
        get: (key) => db.get(key),
        async fill(workload, from, to) {
          const BATCH = 10000;
          for (let start = from; start < to; start += BATCH) {
            const ops = [];
            const end = Math.min(to, start + BATCH);
            for (let i = start; i < end; i++)
              ops.push({ type: 'put', key: workload.key(i), value: workload.value(i) });
            await db.batch(ops, { sync: false });
          }
        },
        // Keys are 16 bytes: 17 bytes of 0xff sort after all of them.
        compact: () => db.compactRange(Buffer.alloc(0), Buffer.alloc(17, 0xff)),
        stats: () => null,
        close: () => db.close(),
      };
    },
  };
}

function dirBytes(dir, suffix = '') {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(suffix))
      total += fs.statSync(path.join(entry.parentPath ?? entry.path, entry.name)).size;
  }
  return total;
}

async function writeRound(store, sync, ops, settings) {
  const dir = makeTempDir(`engine-${store.name}`);
  try {
    const workload = new Workload(ops, settings.valueBytes);
    const db = await store.open(dir, sync);
    const started = performance.now();
    await runConcurrent(0, ops, settings.concurrency, (i) => db.put(workload.key(i), workload.value(i)));
    const elapsedMs = performance.now() - started;
    const stats = db.stats();
    await db.close();
    return { opsPerS: Math.round((ops / elapsedMs) * 1000), elapsedMs: Math.round(elapsedMs), stats };
  } finally {
    removeTempDir(dir);
  }
}

async function runWrites(stores, sync, settings) {
  const ops = sync ? settings.writeOpsSync : settings.writeOps;
  const perStore = Object.fromEntries(stores.map((s) => [s.name, []]));
  for (let round = 0; round < settings.rounds; round++) {
    for (const store of stores) {
      const r = await writeRound(store, sync, ops, settings);
      perStore[store.name].push(r);
      log(
        `engine write sync=${sync ? 'on' : 'off'} round ${round + 1} ${store.name}: ${fmtInt(r.opsPerS)} ops/s`,
      );
    }
  }
  return summarize(`write-sync-${sync ? 'on' : 'off'}`, perStore, { ops, sync });
}

async function runReads(stores, settings) {
  const workload = new Workload(settings.keys, settings.valueBytes);
  const dirs = {};
  const fill = {};
  // With reopen off, each store stays open from its fill to the last round.
  const held = {};
  const open = async (store) => held[store.name] ?? store.open(dirs[store.name], true);
  const release = async (store, db) => {
    if (held[store.name] === undefined) await db.close();
  };
  try {
    for (const store of stores) {
      dirs[store.name] = makeTempDir(`engine-read-${store.name}`);
      const started = performance.now();
      const db = await store.open(dirs[store.name], false);
      await db.fill(workload, 0, settings.keys);
      const elapsedMs = performance.now() - started;
      const compactStarted = performance.now();
      if (settings.compactBeforeReads) await db.compact();
      const compactMs = performance.now() - compactStarted;
      if (settings.reopen) await db.close();
      else held[store.name] = db;
      fill[store.name] = {
        keys: settings.keys,
        elapsedMs: Math.round(elapsedMs),
        keysPerS: Math.round((settings.keys / elapsedMs) * 1000),
        compactMs: settings.compactBeforeReads ? Math.round(compactMs) : null,
        diskBytes: dirBytes(dirs[store.name]),
      };
      log(
        `engine read: filled ${store.name} with ${fmtInt(settings.keys)} keys in ${fmtInt(elapsedMs)} ms` +
          (settings.compactBeforeReads ? `, compacted in ${fmtInt(compactMs)} ms` : ''),
      );
    }
    const perStore = Object.fromEntries(stores.map((s) => [s.name, []]));
    const ops = settings.readOps;
    const warm = Math.max(1, Math.floor(ops / 10));
    for (let round = 0; round < settings.rounds; round++) {
      // A different stretch of keys each round, read in an order unrelated to their insertion.
      const offset = (round * 104729) % settings.keys;
      const pick = (i) => (offset + i * 7919) % settings.keys;
      for (const store of stores) {
        const db = await open(store);
        if (round === 0 && (await db.get(workload.key(0))) === undefined) {
          await release(store, db);
          throw new Error(
            `${store.name} lost its data on reopen (a placeholder in-memory engine?): ` +
              'run with BENCH_ENGINE_REOPEN=0 to keep each store open between fill and reads',
          );
        }
        let misses = 0;
        const read = async (i) => {
          const value = await db.get(workload.key(pick(i)));
          if (value === undefined) misses++;
        };
        await runConcurrent(ops, ops + warm, settings.concurrency, read);
        const started = performance.now();
        await runConcurrent(0, ops, settings.concurrency, read);
        const elapsedMs = performance.now() - started;
        const stats = db.stats();
        await release(store, db);
        if (misses > 0)
          throw new Error(`${store.name}: ${misses} of ${ops + warm} present keys were not found`);
        const r = { opsPerS: Math.round((ops / elapsedMs) * 1000), elapsedMs: Math.round(elapsedMs), stats };
        perStore[store.name].push(r);
        log(`engine read round ${round + 1} ${store.name}: ${fmtInt(r.opsPerS)} ops/s`);
      }
    }
    return { ...summarize('read', perStore, { ops, keys: settings.keys, reopen: settings.reopen }), fill };
  } finally {
    for (const db of Object.values(held)) await db.close();
    for (const dir of Object.values(dirs)) removeTempDir(dir);
  }
}

/** A process.cpuUsage() difference in microseconds: every thread of the process (event loop, workers, thread pool). */
function cpuMicros(usage) {
  return usage.user + usage.system;
}

/** The json workload's documents and keys, generated before any timing starts. */
function jsonWorkload(count) {
  const keys = Buffer.allocUnsafe(count * KEY_BYTES);
  randomFillSync(keys);
  const nextDocument = makeDocuments(1);
  const docs = Array.from({ length: count }, () => nextDocument());
  return { key: (i) => keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES), doc: (i) => docs[i], docs };
}

/** One fill of the json workload for one codec: a fresh store, D writes, a full compaction, its table bytes. */
async function jsonFill(storage, codec, workload, settings) {
  const dir = makeTempDir(`engine-json-${codec}`);
  const count = settings.jsonDocs;
  let version = 1n;
  try {
    const engine = await storage.openEngine({ dir, sync: false, compression: codec });
    const started = performance.now();
    const cpu = process.cpuUsage();
    await runConcurrent(0, count, settings.concurrency, (i) =>
      engine.write(storage.valueEntry(workload.key(i), version++, workload.doc(i))),
    );
    const fillMs = performance.now() - started;
    const fillCpuUs = cpuMicros(process.cpuUsage(cpu));
    const levelsAfterFill = engine.stats().tablesPerLevel;
    const compactStarted = performance.now();
    await engine.compact();
    const compactMs = performance.now() - compactStarted;
    // Until every table sits at the bottom, compressed: what the data cost to write in the end.
    const settledCpuUs = cpuMicros(process.cpuUsage(cpu));
    await engine.close();
    return {
      dir,
      writeOpsPerS: Math.round((count / fillMs) * 1000),
      writeCpuUsPerOp: round1(fillCpuUs / count),
      settledWriteOpsPerS: Math.round((count / (fillMs + compactMs)) * 1000),
      settledWriteCpuUsPerOp: round1(settledCpuUs / count),
      levelsAfterFill,
      fillMs: Math.round(fillMs),
      compactMs: Math.round(compactMs),
      tableBytes: dirBytes(dir, '.sst'),
      dirBytes: dirBytes(dir),
    };
  } catch (err) {
    removeTempDir(dir);
    throw err;
  }
}

/**
 * Point reads of every codec's store, all open at once with the same cache
 * size, in batches that alternate between them (none, lz4, deflate, none,
 * ...): each batch takes a fraction of a second, so that the load of a
 * shared machine, which drifts over seconds, falls on every codec alike.
 */
async function jsonReads(storage, dirs, workload, settings, blockCacheBytes) {
  const codecs = Object.keys(dirs);
  const count = settings.jsonDocs;
  const engines = {};
  try {
    for (const codec of codecs) {
      engines[codec] = await storage.openEngine({
        dir: dirs[codec],
        sync: false,
        compression: codec,
        ...(blockCacheBytes === undefined ? {} : { blockCacheBytes }),
      });
    }
    // With the native block reader built, lz4 is read both ways over the same store: decompressed in
    // the read's thread-pool task (the default) and on the event loop (its fallback), 'lz4-loop'.
    const variants = codecs.map((codec) => ({ name: codec, codec, native: true }));
    if (codecs.includes('lz4') && storage.nativeBlockReaderStatus === 'loaded') {
      variants.push({ name: 'lz4-loop', codec: 'lz4', native: false });
    }
    const readBatch = async (codec, from, to, pick) => {
      const engine = engines[codec];
      let misses = 0;
      await runConcurrent(from, to, settings.concurrency, async (i) => {
        const entry = await engine.get(workload.key(pick(i)));
        if (entry === undefined || entry.kind !== storage.EntryKind.Value) misses++;
      });
      if (misses > 0) throw new Error(`json ${codec}: ${misses} of ${to - from} present keys were not found`);
    };
    // Untimed first: with a small cache a batch's worth; with the default one every key once, so that
    // every block is cached (whatever the background warming has reached) and the reads measure hits.
    const stride = (i) => (i * 7919) % count;
    for (const codec of codecs) {
      await readBatch(codec, 0, blockCacheBytes === undefined ? count : settings.jsonReadOps, stride);
    }
    const batches = Object.fromEntries(variants.map((v) => [v.name, []]));
    for (let batch = 0; batch < settings.jsonReadBatches; batch++) {
      // A different stretch of keys each batch, in an order unrelated to their insertion.
      const offset = ((batch + 1) * 104729) % count;
      const pick = (i) => (offset + i * 7919) % count;
      for (const { name, codec, native } of variants) {
        storage.useNativeBlockReader?.(native);
        const before = engines[codec].stats();
        const started = performance.now();
        const cpu = process.cpuUsage();
        await readBatch(codec, 0, settings.jsonReadOps, pick);
        const elapsedMs = performance.now() - started;
        const cpuUs = cpuMicros(process.cpuUsage(cpu));
        const after = engines[codec].stats();
        const misses = after.blockCacheMisses - before.blockCacheMisses;
        const lookups = after.blockCacheHits - before.blockCacheHits + misses;
        batches[name].push({
          opsPerS: Math.round((settings.jsonReadOps / elapsedMs) * 1000),
          cpuUsPerOp: round1(cpuUs / settings.jsonReadOps),
          cacheMissShare: lookups > 0 ? misses / lookups : null,
        });
      }
    }
    return Object.fromEntries(
      variants.map(({ name }) => [
        name,
        {
          opsPerS: median(batches[name].map((b) => b.opsPerS)),
          cpuUsPerOp: median(batches[name].map((b) => b.cpuUsPerOp)),
          cacheMissShare: median(batches[name].map((b) => b.cacheMissShare)),
          batches: batches[name],
        },
      ]),
    );
  } finally {
    storage.useNativeBlockReader?.(true);
    for (const engine of Object.values(engines)) await engine.close();
  }
}

async function runJson(storage, settings) {
  const workload = jsonWorkload(settings.jsonDocs);
  const rawValueBytes = workload.docs.reduce((sum, d) => sum + d.length, 0);
  const fills = Object.fromEntries(settings.jsonCodecs.map((c) => [c, []]));
  // The stores of the last round are kept for the reads.
  const dirs = {};
  try {
    for (let round = 0; round < settings.rounds; round++) {
      for (const codec of settings.jsonCodecs) {
        const { dir, ...fill } = await jsonFill(storage, codec, workload, settings);
        fills[codec].push(fill);
        if (dirs[codec] !== undefined) removeTempDir(dirs[codec]);
        dirs[codec] = dir;
        log(
          `engine json fill ${round + 1} ${codec}: ${fmtInt(fill.writeOpsPerS)} writes/s, ` +
            `${fill.writeCpuUsPerOp} us CPU per write, ${fmtInt(fill.tableBytes / 2 ** 20)} MiB of tables`,
        );
      }
    }
    const reads = {};
    for (const [name, blockCacheBytes] of [
      ['smallCache', settings.jsonSmallCacheBytes],
      ['defaultCache', undefined],
    ]) {
      reads[name] = await jsonReads(storage, dirs, workload, settings, blockCacheBytes);
      log(
        `engine json reads, ${name}: ` +
          Object.entries(reads[name])
            .map(([codec, r]) => `${codec} ${fmtInt(r.opsPerS)}/s ${r.cpuUsPerOp} us`)
            .join(', '),
      );
    }
    const medians = Object.fromEntries(
      Object.entries(fills).map(([codec, rounds]) => [
        codec,
        {
          tableBytes: median(rounds.map((r) => r.tableBytes)),
          writeOpsPerS: median(rounds.map((r) => r.writeOpsPerS)),
          writeCpuUsPerOp: median(rounds.map((r) => r.writeCpuUsPerOp)),
          settledWriteOpsPerS: median(rounds.map((r) => r.settledWriteOpsPerS)),
          settledWriteCpuUsPerOp: median(rounds.map((r) => r.settledWriteCpuUsPerOp)),
          compactMs: median(rounds.map((r) => r.compactMs)),
          readSmallCacheOpsPerS: reads.smallCache[codec].opsPerS,
          readSmallCacheCpuUsPerOp: reads.smallCache[codec].cpuUsPerOp,
          readDefaultCacheOpsPerS: reads.defaultCache[codec].opsPerS,
          readDefaultCacheCpuUsPerOp: reads.defaultCache[codec].cpuUsPerOp,
          smallCacheMissShare: reads.smallCache[codec].cacheMissShare,
        },
      ]),
    );
    return {
      workload: 'json',
      nativeBlockReader: storage.nativeBlockReaderStatus,
      docs: settings.jsonDocs,
      rawValueBytes,
      readOpsPerBatch: settings.jsonReadOps,
      readBatches: settings.jsonReadBatches,
      smallCacheBytes: settings.jsonSmallCacheBytes,
      fills,
      reads,
      medians,
    };
  } finally {
    for (const dir of Object.values(dirs)) removeTempDir(dir);
  }
}

function round1(x) {
  return Math.round(x * 10) / 10;
}

function jsonMarkdown(r) {
  const base = r.medians.none;
  const vsNone = (value, baseValue) =>
    base === undefined ? '' : ` (${fmtPercent(ratio(value, baseValue))})`;
  const rows = Object.entries(r.medians).map(([codec, m]) => [
    codec,
    `${fmtInt(m.tableBytes / 2 ** 20)} MiB${vsNone(m.tableBytes, base?.tableBytes)}`,
    `${fmtInt(m.writeOpsPerS)}${vsNone(m.writeOpsPerS, base?.writeOpsPerS)}`,
    `${fmtInt(m.settledWriteOpsPerS)}${vsNone(m.settledWriteOpsPerS, base?.settledWriteOpsPerS)}`,
    `${fmtInt(m.readSmallCacheOpsPerS)}${vsNone(m.readSmallCacheOpsPerS, base?.readSmallCacheOpsPerS)}`,
    `${fmtInt(m.readDefaultCacheOpsPerS)}${vsNone(m.readDefaultCacheOpsPerS, base?.readDefaultCacheOpsPerS)}`,
    `${fmtInt(m.compactMs)} ms`,
  ]);
  const cpuRows = Object.entries(r.medians).map(([codec, m]) => [
    codec,
    `${round1(m.writeCpuUsPerOp)} us${vsNone(m.writeCpuUsPerOp, base?.writeCpuUsPerOp)}`,
    `${round1(m.settledWriteCpuUsPerOp)} us${vsNone(m.settledWriteCpuUsPerOp, base?.settledWriteCpuUsPerOp)}`,
    `${round1(m.readSmallCacheCpuUsPerOp)} us${vsNone(m.readSmallCacheCpuUsPerOp, base?.readSmallCacheCpuUsPerOp)}`,
    `${round1(m.readDefaultCacheCpuUsPerOp)} us${vsNone(m.readDefaultCacheCpuUsPerOp, base?.readDefaultCacheCpuUsPerOp)}`,
  ]);
  const fillRounds = Object.entries(r.fills).map(
    ([codec, rounds]) =>
      `- writes/s by fill, ${codec}: ${rounds.map((x) => fmtInt(x.writeOpsPerS)).join(' / ')}`,
  );
  const loop = r.reads.smallCache['lz4-loop'];
  const loopLines =
    loop === undefined
      ? [
          `- lz4 blocks were decompressed on the event loop: native block reader ${r.nativeBlockReader ?? 'absent'}`,
        ]
      : [
          '- lz4 read both ways over the same store, small cache, in brackets against none: decompressed in the ' +
            `read's thread-pool task (native block reader, the lz4 row) ${fmtInt(r.reads.smallCache.lz4.opsPerS)}/s` +
            `${vsNone(r.reads.smallCache.lz4.opsPerS, base?.readSmallCacheOpsPerS)}, ` +
            `${round1(r.reads.smallCache.lz4.cpuUsPerOp)} us CPU per read` +
            `${vsNone(r.reads.smallCache.lz4.cpuUsPerOp, base?.readSmallCacheCpuUsPerOp)}; on the event loop (its fallback) ` +
            `${fmtInt(loop.opsPerS)}/s${vsNone(loop.opsPerS, base?.readSmallCacheOpsPerS)}, ` +
            `${round1(loop.cpuUsPerOp)} us CPU${vsNone(loop.cpuUsPerOp, base?.readSmallCacheCpuUsPerOp)}`,
        ];
  return [
    `json: ${fmtInt(r.docs)} JSON documents of 200-2,000 bytes (${fmtInt(r.rawValueBytes / 2 ** 20)} MiB of values), ` +
      `${KEY_BYTES}-byte random keys, ringkv's block codecs side by side, in brackets against none. ` +
      `Tables after a full compaction and writes/s: medians of ${r.fills.none?.length ?? 0} interleaved fills of a fresh store ` +
      '(with the full compaction: the documents over the time of the fill and the compaction that takes every table ' +
      'to the bottom, compressed; tables at levels 0 and 1 are written raw). ' +
      `Point reads of present keys: the last fill's stores open together, medians of ${r.readBatches} alternating ` +
      `batches of ${fmtInt(r.readOpsPerBatch)} reads, with a ${fmtInt(r.smallCacheBytes / 2 ** 20)} MiB block cache ` +
      `(${fmtPercent(r.medians.none?.smallCacheMissShare ?? null)} of block lookups missed it with none) and with the ` +
      'default cache (holding every block).',
    '',
    mdTable(
      [
        'codec',
        'tables on disk',
        'writes/s',
        'writes/s with the full compaction',
        'point reads/s, small cache',
        'point reads/s, default cache',
        'full compaction',
      ],
      rows,
    ),
    '',
    'CPU time of the process (every thread: event loop, workers, thread pool) per operation, medians:',
    '',
    mdTable(
      [
        'codec',
        'per write',
        'per write, with the full compaction',
        'per read, small cache',
        'per read, default cache',
      ],
      cpuRows,
    ),
    '',
    ...loopLines,
    ...fillRounds,
    ...Object.entries(r.fills).map(
      ([codec, rounds]) =>
        `- tables per level after the last fill, ${codec}: ${rounds.at(-1).levelsAfterFill.join(', ')}`,
    ),
  ].join('\n');
}

function summarize(workload, perStore, extra) {
  const medians = Object.fromEntries(
    Object.entries(perStore).map(([k, v]) => [k, median(v.map((r) => r.opsPerS))]),
  );
  return {
    workload,
    ...extra,
    rounds: perStore,
    medianOpsPerS: medians,
    ratio: ratio(medians.ringkv, medians.leveldb),
  };
}

export async function runEngineBench() {
  const settings = engineSettings();
  const storage = await import(pathToFileURL(settings.storageModule).href);
  const { ClassicLevel } = await import('classic-level');
  const stores = [ringkvStore(storage), levelStore(ClassicLevel)];
  let json;
  log(
    `engine: rounds=${settings.rounds} concurrency=${settings.concurrency} value=${settings.valueBytes} B ` +
      `workloads=${settings.workloads.join(',')}`,
  );
  const results = [];
  for (const name of settings.workloads) {
    if (name === 'write-sync-on') results.push(await runWrites(stores, true, settings));
    if (name === 'write-sync-off') results.push(await runWrites(stores, false, settings));
    if (name === 'read') results.push(await runReads(stores, settings));
    if (name === 'json') json = await runJson(storage, settings);
  }
  const rows = results.map((r) => [
    r.workload,
    fmtInt(r.ops),
    fmtInt(r.medianOpsPerS.ringkv),
    fmtInt(r.medianOpsPerS.leveldb),
    fmtPercent(r.ratio),
    r.rounds.ringkv.map((x) => fmtInt(x.opsPerS)).join(' / '),
    r.rounds.leveldb.map((x) => fmtInt(x.opsPerS)).join(' / '),
  ]);
  const fills = results
    .filter((r) => r.fill)
    .flatMap((r) =>
      Object.entries(r.fill).map(
        ([name, f]) =>
          `- fill ${name}: ${fmtInt(f.keys)} keys in ${fmtInt(f.elapsedMs)} ms (${fmtInt(f.keysPerS)}/s), ` +
          `${f.compactMs === null ? '' : `then a full compaction in ${fmtInt(f.compactMs)} ms, `}` +
          `${fmtInt(f.diskBytes / 2 ** 20)} MiB on disk`,
      ),
    );
  const markdown = [
    ...(results.length === 0
      ? []
      : [
          `Engine in process, ${settings.concurrency} operations in flight, ${KEY_BYTES}-byte random keys, ` +
            `${settings.valueBytes}-byte random values, ${settings.rounds} interleaved rounds, medians.`,
          '',
          mdTable(
            [
              'workload',
              'ops/round',
              'ringkv ops/s',
              'LevelDB ops/s',
              'ringkv/LevelDB',
              'ringkv rounds',
              'LevelDB rounds',
            ],
            rows,
          ),
          '',
          ...fills,
        ]),
    ...(json === undefined ? [] : [...(results.length === 0 ? [] : ['']), jsonMarkdown(json)]),
  ].join('\n');
  return { figures: { settings: { ...settings, keyBytes: KEY_BYTES }, results, json }, markdown };
}
