import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { dump, simCluster } from '../../../test/support/sim-cluster.js';
import {
  type Engine,
  type Entry,
  LsmEngine,
  MemoryEngine,
  newer,
  tombstoneEntry,
  valueEntry,
} from '../../storage/index.js';

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
    const { nodes } = await simCluster(engines);
    const [a] = nodes;
    const [result] = await a!.antiEntropy.runOnce();
    assert.equal(result?.equal, true);
    assert.equal(result?.localEntries, 300, 'R = 2: both nodes share every key');
    assert.deepEqual(a!.transport.traffic, { writes: 0, reads: 0, digestRequests: 1, summaryRequests: 0 });
    assert.equal(a!.antiEntropy.stats().pulled + a!.antiEntropy.stats().pushed, 0);
    // Only the digest request and its one-byte answer travelled.
    const stats = a!.antiEntropy.stats();
    assert.equal(stats.keysDigested, 300);
    assert.equal(stats.summariesReceived, 0);
    assert.ok(stats.bytesSent > 0 && stats.bytesSent < 200, `bytesSent ${stats.bytesSent}`);
    assert.equal(stats.bytesReceived, 1);
  });

  it('two values of one version: the pair converges on the larger one, copied both ways in one exchange', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    await writeAll(
      engines,
      Array.from({ length: 100 }, (_, i) => value(i, 40n)),
    );
    // Two coordinators stamped version 50 for these keys: A holds one value, B the other.
    const larger = (i: number) => valueEntry(key(i), 50n, Buffer.from(`z-${i}`));
    const smaller = (i: number) => valueEntry(key(i), 50n, Buffer.from(`a-${i}`));
    for (let i = 0; i < 10; i++) {
      await engines[i % 2]!.write(larger(i));
      await engines[(i + 1) % 2]!.write(smaller(i));
    }
    const stored: string[] = [];
    const { nodes } = await simCluster(engines, {
      leafBits: 6,
      // What the node's replica memory learns of each entry pulled (cluster-parts.ts wires it so).
      onStored: (k, version) => stored.push(`${k}@${version}`),
    });
    const [result] = await nodes[0]!.antiEntropy.runOnce();
    assert.equal(result?.equal, false, 'the value hashes make the digests differ');
    assert.equal(result?.pulled, 10);
    assert.equal(stored.length, 10);
    assert.ok(
      stored.every((s) => s.endsWith('@50')),
      stored.join(','),
    );
    assert.equal(result?.pushed, 10);
    for (let i = 0; i < 10; i++) {
      for (const engine of engines) assert.deepEqual(await engine.get(key(i)), larger(i));
    }
    const [again] = await nodes[0]!.antiEntropy.runOnce();
    assert.equal(again?.equal, true);
  });

  it('one value of one version with two expiries: the pair converges on the later one, copied both ways', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    await writeAll(
      engines,
      Array.from({ length: 100 }, (_, i) => value(i, 40n)),
    );
    // Two coordinators stamped version 50 for one value, one with a ttl and one without (or a longer one).
    const later = (i: number) =>
      valueEntry(key(i), 50n, Buffer.from(`v-${i}`), i < 5 ? 0 : 2_000_000_000_000);
    const earlier = (i: number) => valueEntry(key(i), 50n, Buffer.from(`v-${i}`), 1_900_000_000_000);
    for (let i = 0; i < 10; i++) {
      await engines[i % 2]!.write(later(i));
      await engines[(i + 1) % 2]!.write(earlier(i));
    }
    const { nodes } = await simCluster(engines, { leafBits: 6 });
    const [result] = await nodes[0]!.antiEntropy.runOnce();
    assert.equal(result?.equal, false, 'the value hashes, which cover the expiry, make the digests differ');
    assert.equal(result?.pulled, 10);
    assert.equal(result?.pushed, 10);
    for (let i = 0; i < 10; i++) {
      for (const engine of engines) assert.deepEqual(await engine.get(key(i)), later(i));
    }
    const [again] = await nodes[0]!.antiEntropy.runOnce();
    assert.equal(again?.equal, true);
  });

  it('a node that missed writes and deletes converges where writes targeted it, and newer local versions go out', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine(), new MemoryEngine()];
    const base = Array.from({ length: 200 }, (_, i) => value(i, 10n));
    await writeAll(engines, base);
    const [a, b, c] = engines as [MemoryEngine, MemoryEngine, MemoryEngine];
    // C was down: it missed updates (on A and B), deletes (on A only) and new keys (on A and B).
    await writeAll(
      [a, b],
      Array.from({ length: 20 }, (_, i) => value(i, 20n)),
    );
    await writeAll(
      [a],
      Array.from({ length: 15 }, (_, i) => tombstoneEntry(key(100 + i), 30n)),
    );
    const fresh = Array.from({ length: 30 }, (_, i) => value(500 + i, 25n));
    await writeAll([a, b], fresh);
    // ...while C alone took a few newer writes.
    await writeAll(
      [c],
      Array.from({ length: 5 }, (_, i) => value(150 + i, 40n)),
    );

    const { nodes, ring } = await simCluster(engines, { leafBits: 6, summaryEntriesMax: 16 });
    // A new key held by A and B reached C's place in its replica list only if C is not last there:
    // a write stored on A and B may have been made with from = 2, and C third.
    const cUrl = nodes[2]!.url;
    const cTargeted = fresh.filter((e) => ring.replicas(e.key, 3).indexOf(cUrl) < 2);
    const cNotTargeted = fresh.filter((e) => ring.replicas(e.key, 3).indexOf(cUrl) === 2);
    assert.ok(cTargeted.length > 0 && cNotTargeted.length > 0, 'both cases occur');

    const results = await nodes[2]!.antiEntropy.runOnce();
    assert.equal(results.length, 2);
    assert.ok(results.every((r) => r.error === undefined && !r.equal));
    assert.deepEqual(await c.get(key(3)), value(3, 20n));
    assert.deepEqual(await c.get(key(105)), tombstoneEntry(key(105), 30n));
    for (const entry of cTargeted) assert.deepEqual(await c.get(entry.key), entry);
    for (const entry of cNotTargeted) assert.equal(await c.get(entry.key), undefined);
    assert.deepEqual(await a.get(key(152)), value(152, 40n), 'pushed to A');
    assert.deepEqual(await b.get(key(152)), value(152, 40n), 'pushed to B');
    // Only what differed moved. With A first: 20 updates, 15 deletes and the new keys that
    // targeted C pulled, 5 newer values pushed; then with B: the 15 deletes B lacked and the
    // 5 values pushed. An exchange leaves alone the new keys where C comes after that peer:
    // those that did not target C twice, those placed A, C, B once (B's exchange pulls them).
    const stats = nodes[2]!.antiEntropy.stats();
    assert.equal(stats.pulled, 35 + cTargeted.length);
    assert.equal(stats.pushed, 25);
    const aCb = cTargeted.filter((e) => ring.replicas(e.key, 3)[0] === nodes[0]!.url).length;
    assert.equal(stats.leftAlone, 2 * cNotTargeted.length + aCb);

    await nodes[0]!.antiEntropy.runOnce();
    const expected = await dump(a);
    assert.deepEqual(await dump(b), expected);
    const skipped = new Set(cNotTargeted.map((e) => e.key.toString('hex')));
    assert.deepEqual(
      await dump(c),
      expected.filter((line) => !skipped.has(line.split(':')[0]!)),
    );
    for (const node of nodes) {
      const again = await node.antiEntropy.runOnce();
      assert.ok(
        again.every((r) => r.error === undefined && r.pulled + r.pushed === 0),
        'a converged cluster copies nothing more',
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
    const { nodes } = await simCluster(engines);
    await nodes[1]!.antiEntropy.runOnce();
    for (const engine of engines) {
      assert.deepEqual(await engine.get(key(1)), tombstoneEntry(key(1), 10n));
      assert.deepEqual(await engine.get(key(2)), value(2, 20n));
      assert.deepEqual(await engine.get(key(3)), tombstoneEntry(key(3), 10n));
    }
  });

  it('a wiped node (LSM engine) gets back every key older than its birth version', async () => {
    const engines: Engine[] = [await lsm(), await lsm(), await lsm()];
    const entries = Array.from({ length: 400 }, (_, i) =>
      i % 9 === 0 ? tombstoneEntry(key(i), 7n) : value(i, BigInt(5 + (i % 3))),
    );
    await writeAll(engines, entries);
    // Node 1 comes back on an empty directory: its birth version is past every entry.
    await engines[1]!.close();
    const fresh = await lsm();
    engines[1] = fresh;
    assert.deepEqual(await dump(fresh), []);
    const { nodes } = await simCluster(engines, {
      leafBits: 8,
      birthVersionOf: (i) => (i === 1 ? 100n : undefined),
    });

    const results = await nodes[1]!.antiEntropy.runOnce();
    assert.ok(results.every((r) => r.error === undefined));
    assert.equal(nodes[1]!.antiEntropy.stats().pulled, 400);
    // At least the 400 keys and values pulled came in.
    const pulledBytes = (await dump(fresh)).reduce((sum, line) => {
      const [keyHex, , , valueHex] = line.split(':');
      return sum + (keyHex!.length + valueHex!.length) / 2;
    }, 0);
    assert.ok(nodes[1]!.antiEntropy.stats().bytesReceived >= pulledBytes);
    assert.deepEqual(await dump(fresh), await dump(engines[0]!));
    await fresh.flush();
    assert.deepEqual(await dump(fresh), await dump(engines[2]!));
    // The pulls went through the index: the node now agrees with both peers on digests alone.
    const again = await nodes[1]!.antiEntropy.runOnce();
    assert.ok(again.every((r) => r.equal && r.entriesRead === 0));
    for (const node of nodes) await node.engine.close();
  });

  it('never puts a key on a node that no write of it targeted, and fills the ones a write did', async () => {
    const engines = Array.from({ length: 4 }, () => new MemoryEngine());
    const { nodes, ring } = await simCluster(engines);
    // Written after the cluster is up: through the nodes' engines, which keep their indexes current.
    const engineOf = (url: string) => nodes.find((n) => n.url === url)!.engine;
    // Key i: written with from = 1 + (i % 3), so to the first 1..3 nodes of its replica list,
    // and, for odd i, missed by the first of them (stored on the others only).
    const wanted = new Map<number, readonly string[]>();
    for (let i = 0; i < 120; i++) {
      const from = 1 + (i % 3);
      const targets = ring.replicas(key(i), from);
      const stored = i % 2 === 1 && from > 1 ? targets.slice(1) : targets;
      for (const url of stored) await engineOf(url).write(value(i, 3n));
      wanted.set(i, targets);
    }
    for (const node of nodes) await node.antiEntropy.runOnce();
    for (const [i, targets] of wanted) {
      const holders = [];
      for (const node of nodes)
        if ((await engineOf(node.url).get(key(i))) !== undefined) holders.push(node.url);
      assert.deepEqual(holders.sort(), [...targets].sort(), `key ${i}`);
    }
    const stats = nodes.map((n) => n.antiEntropy.stats());
    assert.equal(
      stats.reduce((sum, s) => sum + s.pulled + s.pushed, 0),
      40,
      'each key a first replica missed is copied once',
    );
    assert.ok(stats.every((s) => s.leftAlone > 0));
  });

  it("the node's clock observes the version of every entry pulled", async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    const entries = Array.from({ length: 12 }, (_, i) => value(i, BigInt(100 + i)));
    await writeAll([engines[0]!], entries);
    const observed: bigint[] = [];
    const { nodes } = await simCluster(engines, {
      birthVersionOf: (i) => (i === 1 ? 1000n : undefined),
      clock: { observe: (version) => observed.push(version) > 0 },
    });
    await nodes[1]!.antiEntropy.runOnce();
    assert.deepEqual(
      observed.sort((x, y) => (x < y ? -1 : 1)),
      entries.map((e) => e.version),
    );
  });

  it('bounds the copies per exchange and finishes in later rounds', async () => {
    const engines = [new MemoryEngine(), new MemoryEngine()];
    await writeAll(
      [engines[0]!],
      Array.from({ length: 45 }, (_, i) => value(i, 2n)),
    );
    const { nodes } = await simCluster(engines, {
      repairsPerRoundMax: 10,
      repairsInFlightMax: 3,
      birthVersionOf: (i) => (i === 1 ? 100n : undefined),
    });
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
    await writeAll(engines, [value(1, 1n)]);
    await engines[0]!.write(value(1, 2n));
    const { nodes, sim } = await simCluster(engines);
    sim.setDown(nodes[1]!.url, true);
    const results = await nodes[0]!.antiEntropy.runOnce();
    assert.deepEqual(
      results.map((r) => r.peer),
      [nodes[2]!.url],
    );
    assert.equal(nodes[0]!.antiEntropy.stats().skippedDown, 1);
    assert.deepEqual(await engines[2]!.get(key(1)), value(1, 2n));
    assert.deepEqual(await engines[1]!.get(key(1)), value(1, 1n));
  });

  it('converges random divergent stores in two rounds per node, on the nodes writes targeted (property)', async () => {
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
          const holders = new Map<string, Set<number>>();
          for (const o of ops) {
            const entry = o.tombstone
              ? tombstoneEntry(key(o.key), o.version)
              : // One value per (key, version): versions are unique per write in a real cluster.
                value(o.key, o.version);
            const id = String(o.key);
            for (let n = 0; n < 3; n++) {
              if (((o.nodes >> n) & 1) === 0) continue;
              await engines[n]!.write(entry);
              holders.set(id, (holders.get(id) ?? new Set()).add(n));
            }
            newest.set(id, newer(newest.get(id), entry)!);
          }
          const { nodes, ring } = await simCluster(engines, {
            leafBits,
            summaryEntriesMax: 4,
            repairsInFlightMax: 2,
            summaryLimits: { entriesMax: 7 },
          });
          // The first pass gives every node that a holder's place proves targeted some version;
          // the second spreads the newest among them.
          for (let pass = 0; pass < 3; pass++) {
            for (const node of nodes) {
              const results = await node.antiEntropy.runOnce();
              assert.ok(results.every((r) => r.error === undefined));
              if (pass === 2)
                assert.ok(
                  results.every((r) => r.pulled + r.pushed === 0),
                  'converged',
                );
            }
          }
          for (const [id, entry] of newest) {
            const order = ring.replicas(entry.key, 3);
            const lastHolder = Math.max(...[...holders.get(id)!].map((n) => order.indexOf(nodes[n]!.url)));
            for (const [n, node] of nodes.entries()) {
              const stored = await engines[n]!.get(entry.key);
              if (order.indexOf(node.url) <= lastHolder) assert.deepEqual(stored, entry, `key ${id} on ${n}`);
              else assert.equal(stored, undefined, `key ${id} must not reach ${n}`);
            }
          }
        },
      ),
      propertyParams({ numRuns: 40 }),
    );
  });
});
