/**
 * Model-based property test: random sequences of put, delete, get, scan,
 * flush, compaction, clean restart and crash restart, applied to the LSM
 * engine (with tiny limits, so flushes and compactions happen constantly)
 * and to MemoryEngine, the oracle. Every read must agree on what is live.
 *
 * Two worlds:
 * - versions always increase and tombstones may be dropped at once (grace 0),
 *   so compaction's dropping is exercised;
 * - versions arrive out of order (as from replicas) and tombstones are kept
 *   (long grace), so "newest version wins" is exercised across levels.
 *
 * Runs: RINGKV_PROPERTY_RUNS (default 8). Seeded at random; the seed is printed
 * on failure and RINGKV_PROPERTY_SEED replays it (test/support/property.ts).
 * Each run has at least 50 operations, so that every run flushes and
 * compacts and the coverage check at the end holds for any seed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Engine } from '../../src/storage/engine.js';
import { type Entry, isLive, tombstoneEntry, valueEntry } from '../../src/storage/entry/entry.js';
import { LsmEngine } from '../../src/storage/lsm-engine.js';
import { MemoryEngine } from '../../src/storage/memory-engine.js';
import { scanAll } from '../conformance/engine-suite.js';
import { TINY } from '../support/lsm-options.js';
import { propertyParams } from '../support/property.js';
import { tempDir } from '../support/temp-dir.js';

const NOW = 1_700_000_000_000;
const RUNS = Number(process.env.RINGKV_PROPERTY_RUNS ?? 8);
const KEYS = 40;

type Op =
  | { op: 'put'; key: number; size: number; fill: number; ttl: 'none' | 'past' | 'future'; lag: number }
  | { op: 'delete'; key: number; lag: number }
  | { op: 'get'; key: number }
  | { op: 'scan'; start: number; end: number | undefined }
  | { op: 'flush' | 'compact' | 'reopen' | 'crash' };

const keyOf = (i: number) => Buffer.from(`key-${String(i).padStart(3, '0')}`);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      op: fc.constant('put' as const),
      key: fc.nat(KEYS - 1),
      size: fc.oneof(fc.nat(40), fc.nat(700)),
      fill: fc.nat(255),
      ttl: fc.constantFrom('none' as const, 'none' as const, 'past' as const, 'future' as const),
      lag: fc.nat(5),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.nat(KEYS - 1), lag: fc.nat(5) }),
  },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('get' as const), key: fc.nat(KEYS - 1) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('scan' as const),
      start: fc.nat(KEYS),
      end: fc.option(fc.nat(KEYS), { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('flush' as const, 'compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('reopen' as const, 'crash' as const) }) },
);

/** What a client can observe of an entry: its value if live, else nothing. */
function observe(entry: Entry | undefined): string | undefined {
  return entry !== undefined && isLive(entry, NOW) ? entry.value.toString('hex') : undefined;
}

async function liveScan(engine: Engine, start: Buffer, end?: Buffer): Promise<[string, string][]> {
  return (await scanAll(engine, start, end))
    .filter((e) => isLive(e, NOW))
    .map((e) => [e.key.toString(), e.value.toString('hex')]);
}

/**
 * What one test's runs reached (deepest level that held tables, compactions,
 * flushes): each test checks it got past L1, or it proves little. Reset at
 * the start of each test, so neither counts on the other having run.
 */
const coverage = { deepestLevel: 0, compactions: 0, flushes: 0 };

function resetCoverage(): void {
  coverage.deepestLevel = 0;
  coverage.compactions = 0;
  coverage.flushes = 0;
}

function assertCoverage(seed: number): void {
  assert.ok(
    coverage.deepestLevel >= 2,
    `runs reached only level ${coverage.deepestLevel}: ${JSON.stringify(coverage)} (seed ${seed})`,
  );
  assert.ok(
    coverage.compactions > RUNS,
    `only ${coverage.compactions} compactions in ${RUNS} runs (seed ${seed})`,
  );
}

