import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  closeTestCluster,
  drainCursor,
  eventually,
  makeTestCluster,
  peersInReadOrder,
  type TestClusterOptions,
  type TestNode,
  testRing,
} from '../../../test/support/in-process-cluster.js';
import { limits } from '../../config/limits.js';
import {
  type Entry,
  EntryKind,
  isLive,
  MemoryEngine,
  tombstoneEntry,
  valueEntry,
} from '../../storage/index.js';
import { CorruptionError, isRingkvError, RingkvError } from '../../util/errors.js';
import { HybridClock } from '../clock.js';
import { Receipt } from '../receipt.js';
import { createReplica, type Replica } from './replica.js';

const Q = { ack: 2, from: 3 };
const K = Buffer.from('key');

/**
 * Runs `body` with the process held alive: the coordinator's deadline timer
 * is unref'd (a server's sockets keep the process alive), and a test whose
 * replicas are held has nothing else pending.
 */
async function whileKeptAlive<T>(body: () => Promise<T>): Promise<T> {
  const keepAlive = setTimeout(() => undefined, 10_000);
  try {
    return await body();
  } finally {
    clearTimeout(keepAlive);
  }
}

describe('ClusterStore', () => {
  let nodes: TestNode[] = [];
  function cluster(options: TestClusterOptions): TestNode[] {
    nodes = makeTestCluster(options);
    return nodes;
  }
  /** A 3-node cluster whose node a holds K at version 10, and whose first replica a reads from is held. */
  async function clusterWithHeldReplica(options: Omit<TestClusterOptions, 'nodes'>) {
    const all = cluster({ nodes: 3, ...options });
    const a = all[0]!;
    const [first] = readOrder(all, a);
    await a.engine.write(valueEntry(K, 10n, Buffer.from('v')));
    a.transport.held.add(first.url);
    return { a, first };
  }
  afterEach(async () => {
    await closeTestCluster(nodes);
    nodes = [];
  });

  test('a write answers once ack replicas stored it; a late replica still applies it', async () => {
    const [a, b, c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    a.transport.held.add(b.url);
    a.transport.held.add(c.url);
    let answered = false;
    const put = a.store.put(K, Buffer.from('v'), Q).then(() => {
      answered = true;
    });
    assert.equal(await eventually(() => answered, 50), false, 'one ack (the local one) is not enough');
    a.transport.release(b.url);
    await put;
    assert.equal(a.transport.heldCount(c.url), 1, 'answered without waiting for the third replica');
    assert.equal(await c.engine.get(K), undefined);
    a.transport.release(c.url);
    assert.ok(await eventually(async () => (await c.engine.get(K))?.value.toString() === 'v'));
    const versions = await Promise.all([a, b, c].map(async (n) => (await n.engine.get(K))?.version));
    assert.equal(new Set(versions).size, 1, 'every replica stored the same version');
  });

  test('PUT, DELETE and GET answer 504 as soon as ack is out of reach, not at the deadline', async () => {
    const [a, b, c] = cluster({ nodes: 3, requestTimeoutMs: 600_000 }) as [TestNode, TestNode, TestNode];
    a.transport.held.add(b.url);
    a.transport.down.add(c.url);
    const full = { ack: 3, from: 3 };
    await assert.rejects(a.store.put(K, Buffer.from('v'), full), { code: 'RINGKV_NOT_ENOUGH_REPLICAS' });
    await assert.rejects(a.store.delete(K, full), { code: 'RINGKV_NOT_ENOUGH_REPLICAS' });
    await assert.rejects(a.store.get(K, full), { code: 'RINGKV_NOT_ENOUGH_REPLICAS' });
    // b never answered: the rejections came from c's failure alone.
    assert.equal(a.transport.heldCount(b.url), 3);
    assert.equal((a.store.status().coordinator as { notEnoughReplicas: number }).notEnoughReplicas, 3);
  });

  test('replicas that do not answer by the deadline make the request fail with 504', async () => {
    const [a, b, c] = cluster({ nodes: 3, requestTimeoutMs: 30 }) as [TestNode, TestNode, TestNode];
    a.transport.held.add(b.url);
    a.transport.held.add(c.url);
    await whileKeptAlive(async () => {
      await assert.rejects(a.store.put(K, Buffer.from('v'), Q), {
        code: 'RINGKV_NOT_ENOUGH_REPLICAS',
        message: /1 of 2 required replicas answered within 30 ms/,
      });
      await assert.rejects(a.store.get(K, Q), { code: 'RINGKV_NOT_ENOUGH_REPLICAS' });
    });
  });

  test('one replica down: quorum writes and reads go on', async () => {
    const [a, b, c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    for (const node of [a, b]) node.transport.down.add(c.url);
    await a.store.put(K, Buffer.from('v1'), Q);
    assert.equal((await b.store.get(K, Q))?.value.toString(), 'v1');
    await b.store.delete(K, Q);
    assert.equal((await a.store.get(K, Q))?.kind, EntryKind.Tombstone);
    assert.equal(await c.engine.get(K), undefined, 'the down replica saw nothing');
  });

  test('with from < N a write reaches exactly the key replicas, and any node reads it', async () => {
    const all = cluster({ nodes: 5 });
    const ring = testRing(5);
    for (let i = 0; i < 10; i++) {
      const key = Buffer.from(`placed-${i}`);
      const coordinator = all[i % 5]!;
      await coordinator.store.put(key, Buffer.from(`v${i}`), { ack: 2, from: 2 });
      const replicas = ring.replicas(key, 2);
      for (const node of all) {
        await eventually(
          async () => (await node.engine.get(key)) !== undefined || !replicas.includes(node.url),
        );
        assert.equal((await node.engine.get(key)) !== undefined, replicas.includes(node.url), node.url);
      }
      const reader = all[(i + 2) % 5]!;
      assert.equal((await reader.store.get(key, { ack: 1, from: 2 }))?.value.toString(), `v${i}`);
    }
  });

  /** The nodes `reader` asks for K, in order, when every peer is up: itself, then the others in ring order. */
  function readOrder(all: TestNode[], reader: TestNode): [TestNode, TestNode] {
    const peers = peersInReadOrder(all, reader, K);
    return [peers[0]!, peers[1]!];
  }

  /** The reader holds 10n 'old', its first peer 20n 'new' (the newest), the second 5n 'older'. */
  async function seedThreeVersions(reader: TestNode, first: TestNode, second: TestNode): Promise<void> {
    await reader.engine.write(valueEntry(K, 10n, Buffer.from('old')));
    await first.engine.write(valueEntry(K, 20n, Buffer.from('new')));
    await second.engine.write(valueEntry(K, 5n, Buffer.from('older')));
  }

  test('a read asks only ack replicas, itself first, and repairs the stale ones it asked', async () => {
    const all = cluster({ nodes: 3, readHedgeMs: 60_000 });
    const a = all[0]!;
    const [first, second] = readOrder(all, a);
    await seedThreeVersions(a, first, second);
    const sentBefore = a.transport.requests;
    assert.equal((await a.store.get(K, Q))?.value.toString(), 'new');
    assert.equal(a.transport.requests - sentBefore, 1, 'one message: the local replica is a direct call');
    assert.ok(
      await eventually(async () => (await a.engine.get(K))?.version === 20n),
      'local replica repaired',
    );
    assert.equal((await second.engine.get(K))?.version, 5n, 'a replica not asked is left to anti-entropy');
    assert.equal((a.store.status().coordinator as { readRepairs: number }).readRepairs, 1);
    // Reads advance the clock past what they saw.
    assert.ok(a.clock.now() > 20n);
  });

  test('a replica that fails is replaced at once by the next one', async () => {
    const all = cluster({ nodes: 3, readHedgeMs: 60_000 });
    const a = all[0]!;
    const [first, second] = readOrder(all, a);
    await second.engine.write(valueEntry(K, 20n, Buffer.from('v')));
    a.transport.held.add(first.url);
    const read = a.store.get(K, Q);
    assert.ok(await eventually(() => a.transport.heldCount(first.url) === 1));
    a.transport.failHeld(first.url, new Error('connection reset'));
    assert.equal((await read)?.value.toString(), 'v', 'answered by the replacement');
    assert.ok(
      await eventually(async () => (await a.engine.get(K))?.version === 20n),
      'local replica repaired',
    );
  });

  test('a replica that cannot read its copy (corruption) counts as failed, is replaced, and gets the newest written back', async () => {
    const all = cluster({ nodes: 3, readHedgeMs: 60_000 });
    const a = all[0]!;
    const [first, second] = readOrder(all, a);
    await a.engine.write(valueEntry(K, 20n, Buffer.from('v')));
    await second.engine.write(valueEntry(K, 20n, Buffer.from('v')));
    a.transport.held.add(first.url);
    const read = a.store.get(K, Q);
    assert.ok(await eventually(() => a.transport.heldCount(first.url) === 1));
    a.transport.failHeld(
      first.url,
      new RingkvError('RINGKV_CORRUPTION', 'Damaged block in 000007.sst at offset 4096'),
    );
    assert.equal((await read)?.value.toString(), 'v', 'answered by the replacement');
    // The repair's write to the damaged replica was held with its other calls.
    a.transport.release(first.url);
    assert.ok(
      await eventually(async () => (await first.engine.get(K))?.version === 20n),
      'the damaged replica got the newest version written back',
    );
    assert.equal((a.store.status().coordinator as { readRepairs: number }).readRepairs, 1);
  });

  /** Makes `node`'s own copy unreadable, as a damaged SSTable block would. */
  function damageLocalCopy(node: TestNode): void {
    (node.replica as { read: Replica['read'] }).read = () =>
      Promise.reject(new CorruptionError('/var/lib/ringkv/000123.sst', 4096, 'block checksum mismatch'));
  }

  /** A key whose first replica on the ring of `count` nodes is `url`. */
  function keyOwnedBy(url: string, count: number): Buffer {
    const ring = testRing(count);
    for (let i = 0; i < 1000; i++) {
      const key = Buffer.from(`k${i}`);
      if (ring.replicas(key, 1)[0] === url) return key;
    }
    assert.fail(`no key owned by ${url}`);
  }

  test('a damaged own copy and no other replica to ask: the damage itself (503, as on a node on its own), no receipt', async () => {
    const [a] = cluster({ nodes: 3 }) as [TestNode];
    damageLocalCopy(a);
    const receipt = new Receipt();
    const err = await a.store
      .get(keyOwnedBy(a.url, 3), { ack: 1, from: 1, receipt })
      .catch((e: unknown) => e);
    // http/errors.ts answers it 503 with no detail and logs the file and offset.
    assert.ok(err instanceof CorruptionError, String(err));
    assert.equal(receipt.sealed, false, 'docs/api.md: no receipt on this 503');
    assert.equal((a.store.status().coordinator as { notEnoughReplicas: number }).notEnoughReplicas, 0);
  });

  test('a damaged copy among other failures: 504 whose reason says only "a damaged file"; the log names it', async () => {
    const lines: string[] = [];
    const all = cluster({ nodes: 3, log: (url, line) => lines.push(`${url} ${line}`) });
    const a = all[0]!;
    damageLocalCopy(a);
    const key = keyOwnedBy(a.url, 3);
    const other = testRing(3).replicas(key, 2)[1]!;
    a.transport.down.add(other);
    const err = await a.store.get(key, { ack: 1, from: 2 }).catch((e: unknown) => e);
    assert.ok(isRingkvError(err, 'RINGKV_NOT_ENOUGH_REPLICAS'), String(err));
    assert.equal(
      err.message,
      `Only 0 of 1 required replicas answered; 2 failed: ${a.url}: RINGKV_CORRUPTION: a damaged file; ${other}: Peer ${other} is down`,
    );
    assert.ok(
      lines.some(
        (line) => line.startsWith(a.url) && line.includes('/var/lib/ringkv/000123.sst at offset 4096'),
      ),
      `the node's log names the file: ${lines.join(' | ')}`,
    );
  });

  test('504 at the deadline after one replica failed (disk full) and another hung: the reason names the disk-full one', async () => {
    const [a, b, c] = cluster({
      nodes: 3,
      requestTimeoutMs: 30,
      wrapReplica: (url, replica) =>
        url === 'http://node-1:1'
          ? {
              read: (key) => replica.read(key),
              scan: (start, end, limit) => replica.scan(start, end, limit),
              write: () =>
                Promise.reject(
                  new RingkvError('RINGKV_NO_SPACE', 'Disk full: WAL write failed: /data/000012.log: ENOSPC'),
                ),
            }
          : replica,
    }) as [TestNode, TestNode, TestNode];
    assert.equal(b.url, 'http://node-1:1');
    a.transport.held.add(c.url);
    await whileKeptAlive(async () => {
      await assert.rejects(a.store.put(K, Buffer.from('v'), Q), {
        code: 'RINGKV_NOT_ENOUGH_REPLICAS',
        message: `Only 1 of 2 required replicas answered within 30 ms; 1 failed: ${b.url}: Disk full: WAL write failed: /data/000012.log: ENOSPC`,
      });
    });
  });

  test('a slow replica: after readHedgeMs the rest are asked; its late answer still repairs', async () => {
    const all = cluster({ nodes: 3, readHedgeMs: 5 });
    const a = all[0]!;
    const [first, second] = readOrder(all, a);
    await seedThreeVersions(a, first, second);
    a.transport.held.add(first.url);
    const read = await whileKeptAlive(() => a.store.get(K, Q));
    assert.equal(read?.value.toString(), 'old', 'the newest of the two answers that came');
    assert.equal(a.transport.heldCount(first.url), 1, 'the slow replica has not answered yet');
    a.transport.release(first.url);
    for (const node of [a, second]) {
      assert.ok(await eventually(async () => (await node.engine.get(K))?.version === 20n), node.url);
    }
    assert.equal((a.store.status().coordinator as { readRepairs: number }).readRepairs, 2);
  });

  test('hedges are budgeted: when many reads are slow, most wait for the replicas they asked', async () => {
    const { a, first } = await clusterWithHeldReplica({ readHedgeMs: 5 });
    await whileKeptAlive(async () => {
      const reads = Array.from({ length: 60 }, () => a.store.get(K, Q));
      const coordinator = () =>
        a.store.status().coordinator as { readHedges: number; readHedgesSkipped: number };
      assert.ok(
        await eventually(async () => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return coordinator().readHedges + coordinator().readHedgesSkipped === 60;
        }),
      );
      const { readHedges, readHedgesSkipped } = coordinator();
      // The budget was full (20): the refills of reads that start meanwhile cannot raise it past that.
      assert.equal(readHedges, 20);
      assert.equal(readHedgesSkipped, 40);
      a.transport.release(first.url);
      for (const read of await Promise.all(reads)) assert.equal(read?.value.toString(), 'v');
    });
  });

  test('a replica that hangs: reads the budget did not hedge ask the rest at half their deadline', async () => {
    const { a } = await clusterWithHeldReplica({ readHedgeMs: 5, requestTimeoutMs: 400 });
    await whileKeptAlive(async () => {
      const reads = await Promise.all(Array.from({ length: 40 }, () => a.store.get(K, Q)));
      for (const read of reads) assert.equal(read?.value.toString(), 'v', 'answered, not 504');
      const coordinator = a.store.status().coordinator as Record<string, number>;
      assert.equal(coordinator.readHedges, 20);
      assert.equal(coordinator.readHedgesSkipped, 20);
      assert.equal(coordinator.readHedgesLate, 20);
      assert.equal(coordinator.notEnoughReplicas, 0);
    });
  });

  test('a read repairs a replica that has no version, and reports a tombstone as the newest', async () => {
    const [a, b, c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    await b.engine.write(valueEntry(K, 10n, Buffer.from('v')));
    await c.engine.write(tombstoneEntry(K, 30n));
    const read = await a.store.get(K, { ack: 3, from: 3 });
    assert.equal(read?.kind, EntryKind.Tombstone);
    for (const node of [a, b]) {
      assert.ok(await eventually(async () => (await node.engine.get(K))?.kind === EntryKind.Tombstone));
    }
  });

  test('a read repairs one version and value held with an earlier expiry: every replica ends with the later one', async () => {
    const [a, b, c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    // Two coordinators stamped version 10 for one value, one with a ttl: b holds that, a and c the other.
    const lasting = valueEntry(K, 10n, Buffer.from('v'));
    await b.engine.write(valueEntry(K, 10n, Buffer.from('v'), Date.now() + 60_000));
    for (const node of [a, c]) await node.engine.write(lasting);
    const read = await a.store.get(K, { ack: 3, from: 3 });
    assert.equal(read?.expiresAtMs, 0, 'the winner: no expiry is later than any');
    assert.ok(
      await eventually(async () => (await b.engine.get(K))?.expiresAtMs === 0),
      'the replica with the ttl repaired',
    );
    assert.equal((a.store.status().coordinator as { readRepairs: number }).readRepairs, 1);
  });

  test('writes and reads through skewed nodes: each read returns the write answered before it', async () => {
    const all = cluster({ nodes: 3, offsetsMs: [1000, 0, -1000] });
    for (let i = 0; i < 30; i++) {
      const writer = all[i % 3]!;
      const reader = all[(i + 1) % 3]!;
      if (i % 2 === 0) await writer.store.put(K, Buffer.from(`v${i}`), Q);
      else await writer.store.delete(K, Q);
      const read = await reader.store.get(K, Q);
      if (i % 2 === 0) assert.equal(read?.value.toString(), `v${i}`, `iteration ${i}`);
      else assert.ok(read === undefined || !isLive(read, Date.now()), `iteration ${i}: delete lost`);
    }
  });

  test('a write stamped below one that was answered before it is re-stamped (clock skew), so it wins', async () => {
    // Nodes 0 and 1 take turns writing; node 0 runs 1 s ahead. Each writer's
    // copy to the other is held back until after the other's next write, so
    // the clock behind never learns the newer version from a replica write or
    // a read: only the conflict answers tell it.
    const all = cluster({ nodes: 3, offsetsMs: [1000, 0, 0] });
    const witness = all[2]!;
    for (let i = 0; i < 30; i++) {
      const writer = all[i % 2]!;
      const next = all[(i + 1) % 2]!;
      writer.transport.held.add(next.url);
      if (i % 2 === 0) await writer.store.put(K, Buffer.from(`v${i}`), Q);
      else await writer.store.delete(K, Q);
      // The witness acknowledged write i (the writer and the witness are the only two that could).
      const stored = await witness.engine.get(K);
      if (i % 2 === 0) assert.equal(stored?.value.toString(), `v${i}`, `iteration ${i}`);
      else assert.equal(stored?.kind, EntryKind.Tombstone, `iteration ${i}: the delete lost`);
      // The previous writer's held copy to this writer arrives only now, late.
      next.transport.release(writer.url);
    }
    const retries = (all[1]!.store.status().coordinator as { conflictRetries: number }).conflictRetries;
    assert.ok(retries > 0, 'the node behind had to re-stamp');
    // Once every copy arrived, all replicas agree on the last write (a delete).
    all[1]!.transport.release(all[0]!.url);
    for (const node of all) {
      assert.ok(
        await eventually(async () => (await node.engine.get(K))?.kind === EntryKind.Tombstone),
        node.url,
      );
    }
  });

  test('conflict retries are bounded: a replica that always conflicts makes the write fail', async () => {
    const writes = new Map<string, number>();
    const all = cluster({
      nodes: 3,
      conflictRetriesMax: 2,
      wrapReplica: (url, replica) => alwaysConflicting(url, replica, writes),
    });
    const a = all[0]!;
    await assert.rejects(a.store.put(K, Buffer.from('v'), { ack: 2, from: 3 }), {
      code: 'RINGKV_NOT_ENOUGH_REPLICAS',
      message: /kept conflicting: 3 attempts/,
    });
    // Every attempt went to both peers, with a new version each time.
    for (const node of all.slice(1)) assert.equal(writes.get(node.url), 3);
    const status = a.store.status().coordinator as { conflictRetries: number; conflicts: number };
    assert.equal(status.conflictRetries, 2);
  });

  test('a conflict that arrives after the answer is only observed by the clock', async () => {
    const writes = new Map<string, number>();
    const all = cluster({ nodes: 3, wrapReplica: (url, replica) => alwaysConflicting(url, replica, writes) });
    const [a, b, c] = all as [TestNode, TestNode, TestNode];
    a.transport.held.add(b.url);
    a.transport.held.add(c.url);
    await a.store.put(K, Buffer.from('v'), { ack: 1, from: 3 });
    const stamped = (await a.engine.get(K))!.version;
    a.transport.release(b.url);
    a.transport.release(c.url);
    const status = () => a.store.status().coordinator as { conflicts: number; conflictRetries: number };
    assert.ok(await eventually(() => status().conflicts === 2));
    assert.equal(status().conflictRetries, 0);
    // The conflict carried the stamped version plus 1 s: the clock moved past it.
    assert.ok(a.clock.now() > stamped + (1000n << 16n));
  });

  test('a cluster range merges every node: each key once, at its newest version', async () => {
    const all = cluster({ nodes: 3, scanPageEntries: 2 });
    const expected = new Map<string, Entry>();
    for (let i = 0; i < 30; i++) {
      const key = Buffer.from(`r${String(i).padStart(2, '0')}`);
      for (const [n, node] of all.entries()) {
        if ((i + n) % 3 === 0) continue;
        const entry =
          (i + n) % 4 === 0
            ? tombstoneEntry(key, BigInt(100 + i + n))
            : valueEntry(key, BigInt(100 + i + n), Buffer.from(`${i}@${n}`));
        await node.engine.write(entry);
        if (
          expected.get(key.toString()) === undefined ||
          expected.get(key.toString())!.version < entry.version
        ) {
          expected.set(key.toString(), entry);
        }
      }
    }
    const got = await drainCursor(
      all[1]!.store.scanCluster({ start: Buffer.from('r05'), end: Buffer.from('r25') }),
    );
    const want = [...expected.entries()].filter(([k]) => k >= 'r05' && k < 'r25').map(([, e]) => e);
    assert.deepEqual(
      got.map((e) => [e.key.toString(), e.version, e.kind]),
      want.map((e) => [e.key.toString(), e.version, e.kind]),
    );
  });

  test('a cluster range of large values hands out batches of about scanBatchBytesMax, every key once', async () => {
    const all = cluster({ nodes: 3 });
    const value = Buffer.alloc(100 * 1024, 7);
    for (let i = 0; i < 30; i++) {
      const key = Buffer.from(`big${String(i).padStart(2, '0')}`);
      for (const node of all) await node.engine.write(valueEntry(key, BigInt(100 + i), value));
    }
    const cursor = all[0]!.store.scanCluster({ start: Buffer.from('big') });
    const keys: string[] = [];
    try {
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        const bytes = batch.reduce((sum, e) => sum + e.key.length + e.value.length, 0);
        // At most one entry past the bound.
        assert.ok(bytes < limits.scanBatchBytesMax + value.length + 16, `a batch of ${bytes} bytes`);
        keys.push(...batch.map((e) => e.key.toString()));
      }
    } finally {
      await cursor.close();
    }
    assert.equal(keys.length, 30);
    assert.equal(new Set(keys).size, 30);
  });

  test('a peer cuts a range page at about one frame of bytes', async () => {
    const engine = new MemoryEngine();
    const replica = createReplica(engine, new HybridClock(), { clockSkewMaxMs: 1000 });
    const value = Buffer.alloc(3 * 1024 * 1024, 1);
    for (let i = 0; i < 5; i++) await engine.write(valueEntry(Buffer.from(`v${i}`), BigInt(10 + i), value));
    const page = await replica.scan(Buffer.from('v'), undefined, 128);
    // 3 entries pass one frame (8 MiB and a little): the page ends there, and says more follow.
    assert.equal(page.entries.length, 3);
    assert.equal(page.more, true);
  });

  test('a cluster range with a node down is refused before the first entry', async () => {
    const [a, , c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    await a.store.put(K, Buffer.from('v'), Q);
    a.transport.down.add(c.url);
    const cursor = a.store.scanCluster({ start: Buffer.from('a') });
    await assert.rejects(cursor.next(), { code: 'RINGKV_NOT_ENOUGH_REPLICAS', message: /needs every node/ });
    await cursor.close();
  });
});

/** Applies each write, then answers a conflict 1 s past the written version. */
function alwaysConflicting(url: string, replica: Replica, writes: Map<string, number>) {
  return {
    write: async (entry: Entry) => {
      writes.set(url, (writes.get(url) ?? 0) + 1);
      await replica.write(entry);
      return entry.version + (1000n << 16n);
    },
    read: (key: Buffer) => replica.read(key),
    scan: (start: Buffer, end: Buffer | undefined, limit: number) => replica.scan(start, end, limit),
  };
}
