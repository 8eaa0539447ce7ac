/**
 * Receipts (../receipt.ts) as the coordinator fills them in: replicas in
 * the order they answered with their outcomes, the winning or written
 * version, and the read repair, on an in-process cluster whose replicas can
 * be held, failed or down.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  closeTestCluster,
  eventually,
  makeTestCluster,
  peersInReadOrder,
  type TestClusterOptions,
  type TestNode,
} from '../../../test/support/in-process-cluster.js';
import { type Entry, valueEntry } from '../../storage/index.js';
import { Receipt } from '../receipt.js';
import type { Replica } from './replica.js';

const K = Buffer.from('key');

/** The receipt's replicas as `url=outcome` strings, as the HTTP header lists them. */
const listed = (receipt: Receipt) => receipt.replicas.map((r) => `${r.node}=${r.outcome}`);

describe('receipts', () => {
  let nodes: TestNode[] = [];
  function cluster(options: TestClusterOptions): TestNode[] {
    nodes = makeTestCluster(options);
    return nodes;
  }
  /** The peers `reader` asks for K, in order, when every peer is up. */
  const readOrder = (reader: TestNode) => peersInReadOrder(nodes, reader, K) as [TestNode, TestNode];
  afterEach(async () => {
    await closeTestCluster(nodes);
    nodes = [];
  });

  test('a read that finds a stale replica: the winner, who was stale, and the repair started', async () => {
    const [a] = cluster({ nodes: 3, readHedgeMs: 60_000 }) as [TestNode];
    const [first] = readOrder(a);
    await a.engine.write(valueEntry(K, 10n, Buffer.from('old')));
    await first.engine.write(valueEntry(K, 20n, Buffer.from('new')));
    const receipt = new Receipt();
    assert.equal((await a.store.get(K, { ack: 2, from: 3, receipt }))?.value.toString(), 'new');
    assert.equal(receipt.version, 20n);
    // The local replica is a direct call: it answers first.
    assert.deepEqual(listed(receipt), [`${a.url}=stale`, `${first.url}=ok`]);
    assert.equal(receipt.readRepair, 'started');
    assert.ok(await eventually(async () => (await a.engine.get(K))?.version === 20n));
  });

  test('a read where the replicas agree: every one ok, no repair; none at all: no version', async () => {
    const [a, b, c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    for (const node of [a, b, c]) await node.engine.write(valueEntry(K, 7n, Buffer.from('v')));
    const agreed = new Receipt();
    await a.store.get(K, { ack: 3, from: 3, receipt: agreed });
    assert.equal(agreed.version, 7n);
    assert.deepEqual(
      agreed.replicas.map((r) => r.outcome),
      ['ok', 'ok', 'ok'],
    );
    assert.deepEqual(new Set(agreed.replicas.map((r) => r.node)), new Set([a.url, b.url, c.url]));
    assert.equal(agreed.readRepair, 'none');

    const absent = new Receipt();
    assert.equal(await a.store.get(Buffer.from('absent'), { ack: 2, from: 3, receipt: absent }), undefined);
    assert.equal(absent.version, undefined);
    assert.deepEqual(
      absent.replicas.map((r) => r.outcome),
      ['ok', 'ok'],
    );
    assert.equal(absent.readRepair, 'none');
  });

  test('a read whose replica fails: missing, failed, the replacement ok, in the order they answered', async () => {
    const [a] = cluster({ nodes: 3, readHedgeMs: 60_000 }) as [TestNode];
    const [first, second] = readOrder(a);
    await second.engine.write(valueEntry(K, 20n, Buffer.from('v')));
    a.transport.held.add(first.url);
    const receipt = new Receipt();
    const read = a.store.get(K, { ack: 2, from: 3, receipt });
    assert.ok(await eventually(() => a.transport.heldCount(first.url) === 1));
    a.transport.failHeld(first.url, new Error('connection reset'));
    assert.equal((await read)?.version, 20n);
    assert.deepEqual(listed(receipt), [`${a.url}=missing`, `${first.url}=failed`, `${second.url}=ok`]);
    assert.equal(receipt.readRepair, 'started');
  });

  test('a read answered before a hedged replica: that one pending, and the repair too', async () => {
    const [a] = cluster({ nodes: 3, readHedgeMs: 5 }) as [TestNode];
    const [first, second] = readOrder(a);
    await a.engine.write(valueEntry(K, 10n, Buffer.from('v')));
    await second.engine.write(valueEntry(K, 10n, Buffer.from('v')));
    a.transport.held.add(first.url);
    const keepAlive = setTimeout(() => undefined, 10_000);
    const receipt = new Receipt();
    try {
      await a.store.get(K, { ack: 2, from: 3, receipt });
    } finally {
      clearTimeout(keepAlive);
    }
    assert.deepEqual(listed(receipt), [`${a.url}=ok`, `${second.url}=ok`, `${first.url}=pending`]);
    assert.equal(receipt.readRepair, 'pending');
    // What the receipt said is kept when the late answer comes: only the repair's outcome is filled in.
    a.transport.release(first.url);
    assert.ok(await eventually(() => receipt.readRepair !== 'pending'));
    assert.equal(receipt.readRepair, 'started');
    assert.deepEqual(listed(receipt), [`${a.url}=ok`, `${second.url}=ok`, `${first.url}=pending`]);
  });

  test('a write: the version stored, the replicas that acknowledged, the one not yet answered pending', async () => {
    const [a, b, c] = cluster({ nodes: 3 }) as [TestNode, TestNode, TestNode];
    a.transport.held.add(c.url);
    const receipt = new Receipt();
    await a.store.put(K, Buffer.from('v'), { ack: 2, from: 3, receipt });
    assert.equal(receipt.version, (await a.engine.get(K))?.version);
    assert.equal(receipt.readRepair, undefined);
    assert.deepEqual(new Set(listed(receipt).slice(0, 2)), new Set([`${a.url}=ok`, `${b.url}=ok`]));
    assert.equal(listed(receipt)[2], `${c.url}=pending`);

    const deleted = new Receipt();
    await a.store.delete(K, { ack: 2, from: 3, receipt: deleted });
    assert.ok(deleted.version! > receipt.version!);
    assert.equal(deleted.version, (await b.engine.get(K))?.version);
  });

  test('a write that met a conflict: the receipt shows the round that was stored', async () => {
    const conflicted = new Set<string>();
    // Each replica answers its first write with a conflict 1 s ahead, then stores as usual.
    const conflictOnce = (url: string, replica: Replica) => ({
      write: async (entry: Entry) => {
        if (conflicted.has(url)) return replica.write(entry);
        conflicted.add(url);
        return entry.version + (1000n << 16n);
      },
      read: (key: Buffer) => replica.read(key),
      scan: (start: Buffer, end: Buffer | undefined, limit: number) => replica.scan(start, end, limit),
    });
    const [a, b, c] = cluster({ nodes: 3, wrapReplica: conflictOnce }) as [TestNode, TestNode, TestNode];
    const receipt = new Receipt();
    await a.store.put(K, Buffer.from('v'), { ack: 3, from: 3, receipt });
    const stored = (await c.engine.get(K))!.version;
    assert.equal(receipt.version, stored);
    assert.deepEqual(
      receipt.replicas.map((r) => r.outcome),
      ['ok', 'ok', 'ok'],
    );
    assert.deepEqual(new Set(receipt.replicas.map((r) => r.node)), new Set([a.url, b.url, c.url]));
  });

  test('a 504: the replicas that failed are in the receipt', async () => {
    const [a, b, c] = cluster({ nodes: 3, requestTimeoutMs: 600_000 }) as [TestNode, TestNode, TestNode];
    a.transport.down.add(b.url);
    a.transport.down.add(c.url);
    const write = new Receipt();
    await assert.rejects(a.store.put(K, Buffer.from('v'), { ack: 2, from: 3, receipt: write }), {
      code: 'RINGKV_NOT_ENOUGH_REPLICAS',
    });
    assert.deepEqual(
      new Set(listed(write)),
      new Set([`${b.url}=failed`, `${c.url}=failed`, `${a.url}=pending`]),
    );
    const read = new Receipt();
    await assert.rejects(a.store.get(K, { ack: 2, from: 3, receipt: read }), {
      code: 'RINGKV_NOT_ENOUGH_REPLICAS',
    });
    assert.ok(listed(read).includes(`${b.url}=failed`) || listed(read).includes(`${c.url}=failed`));
  });
});