function noteCoverage(engine: LsmEngine): void {
  const stats = engine.stats();
  stats.tablesPerLevel.forEach((count, level) => {
    if (count > 0) coverage.deepestLevel = Math.max(coverage.deepestLevel, level);
  });
  coverage.compactions += stats.compactions;
  coverage.flushes += stats.flushes;
}

async function runWorld(ops: Op[], outOfOrder: boolean): Promise<void> {
  const dir = await tempDir('ringkv-model-');
  const options = {
    dir: dir.path,
    sync: false,
    ...TINY,
    tombstoneGraceMs: outOfOrder ? 365 * 24 * 3600 * 1000 : 0,
    nowMs: () => NOW,
  };
  const model = new MemoryEngine();
  let engine = await LsmEngine.open(options);
  // Versions carry wall time in their high bits (version.ts): start at NOW so that grace periods mean what they say.
  let clock = BigInt(NOW) << 16n;
  const nextVersion = (lag: number) => {
    clock += 1n;
    return outOfOrder ? clock - BigInt(lag) : clock;
  };
  try {
    for (const [step, op] of ops.entries()) {
      const where = `step ${step}: ${JSON.stringify(op)}`;
      switch (op.op) {
        case 'put': {
          const expires = op.ttl === 'none' ? 0 : op.ttl === 'past' ? NOW - 1 : NOW + 3_600_000;
          const entry = valueEntry(
            keyOf(op.key),
            nextVersion(op.lag),
            Buffer.alloc(op.size, op.fill),
            expires,
          );
          await Promise.all([engine.write(entry), model.write(entry)]);
          break;
        }
        case 'delete': {
          const entry = tombstoneEntry(keyOf(op.key), nextVersion(op.lag));
          await Promise.all([engine.write(entry), model.write(entry)]);
          break;
        }
        case 'get':
          assert.equal(
            observe(await engine.get(keyOf(op.key))),
            observe(await model.get(keyOf(op.key))),
            where,
          );
          break;
        case 'scan': {
          const start = keyOf(op.start);
          const end = op.end === undefined ? undefined : keyOf(op.end);
          assert.deepEqual(await liveScan(engine, start, end), await liveScan(model, start, end), where);
          break;
        }
        case 'flush':
          await engine.flush();
          break;
        case 'compact':
          await engine.compact();
          break;
        case 'reopen':
          await engine.close();
          noteCoverage(engine);
          engine = await LsmEngine.open(options);
          break;
        case 'crash':
          noteCoverage(engine);
          await engine.crashForTest();
          engine = await LsmEngine.open(options);
          break;
      }
    }
    assert.deepEqual(
      await liveScan(engine, Buffer.alloc(0)),
      await liveScan(model, Buffer.alloc(0)),
      'final scan',
    );
    for (let i = 0; i < KEYS; i++) {
      assert.equal(observe(await engine.get(keyOf(i))), observe(await model.get(keyOf(i))), `final get ${i}`);
    }
    // After a clean close, which waits for background compaction, so the count does not depend on timing.
    await engine.close();
    noteCoverage(engine);
  } finally {
    await engine.close();
    await dir.remove();
  }
}

test('LSM engine agrees with the model: increasing versions, tombstones dropped at once', async () => {
  resetCoverage();
  const params = propertyParams({ numRuns: RUNS, verbose: true });
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 50, maxLength: 150, size: 'max' }), (ops) =>
      runWorld(ops, false),
    ),
    params,
  );
  assertCoverage(params.seed);
});

test('LSM engine agrees with the model: versions out of order, tombstones kept', async () => {
  resetCoverage();
  const params = propertyParams({ numRuns: RUNS, verbose: true });
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 50, maxLength: 150, size: 'max' }), (ops) =>
      runWorld(ops, true),
    ),
    params,
  );
  assertCoverage(params.seed);
});
