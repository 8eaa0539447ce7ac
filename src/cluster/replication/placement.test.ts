import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { eventually, HeldTransport } from '../../../test/support/in-process-cluster.js';
import { type Entry, MemoryEngine } from '../../storage/index.js';
import { HybridClock } from '../clock.js';
import type { InternodeHandler } from '../transport/index.js';
import { ClusterStore } from './coordinator.js';
import type { ReplicaPlacement } from './placement.js';
import { RecentWrites } from './recent-writes.js';
import { Replica } from './replica.js';

const [A, B, C, D] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1'] as const;
const K = Buffer.from('key');
const Q = { ack: 2, from: 3 };

/** Node A's store over replicas A, B, C with D pending, and each node's engine. */
function setUp(options: { pending?: readonly string[] } = {}) {
  const engines = new Map<string, MemoryEngine>();
  const handlers = new Map<string, InternodeHandler>();
  for (const url of [A, B, C, D]) {
    const engine = new MemoryEngine();
    const clock = new HybridClock();
    engines.set(url, engine);
    handlers.set(
      url,
      new Replica({
        engine,
        clock,
        recentWrites: new RecentWrites({
          windowMs: 3000,
          entriesMax: 1000,
          keyBytesMax: 1 << 20,
          initialFloor: 0n,
        }),
      }),
    );
  }
  const placement: ReplicaPlacement = {
    nodes: [A, B, C],
    replicas: () => [A, B, C],
    pendingReplicas: () => options.pending ?? [D],
  };
  const transport = new HeldTransport(handlers);
  const failed: string[] = [];
  const store = new ClusterStore({
    selfUrl: A,
    ring: placement,
    engine: engines.get(A)!,
    clock: new HybridClock(),
    transport,
    replica: handlers.get(A) as Replica,
    requestTimeoutMs: 60_000,
    // With the request's `from`: a hint is placed by it at delivery.
    onReplicaWriteFailed: (peer: string, _entry: Entry, _err: unknown, from: number) =>
      failed.push(`${peer} from=${from}`),
  });
  return { store, transport, engines, failed };
}

describe('ClusterStore: pending owners', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  test("a pending owner's acknowledgement is one more, never one of `ack`", async () => {
    const { store, transport, engines } = setUp();
    close = async () => {
      for (const url of [B, C, D]) transport.release(url);
      await store.close();
    };
    transport.held.add(B);
    transport.held.add(C);
    let answered = false;
    const put = store.put(K, Buffer.from('v'), Q).then(() => {
      answered = true;
    });
    // A (local) and D answered: 2 acknowledgements, but D's does not replace B's or C's.
    assert.ok(await eventually(async () => (await engines.get(D)!.get(K)) !== undefined));
    assert.equal(await eventually(() => answered, 50), false);
    transport.release(B);
    await put;
    assert.equal(transport.heldCount(C), 1, 'answered with A, B and D, without C');
    assert.equal(store.clusterSize, 3);
  });

  test('a write reaches ack current replicas besides the pending one, whichever answer first', async () => {
    const { store, transport, engines } = setUp();
    close = async () => {
      transport.release(D);
      await store.close();
    };
    transport.held.add(D);
    await store.put(K, Buffer.from('v'), Q);
    for (const url of [A, B, C]) assert.equal((await engines.get(url)!.get(K))?.value.toString(), 'v');
    assert.equal(transport.heldCount(D), 1, 'sent to the pending owner too');
  });

  test('a pending owner that is down raises nothing: it gets the write aside, and a hint', async () => {
    const { store, transport, failed } = setUp();
    close = () => store.close();
    transport.down.add(D);
    await store.put(K, Buffer.from('v'), Q);
    await store.delete(K, Q);
    assert.ok(await eventually(() => failed.filter((f) => f === `${D} from=3`).length === 2));
  });

  test("a current replica's failed write is reported with the request's `from` too", async () => {
    const { store, transport, failed } = setUp();
    close = () => store.close();
    transport.down.add(B);
    await store.put(K, Buffer.from('v'), Q);
    assert.ok(await eventually(() => failed.includes(`${B} from=3`)), failed.join(', '));
  });
});

describe('ClusterStore: a 504 during a move', () => {
  test("its reason tells the client's ack apart from the pending owner's raise", async () => {
    const { store, transport } = setUp();
    transport.down.add(B);
    transport.down.add(C);
    // 3 needed: the client's ack of 2, plus one for D, which must not make the client think it asked for 3.
    try {
      await assert.rejects(store.put(K, Buffer.from('v'), Q), (err: Error) => {
        assert.match(err.message, /^Only \d of 3 required replicas answered \(ack 2, plus 1 pending owner/);
        return true;
      });
    } finally {
      await store.close();
    }
  });
});
