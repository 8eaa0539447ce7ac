import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type Engine,
  type Entry,
  LsmEngine,
  MemoryEngine,
  newer,
  tombstoneEntry,
  valueEntry,
} from '../../storage/index.js';
import { dump, simCluster } from './_sim-cluster.js';

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function lsm(): Promise<LsmEngine> {
  const dir = await mkdtemp(join(tmpdir(), 'ringkv-ae-'));
  dirs.push(dir);
  return LsmEngine.open({ dir, sync: false, memtableBytesMax: 16 * 1024 });
}

function key(i: number): Buffer {
  return Buffer.from(`key-${String(i).padStart(5, '0')}`);
}

function value(i: number, version: bigint): Entry {
  return valueEntry(key(i), version, Buffer.from(`value-${i}-${version}`));
}

async function writeAll(engines: readonly Engine[], entries: readonly Entry[]): Promise<void> {
  for (const engine of engines) for (const entry of entries) await engine.write(entry);
}

describe('AntiEntropy', () => {
  it('equal stores exchange only digests', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    await writeAll(
      engines,
      Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? tombstoneEntry(key(i), 50n) : value(i, 40n))),
    );
    const { nodes } = simCluster(engines);
    const [a] = nodes;
    const [result] = await a!.antiEntropy.runOnce();
    assert.equal(result?.equal, true);
    assert.equal(result?.localEntries, 300, 'R = 2: both nodes share every key');
    assert.deepEqual(a!.transport.traffic, { writes: 0, reads: 0, digestRequests: 1, summaryRequests: 0 });
    assert.equal(a!.antiEntropy.stats().pulled + a!.antiEntropy.stats().pushed, 0);
  });

  it('a node that missed writes and deletes converges, and newer local versions go out', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine(), new MemoryEngine()];
    const base = Array.from({ length: 200 }, (_, i) => value(i, 10n));
    await writeAll(engines, base);
    const [a, b, c] = engines as [MemoryEngine, MemoryEngine, MemoryEngine];
    // C was down: it missed updates (on A and B), deletes (on A only) and new keys (on B only).
    await writeAll(
      [a, b],
      Array.from({ length: 20 }, (_, i) => value(i, 20n)),
    );
    await writeAll(
      [a],
      Array.from({ length: 15 }, (_, i) => tombstoneEntry(key(100 + i), 30n)),
    );
    await writeAll(
      [b],
      Array.from({ length: 10 }, (_, i) => value(500 + i, 25n)),
    );
    // ...while C alone took a few newer writes.
    await writeAll(
      [c],
      Array.from({ length: 5 }, (_, i) => value(150 + i, 40n)),
    );

    const { nodes } = simCluster(engines, { leafBits: 6, summaryEntriesMax: 16 });
    const results = await nodes[2]!.antiEntropy.runOnce();
    assert.equal(results.length, 2);
    assert.ok(results.every((r) => r.error === undefined && !r.equal));
    assert.deepEqual(await c.get(key(3)), value(3, 20n));
    assert.deepEqual(await c.get(key(105)), tombstoneEntry(key(105), 30n));
    assert.deepEqual(await c.get(key(505)), value(505, 25n));
    assert.deepEqual(await a.get(key(152)), value(152, 40n), 'pushed to A');
    assert.deepEqual(await b.get(key(152)), value(152, 40n), 'pushed to B');
    // Only what differed moved. With A first: 20 updates and 15 deletes pulled, 5 newer values
    // pushed; then with B: 10 new keys pulled, the 15 deletes B lacked and the 5 values pushed.
    const stats = nodes[2]!.antiEntropy.stats();
    assert.equal(stats.pulled, 45);
    assert.equal(stats.pushed, 25);

    await nodes[0]!.antiEntropy.runOnce();
    const expected = await dump(a);
    assert.deepEqual(await dump(b), expected);
    assert.deepEqual(await dump(c), expected);
    for (const node of nodes) {
      const again = await node.antiEntropy.runOnce();
      assert.ok(
        again.every((r) => r.equal),
        'a converged cluster exchanges digests only',
      );
    }
  });

  it('tombstones win over older values and at equal versions; newer values win over tombstones', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    const [a, b] = engines as [MemoryEngine, MemoryEngine];
    await a.write(tombstoneEntry(key(1), 10n));
    await b.write(value(1, 5n));
    await a.write(tombstoneEntry(key(2), 10n));
    await b.write(value(2, 20n));
    await a.write(tombstoneEntry(key(3), 10n));
    await b.write(value(3, 10n));
    const { nodes } = simCluster(engines);
    await nodes[1]!.antiEntropy.runOnce();
    for (const engine of engines) {
      assert.deepEqual(await engine.get(key(1)), tombstoneEntry(key(1), 10n));
      assert.deepEqual(await engine.get(key(2)), value(2, 20n));
      assert.deepEqual(await engine.get(key(3)), tombstoneEntry(key(3), 10n));
    }
  });

  it('a wiped node (LSM engine) gets everything back', async () => {
    const engines: Engine[] = [await lsm(), await lsm(), await lsm()];
    const entries = Array.from({ length: 400 }, (_, i) =>
      i % 9 === 0 ? tombstoneEntry(key(i), 7n) : value(i, BigInt(5 + (i % 3))),
    );
    await writeAll(engines, entries);
    const { nodes } = simCluster(engines, { leafBits: 8 });
    await engines[1]!.close();
    const fresh = await lsm();
    nodes[1]!.handler.engine = fresh;
    assert.deepEqual(await dump(fresh), []);

    const results = await nodes[1]!.antiEntropy.runOnce();
    assert.ok(results.every((r) => r.error === undefined));
    assert.equal(nodes[1]!.antiEntropy.stats().pulled, 400);
    assert.deepEqual(await dump(fresh), await dump(engines[0]!));
    await fresh.flush();
    assert.deepEqual(await dump(fresh), await dump(engines[2]!));
    for (const engine of [engines[0]!, engines[2]!, fresh]) await engine.close();
  });

  it('keeps each key on exactly ring.replicas(key, R) nodes', async () => {
    const engines = Array.from({ length: 4 }, () => new MemoryEngine());
    const { nodes, ring } = simCluster(engines, { replicationFactor: 2 });
    // Every key written on its primary only.
    for (let i = 0; i < 200; i++) {
      const primary = ring.primary(key(i));
      await engines[nodes.findIndex((n) => n.url === primary)]!.write(value(i, 3n));
    }
    for (const node of nodes) await node.antiEntropy.runOnce();
    for (let i = 0; i < 200; i++) {
      const holders = [];
      for (const [index, node] of nodes.entries()) {
        if ((await engines[index]!.get(key(i))) !== undefined) holders.push(node.url);
      }
      assert.deepEqual(holders.sort(), [...ring.replicas(key(i), 2)].sort(), `key ${i}`);
    }
  });

  it('bounds the copies per exchange and finishes in later rounds', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    await writeAll(
      [engines[0]!],
      Array.from({ length: 45 }, (_, i) => value(i, 2n)),
    );
    const { nodes } = simCluster(engines, { repairsPerRoundMax: 10, repairsInFlightMax: 3 });
    const [first] = await nodes[1]!.antiEntropy.runOnce();
    assert.equal(first?.pulled, 10);
    assert.equal(first?.deferred, true);
    let rounds = 1;
    while (rounds < 20 && !(await nodes[1]!.antiEntropy.runOnce())[0]!.equal) rounds++;
    assert.equal(rounds, 5, '45 copies at 10 per round, then one round to see equal digests');
    assert.deepEqual(await dump(engines[1]!), await dump(engines[0]!));
  });

  it('skips peers that are down and stops an exchange whose copies fail', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine(), new MemoryEngine()];
    await engines[0]!.write(value(1, 1n));
    const { nodes, sim } = simCluster(engines);
    sim.setDown(nodes[1]!.url, true);
    const results = await nodes[0]!.antiEntropy.runOnce();
    assert.deepEqual(
      results.map((r) => r.peer),
      [nodes[2]!.url],
    );
    assert.equal(nodes[0]!.antiEntropy.stats().skippedDown, 1);
    assert.deepEqual(await engines[2]!.get(key(1)), value(1, 1n));
    assert.equal(await engines[1]!.get(key(1)), undefined);
  });

  it('converges random divergent stores in one round per node (property)', async () => {
    const op = fc.record({
      nodes: fc.integer({ min: 1, max: 7 }),
      key: fc.integer({ min: 0, max: 40 }),
      version: fc.bigInt({ min: 1n, max: 30n }),
      tombstone: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 120 }),
        fc.integer({ min: 2, max: 6 }),
        async (ops, leafBits) => {
          const engines = [new MemoryEngine(), new MemoryEngine(), new MemoryEngine()];
          const newest = new Map<string, Entry>();
          for (const o of ops) {
            const entry = o.tombstone
              ? tombstoneEntry(key(o.key), o.version)
              : // One value per (key, version): versions are unique per write in a real cluster.
                value(o.key, o.version);
            for (let n = 0; n < 3; n++) if ((o.nodes >> n) & 1) await engines[n]!.write(entry);
            newest.set(String(o.key), newer(newest.get(String(o.key)), entry)!);
          }
          const { nodes } = simCluster(engines, {
            leafBits,
            summaryEntriesMax: 4,
            repairsInFlightMax: 2,
            summaryLimits: { examineMax: 7 },
          });
          for (const [index, node] of nodes.entries()) {
            const results = await node.antiEntropy.runOnce();
            assert.ok(results.every((r) => r.error === undefined));
            if (index > 0) continue;
            // Its own round alone gives a node the newest version of every key.
            assert.equal((await dump(engines[0]!)).length, newest.size);
            for (const entry of newest.values()) assert.deepEqual(await engines[0]!.get(entry.key), entry);
          }
          const expected = await dump(engines[0]!);
          assert.deepEqual(await dump(engines[1]!), expected);
          assert.deepEqual(await dump(engines[2]!), expected);
          assert.equal(expected.length, newest.size);
          for (const entry of newest.values()) assert.deepEqual(await engines[0]!.get(entry.key), entry);
        },
      ),
      { numRuns: 40, seed: 20261122 },
    );
  });
});
