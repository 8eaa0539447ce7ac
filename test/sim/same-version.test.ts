/**
 * Two coordinators stamping one version for two writes of a key, scripted on
 * the cluster simulation's parts (which found it: SimReport.sameVersion) so
 * that it replays the same way every time. It checks that the replicas come
 * to one entry: by hints, by anti-entropy's value hashes, by read repair.
 *
 * Two coordinators whose wall clocks read the same millisecond stamp one
 * version for two writes of a key (a hybrid logical clock carries no node
 * id). Here, during a partition, PUT k=a through n0 is acknowledged by n0
 * and n2, and PUT k=b through n1 reaches n1 alone; n1 loses power before its
 * request times out, so it never keeps hints for n0 and n2. After healing,
 * n0's hint gives n1 a, and n1 keeps b (at one version the larger value
 * wins, compareVersions). Versions and kinds agree everywhere, so only the
 * value hashes in the digests and key summaries (exchange.ts) show that n1
 * differs; anti-entropy then copies b to n0 and n2 (and a to n1, which keeps
 * b), and every replica holds b. Without value hashes n0 and n2 would keep a
 * and n1 b for good, and quorum reads would answer a or b by the replicas
 * they ask.
 *
 * The same with one value, written through n0 with a ttl and through n1
 * without: at one version and value the later expiry wins, no expiry the
 * latest of all (compareExpiries), so every replica must end with the value
 * that never expires, and past the ttl every coordinator reads it. Without
 * that tie-break (and the expiry in the value hash) each replica kept the
 * one that came first, and past the ttl reads answered 200 or 404 by the
 * replicas they asked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Entry, isLive } from '../../src/storage/index.js';
import type { SimNode } from './sim-node.js';
import { threeNodeSimulation as simulation } from './three-nodes.js';

const key = Buffer.from('k');
const TTL_MS = 5_000;

/** What each node's engine holds for the key. */
async function held(
  nodes: readonly SimNode[],
  show: (entry: Entry | undefined) => string,
): Promise<string[]> {
  return Promise.all(nodes.map(async (node) => show(await node.engine!.get(key))));
}

/** n1 loses power (before its request times out: no hints of its write), the partition heals, n1 is back. */
async function n1RestartedHealed({ time, network, nodes }: ReturnType<typeof simulation>): Promise<void> {
  nodes[1].crash(7);
  await time.sleep(100);
  network.heal();
  await nodes[1].start();
  await time.sleep(2000);
}

/** Two anti-entropy rounds of every node. */
async function antiEntropyRounds(nodes: readonly SimNode[]): Promise<void> {
  for (let round = 0; round < 2; round++) {
    for (const node of nodes) await node.parts!.antiEntropy.runOnce();
  }
}

test('one version stamped by two coordinators: replicas converge after hints and anti-entropy', async () => {
  const sim = simulation();
  const { time, urls, network, nodes, run } = sim;
  const [n0, n1] = nodes;
  const show = (entry: Entry | undefined) => `${entry?.version}:${entry?.value}`;
  const { apart, replicas } = await run(async () => {
    for (const node of nodes) await node.start();
    // Past every replica's start-up floor (its clock plus the maximum skew), so no write conflicts.
    await time.sleep(1500);
    network.partition([[urls[1]!], [urls[0]!, urls[2]!]]);
    const options = { ack: 2, from: 3 };
    const a = n0.store!.put(key, Buffer.from('a'), options);
    void n1.store!.put(key, Buffer.from('b'), options).catch(() => undefined);
    await a;
    await time.sleep(500);
    const apart = await held(nodes, show);
    await n1RestartedHealed(sim);
    await antiEntropyRounds(nodes);
    return { apart, replicas: await held(nodes, show) };
  });
  // The case itself: a on n0 and n2, b on n1, at one version (else the newer write simply wins).
  assert.deepEqual(
    apart.map((r) => r.split(':')[1]),
    ['a', 'b', 'a'],
    `n0, n1, n2 before healing: ${apart.join(' ')}`,
  );
  assert.equal(new Set(apart.map((r) => r.split(':')[0])).size, 1, `one version: ${apart.join(' ')}`);
  assert.equal(new Set(replicas.map((r) => r.split(':')[0])).size, 1, 'one version everywhere');
  assert.equal(new Set(replicas).size, 1, `replicas hold ${replicas.join(' ')}`);
  assert.ok(
    replicas.every((r) => r.endsWith(':b')),
    `the larger value everywhere: ${replicas.join(' ')}`,
  );
});

