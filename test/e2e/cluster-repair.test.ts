/**
 * The repair loops in running nodes (separate processes): hinted handoff
 * hands writes a stopped replica missed to it once it is back, from disk
 * across a coordinator restart and on the coordinator's SIGTERM; anti-entropy
 * refills a node whose data directory was wiped, and never spreads a key past
 * the nodes its writes targeted. Every check reads a node's LOCAL range
 * (/v0/entities without scope), which nothing but a replica write fills.
 *
 * Nodes: A (0) coordinates the drain test and hands hints off only on
 * shutdown (RINGKV_HINT_HANDOFF_INTERVAL_MS set far out); B (1) coordinates
 * the others with the default handoff schedule; C (2) is the one that misses
 * writes.
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ring } from '../../src/cluster/ring/index.js';
import { rangeEntries, startCluster, storeStatus, type TestCluster } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, sleep, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const A = 0;
const B = 1;
const C = 2;

interface HintStatus {
  pending: Record<string, { entries: number }>;
  reloaded: number;
  handoff: { delivered: number };
}

interface AntiEntropyStatus {
  intervalMs: number;
  rounds: number;
  exchanges: number;
  equalExchanges: number;
  failedExchanges: number;
  tree: { state: string; entries?: number; rebuilds: number; lastRebuildReason?: string };
  pulled: number;
  pushed: number;
  leftAlone: number;
  birthVersion: string;
}

/** Polls `check` every 100 ms until it returns true, for at most `timeoutMs`; false if it never did. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    if (await check()) return true;
    await sleep(100);
  }
  return check();
}

function keys(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
}

describe('repair in a running cluster', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  describe('hinted handoff (anti-entropy off)', () => {
    let cluster: TestCluster;
    const url = (i: number) => cluster.urls[i]!;
    const put = (i: number, key: string, value: string) =>
      httpRequest(`${url(i)}${entityPath(key)}`, { method: 'PUT', body: value });
    /** Node i's own entries with the prefix, as [key, value] pairs. */
    const local = async (i: number, prefix: string) =>
      (await rangeEntries(cluster.nodes[i]!.port, `/v0/entities?start=${prefix}-&end=${prefix}.`)).entries;
    const hintStatus = async (i: number) => (await storeStatus(url(i))).hints as HintStatus;
    const pendingFor = async (i: number, peer: number) =>
      (await hintStatus(i)).pending[url(peer)]?.entries ?? 0;
    /** C stopped, `count` keys written at quorum through `coordinator`, kept as hints there. */
    const writeWhileCDown = async (coordinator: number, prefix: string, count: number) => {
      assert.deepEqual(await stopNode(cluster.nodes[C]!), { code: 0, signal: null });
      const before = await pendingFor(coordinator, C);
      const written = keys(prefix, count).map((key): [string, string] => [key, `${key}-value`]);
      for (const [key, value] of written) assert.equal((await put(coordinator, key, value)).status, 201);
      // Hints are kept off the request path: wait until they are on disk.
      assert.ok(
        await eventually(async () => (await pendingFor(coordinator, C)) >= before + count, 5000),
        'the coordinator keeps a hint per missed write',
      );
      return written;
    };

    before(async () => {
      cluster = await startCluster({
        count: 3,
        args: ['--sync', 'off', '--anti-entropy-interval', '0', '--request-timeout', '2000'],
        envFor: (i) => (i === A ? { RINGKV_HINT_HANDOFF_INTERVAL_MS: '600000' } : undefined),
      });
    });

    it('a replica that was down gets the writes it missed once it is back', async () => {
      const written = await writeWhileCDown(B, 'missed', 20);
      // C was stopped before the writes, so only a handoff can bring them. (C's range is not read
      // right after the restart: B may hand off before the read, which would make that check racy.)
      const deliveredBefore = (await hintStatus(B)).handoff.delivered;
      await cluster.restart(C);
      assert.ok(
        await eventually(async () => (await local(C, 'missed')).length === written.length, 10_000),
        `C's own range: ${JSON.stringify(await local(C, 'missed'))}`,
      );
      assert.deepEqual(await local(C, 'missed'), written);
      const hints = await hintStatus(B);
      assert.equal(hints.pending[url(C)], undefined, 'nothing left for C');
      assert.ok(hints.handoff.delivered - deliveredBefore >= written.length, 'B handed them off');
      const antiEntropy = (await storeStatus(url(C))).antiEntropy as AntiEntropyStatus;
      assert.equal(antiEntropy.intervalMs, 0);
      assert.equal(antiEntropy.rounds, 0, 'hints did it: anti-entropy is off');
    });

    it('hints survive a restart of the coordinator', async () => {
      const written = await writeWhileCDown(B, 'restarted', 15);
      // B stops while C is still away: its shutdown cannot hand them off, so they stay on disk.
      assert.deepEqual(await stopNode(cluster.nodes[B]!), { code: 0, signal: null });
      assert.match(cluster.nodes[B]!.stderr, /Hints handed off on shutdown: 0; 15 left on disk/);
      await cluster.restart(C);
      await cluster.restart(B);
      assert.ok((await hintStatus(B)).reloaded >= written.length, 'B found the hints in its files');
      assert.ok(
        await eventually(async () => (await local(C, 'restarted')).length === written.length, 10_000),
        `C's own range: ${JSON.stringify(await local(C, 'restarted'))}`,
      );
      assert.deepEqual(await local(C, 'restarted'), written);
    });

    it('a replica that is back gets its hints at once; what SIGTERM finds pending is handed off before exit', async () => {
      const written = await writeWhileCDown(A, 'drained', 10);
      // A's handoff schedule is far out: what reaches C comes from C's return or from A's shutdown.
      await cluster.restart(C);
      assert.deepEqual(await stopNode(cluster.nodes[A]!), { code: 0, signal: null });
      assert.doesNotMatch(cluster.nodes[A]!.stderr, /[1-9]\d* left on disk/);
      // Delivered means stored on C before A exited.
      assert.deepEqual(await local(C, 'drained'), written);
    });
  });

  describe('anti-entropy (every 500 ms)', () => {
    let cluster: TestCluster;
    const url = (i: number) => cluster.urls[i]!;
    const put = (i: number, key: string, value: string, params: Record<string, number> = {}) =>
      httpRequest(`${url(i)}${entityPath(key, params)}`, { method: 'PUT', body: value });
    const local = async (i: number, prefix: string) =>
      (await rangeEntries(cluster.nodes[i]!.port, `/v0/entities?start=${prefix}-&end=${prefix}.`)).entries;
    const antiEntropyOf = async (i: number) => (await storeStatus(url(i))).antiEntropy as AntiEntropyStatus;

    before(async () => {
      cluster = await startCluster({ count: 3, args: ['--sync', 'off', '--anti-entropy-interval', '500'] });
    });

    it('keeps a key written with from=1 on one node and with from=2 on two, round after round', async () => {
      const placed = [
        ...keys('one', 12).map((key) => [key, 1] as const),
        ...keys('two', 12).map((key) => [key, 2] as const),
      ];
      for (const [i, [key, from]] of placed.entries()) {
        assert.equal((await put(i % 3, key, 'x', { ack: from, from })).status, 201);
      }
      // Two more rounds on every node after the writes: the second compares what the first saw.
      const roundsAfterWrites = await Promise.all(
        [A, B, C].map(async (i) => (await antiEntropyOf(i)).rounds),
      );
      assert.ok(
        await eventually(async () => {
          const now = await Promise.all([A, B, C].map(async (i) => (await antiEntropyOf(i)).rounds));
          return now.every((rounds, i) => rounds >= roundsAfterWrites[i]! + 2);
        }, 15_000),
        'every node ran two rounds',
      );
      for (const [prefix, from] of [
        ['one', 1],
        ['two', 2],
      ] as const) {
        const holders = new Map<string, number>();
        for (const i of [A, B, C])
          for (const [key] of await local(i, prefix)) holders.set(key, (holders.get(key) ?? 0) + 1);
        assert.equal(holders.size, 12);
        for (const [key, count] of holders) assert.equal(count, from, `${key} is on ${count} nodes`);
      }
      const leftAlone = await Promise.all([A, B, C].map(async (i) => (await antiEntropyOf(i)).leftAlone));
      assert.ok(
        leftAlone.some((n) => n > 0),
        'anti-entropy saw keys on one side only and left them there',
      );
    });

    it('a node whose data directory was wiped gets its keys back', async () => {
      const written = keys('wiped', 40).map((key): [string, string] => [key, `${key}-value`]);
      for (const [i, [key, value]] of written.entries())
        assert.equal((await put(i % 3, key, value)).status, 201);
      const deleted = written.filter((_, i) => i % 8 === 0);
      for (const [key] of deleted) {
        assert.equal((await httpRequest(`${url(B)}${entityPath(key)}`, { method: 'DELETE' })).status, 202);
      }
      const live = written.filter((_, i) => i % 8 !== 0);
      assert.deepEqual(await local(C, 'wiped'), live, 'C held them all');

      const pushedBefore = (await antiEntropyOf(A)).pushed + (await antiEntropyOf(B)).pushed;
      assert.deepEqual(await stopNode(cluster.nodes[C]!), { code: 0, signal: null });
      await rm(cluster.nodes[C]!.dataDir, { recursive: true, force: true });
      await cluster.restart(C);
      assert.notEqual((await antiEntropyOf(C)).birthVersion, '0', 'C knows it started empty');
      assert.ok(
        await eventually(async () => (await local(C, 'wiped')).length === live.length, 15_000),
        `C's own range: ${(await local(C, 'wiped')).length} of ${live.length}`,
      );
      assert.deepEqual(await local(C, 'wiped'), live);
      // No write or read reached C meanwhile: anti-entropy copied them (C pulling, A and B pushing).
      const pushed = (await antiEntropyOf(A)).pushed + (await antiEntropyOf(B)).pushed - pushedBefore;
      assert.ok((await antiEntropyOf(C)).pulled + pushed >= live.length);
    });
  });

  describe('anti-entropy hash tree on disk', () => {
    let cluster: TestCluster;
    const url = (i: number) => cluster.urls[i]!;
    const local = async (i: number, prefix: string) =>
      (await rangeEntries(cluster.nodes[i]!.port, `/v0/entities?start=${prefix}-&end=${prefix}.`)).entries;
    const antiEntropyOf = async (i: number) => (await storeStatus(url(i))).antiEntropy as AntiEntropyStatus;

    before(async () => {
      cluster = await startCluster({ count: 3, args: ['--sync', 'off', '--anti-entropy-interval', '500'] });
    });

    it('a tree file damaged while the node is stopped is named, rebuilt, and anti-entropy repairs after', async () => {
      const first = keys('tree', 30);
      for (const key of first) {
        assert.equal(
          (await httpRequest(`${url(A)}${entityPath(key)}`, { method: 'PUT', body: key })).status,
          201,
        );
      }
      assert.ok(
        await eventually(async () => (await local(C, 'tree')).length === first.length, 10_000),
        'C holds the first keys',
      );
      // C stops cleanly (its tree goes to disk); keys written meanwhile reach A and B, and their hints are deleted.
      assert.deepEqual(await stopNode(cluster.nodes[C]!), { code: 0, signal: null });
      const missed = keys('missed', 12);
      for (const key of missed) {
        const answer = await httpRequest(`${url(A)}${entityPath(key, { ack: 2, from: 3 })}`, {
          method: 'PUT',
          body: key,
        });
        assert.equal(answer.status, 201);
      }
      for (const i of [A, B]) assert.deepEqual(await stopNode(cluster.nodes[i]!), { code: 0, signal: null });
      for (const i of [A, B])
        await rm(join(cluster.nodes[i]!.dataDir, 'hints'), { recursive: true, force: true });
      const treePath = join(cluster.nodes[C]!.dataDir, 'aae', 'TREE');
      const bytes = await readFile(treePath);
      bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0x08;
      await writeFile(treePath, bytes);

      for (const i of [A, B, C]) await cluster.restart(i);
      const stderr = cluster.nodes[C]!.stderr;
      assert.ok(
        stderr.split('\n').some((line) => line.includes(treePath) && line.includes('checksum mismatch')),
        `C's log names ${treePath} and the checksum mismatch:\n${stderr}`,
      );
      for (const i of [A, B]) {
        assert.ok(!cluster.nodes[i]!.stderr.includes('checksum mismatch'), 'A and B adopt their trees');
        assert.equal((await antiEntropyOf(i)).tree.rebuilds, 0);
      }
      // Anti-entropy gives C the keys where it is not last in the replica list (the last one is hints' job).
      const ring = new Ring(cluster.urls);
      const repairable = missed.filter((key) => ring.replicas(Buffer.from(key), 3).indexOf(url(C)) < 2);
      assert.ok(repairable.length > 0, 'some missed keys place C before A or B');
      assert.ok(
        await eventually(async () => (await local(C, 'missed')).length === repairable.length, 20_000),
        `C's own range after the rebuild: ${(await local(C, 'missed')).length} of ${repairable.length}`,
      );
      assert.deepEqual(
        (await local(C, 'missed')).map(([key]) => key),
        repairable,
      );
      const tree = (await antiEntropyOf(C)).tree;
      assert.equal(tree.rebuilds, 1);
      assert.match(tree.lastRebuildReason ?? '', /checksum mismatch/);
      // Converged: C's rounds go on, succeed and copy nothing more (the keys where C is last stay left alone).
      assert.ok(
        await eventually(async () => {
          const before = await antiEntropyOf(C);
          await sleep(1200);
          const now = await antiEntropyOf(C);
          return (
            now.rounds > before.rounds &&
            now.pulled === before.pulled &&
            now.failedExchanges === before.failedExchanges &&
            now.leftAlone > before.leftAlone
          );
        }, 20_000),
        'C settles with A and B',
      );
    });
  });
});