/**
 * PUT k=v with a ttl through n0 (acknowledged by n0 and n2) and PUT k=v
 * without one through n1 (cut off), at one version; then `converge` brings
 * the replicas together. Past the ttl every replica must hold v with no
 * expiry, and a read through each coordinator of the replica it asks first
 * must answer it.
 */
async function oneValueTwoExpiries(
  converge: (sim: ReturnType<typeof simulation>) => Promise<void>,
): Promise<void> {
  const sim = simulation();
  const { time, urls, network, nodes, run } = sim;
  const [n0, n1] = nodes;
  const show = (entry: Entry | undefined) =>
    `${entry?.version}:${entry?.value}:expires=${entry?.expiresAtMs}`;
  const outcome = await run(async () => {
    for (const node of nodes) await node.start();
    await time.sleep(1500);
    network.partition([[urls[1]!], [urls[0]!, urls[2]!]]);
    const options = { ack: 2, from: 3 };
    const put = n0.store!.put(key, Buffer.from('v'), { ...options, ttlMs: TTL_MS });
    void n1.store!.put(key, Buffer.from('v'), options).catch(() => undefined);
    await put;
    await time.sleep(500);
    const apart = await held(nodes, show);
    await converge(sim);
    await time.sleep(2 * TTL_MS);
    const replicas = await held(nodes, show);
    const reads: string[] = [];
    for (const node of nodes) {
      const read = await node.store!.get(key, { ack: 1, from: 3 });
      reads.push(`${node.url}: ${read !== undefined && isLive(read, Date.now()) ? read.value : 'absent'}`);
    }
    return { apart, replicas, reads };
  });
  const [, withoutTtl] = outcome.apart;
  assert.ok(
    withoutTtl?.endsWith(':expires=0'),
    `n1 holds the write without a ttl: ${outcome.apart.join(' ')}`,
  );
  assert.equal(
    new Set(outcome.apart.map((r) => r.split(':')[0])).size,
    1,
    `one version, two expiries: ${outcome.apart.join(' ')}`,
  );
  assert.equal(new Set(outcome.replicas).size, 1, `replicas hold ${outcome.replicas.join(' ')}`);
  assert.ok(outcome.replicas[0]!.endsWith(':v:expires=0'), `no expiry wins: ${outcome.replicas.join(' ')}`);
  assert.deepEqual(
    outcome.reads,
    nodes.map((node) => `${node.url}: v`),
  );
}

test('one version and value, with a ttl and without: hints bring every replica to the one without', async () => {
  await oneValueTwoExpiries(async ({ time, network }) => {
    // n1's write times out: it keeps hints for n0 and n2, as n0 keeps one for n1.
    await time.sleep(1500);
    network.heal();
    await time.sleep(2000);
  });
});

test('one version and value, with a ttl and without: anti-entropy brings every replica to the one without', async () => {
  await oneValueTwoExpiries(async (sim) => {
    // n1 loses power before its request times out: no hints of its write; n0's hint gives it the ttl's.
    await n1RestartedHealed(sim);
    await antiEntropyRounds(sim.nodes);
  });
});

test('one version and value, with a ttl and without: a read repairs every replica to the one without', async () => {
  await oneValueTwoExpiries(async (sim) => {
    await n1RestartedHealed(sim);
    await sim.nodes[0].store!.get(key, { ack: 3, from: 3 });
    await sim.time.sleep(500);
  });
});
