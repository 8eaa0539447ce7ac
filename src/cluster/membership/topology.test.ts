import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Engine, type Entry, MemoryEngine, valueEntry } from '../../storage/index.js';
import { RingkvError } from '../../util/errors.js';
import { hash32 } from '../ring/index.js';
import { decodeStreamPage, encodeStreamRequest } from './format.js';
import {
  bootstrapMembership,
  cancelled,
  flipped,
  MemberState,
  type Membership,
  viewDigest,
  viewDigestHex,
  withJoining,
  withLeaving,
} from './membership.js';
import { subtractRanges, unheldRanges } from './mover.js';
import { StreamReceiver, StreamSource, streamedTo } from './streaming.js';
import { Topology } from './topology.js';

const [a, b, c, d, e] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1', 'http://e:1'] as const;
const VNODES = { vnodesPerNode: 64 };
const keys = Array.from({ length: 2000 }, (_, i) => Buffer.from(`key-${i}`));

describe('Topology', () => {
  test('no move: the current ring only, no pending owners, from cut to the ring', () => {
    const topology = new Topology(bootstrapMembership([a, b, c]), VNODES);
    assert.deepEqual(topology.nodes, [a, b, c]);
    for (const key of keys.slice(0, 50)) {
      assert.equal(topology.pendingReplicas(key, 3).length, 0);
      assert.equal(topology.replicas(key, 5).length, 3);
    }
    assert.equal(topology.future, undefined);
  });

  test('a join: the joining node is pending exactly where it will own the key, never a current replica', () => {
    const topology = new Topology(bootstrapMembership([a, b, c, d]), VNODES);
    topology.adopt(withJoining(topology.view, e));
    assert.deepEqual(topology.nodes, [a, b, c, d], 'reads stay on the current ring');
    let pending = 0;
    for (const key of keys) {
      const extra = topology.pendingReplicas(key, 3);
      const future = topology.future!.replicas(key, 3);
      assert.deepEqual(extra, future.includes(e) ? [e] : []);
      for (const url of extra) assert.ok(!topology.replicas(key, 3).includes(url));
      pending += extra.length;
    }
    // e owns 3 of 5 replicas' worth: about 60% of keys.
    assert.ok(pending > keys.length * 0.5 && pending < keys.length * 0.7, `${pending} keys pending on e`);
  });

  test('after a flip the old ring trails: its owners get writes until trailingMs has passed', () => {
    let nowMs = 1000;
    const topology = new Topology(bootstrapMembership([a, b, c, d]), {
      ...VNODES,
      trailingMs: 500,
      nowMs: () => nowMs,
    });
    const leaving = withLeaving(topology.view, b, { dead: false });
    topology.adopt(leaving);
    const changes: [bigint, bigint][] = [];
    topology.onChange((view, previous) => changes.push([previous.epoch, view.epoch]));
    topology.adopt(flipped(leaving));
    assert.deepEqual(changes, [[2n, 3n]]);
    assert.deepEqual(topology.nodes, [a, c, d]);
    assert.ok(topology.trailing);
    const trailingKey = keys.find((key) => topology.pendingReplicas(key, 3).length > 0)!;
    assert.deepEqual(topology.pendingReplicas(trailingKey, 3), [b], 'the node that left still gets writes');
    nowMs += 500;
    assert.equal(topology.pendingReplicas(trailingKey, 3).length, 0);
    assert.ok(!topology.trailing);
    assert.ok(!topology.isMember(b));
    assert.ok(topology.isMember(a));
  });

  test("a replacement is placed by the dead node's token: the same replica sets", () => {
    const start = bootstrapMembership([a, b, c, d]);
    const before = new Topology(start, VNODES);
    const after = new Topology(flipped(withJoining(start, e, { replaces: c })), VNODES);
    for (const key of keys.slice(0, 300)) {
      const expected = before.replicas(key, 3).map((url) => (url === c ? e : url));
      assert.deepEqual([...after.replicas(key, 3)].sort(), [...expected].sort());
    }
  });

  test('a node that missed views adopts a ring with the same URLs but another token: placed by the new token', () => {
    // d joins; c is removed, then comes back in d's place (taking d's token): the current ring lists
    // a, b, c again, but c now stands where d stood. A node that was away all along adopts the last view.
    const start = bootstrapMembership([a, b, c]);
    const dJoined = flipped(withJoining(start, d));
    const cRemoved = flipped(withLeaving(dJoined, c, { dead: true }));
    const last = flipped(withJoining(cRemoved, c, { replaces: d }));
    assert.deepEqual(
      last.members.filter((m) => m.state === MemberState.Normal).map((m) => [m.url, m.token]),
      [
        [a, a],
        [b, b],
        [c, d],
      ],
    );
    const away = new Topology(start, VNODES);
    away.adopt(last);
    const fresh = new Topology(last, VNODES);
    for (const key of keys.slice(0, 300)) {
      assert.deepEqual(away.replicas(key, 3), fresh.replicas(key, 3));
      assert.deepEqual(away.replicas(key, 1), fresh.replicas(key, 1), `primary of ${key}`);
    }
  });
});

describe('streaming', () => {
  /** Engines holding every key on its current replicas, and a source per node. */
  function cluster(view: Membership) {
    const topologies = new Map<string, Topology>();
    const engines = new Map<string, MemoryEngine>();
    const sources = new Map<string, StreamSource>();
    for (const member of view.members) {
      const topology = new Topology(view, VNODES);
      const engine = new MemoryEngine();
      topologies.set(member.url, topology);
      engines.set(member.url, engine);
      sources.set(member.url, new StreamSource({ selfUrl: member.url, topology, engine, examineMax: 100 }));
    }
    return { topologies, engines, sources };
  }

  test('a new owner receives exactly the keys it gains, from every current replica, in pages', async () => {
    const view = withJoining(bootstrapMembership([a, b, c, d]), e);
    const { topologies, engines, sources } = cluster(view);
    const topology = topologies.get(a)!;
    for (const [i, key] of keys.entries()) {
      for (const url of topology.replicas(key, 3))
        await engines.get(url)!.write(valueEntry(key, BigInt(i + 1), key));
    }
    let pages = 0;
    const observed = new Set<string>();
    const receiver = new StreamReceiver({
      selfUrl: e,
      view,
      rings: { current: topology.current!, future: topology.future! },
      engine: engines.get(e)!,
      // The node's clock and its replica's memory learn every entry stored.
      observe: (_version, key) => observed.add(key.toString()),
      transport: {
        stream: (peer, body) => {
          pages++;
          return sources.get(peer)!.handle(body);
        },
      },
      pageEntries: 64,
    });
    await receiver.run();
    const progress = receiver.progress();
    assert.ok(progress.done);
    assert.equal(progress.ranges, 4);
    assert.equal(progress.rangesDone, 4);
    assert.ok(pages > 4 * 2, `paged: ${pages} pages`);
    const expected = keys.filter((key) => topology.future!.replicas(key, 3).includes(e));
    const cursor = engines.get(e)!.scan({ start: Buffer.alloc(0) });
    const received: string[] = [];
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      for (const entry of batch) received.push(entry.key.toString());
    }
    await cursor.close();
    assert.deepEqual(received.sort(), expected.map(String).sort());
    assert.deepEqual([...observed].sort(), received);
    // Each key came from each of its three current replicas.
    assert.equal(progress.keys, expected.length * 3);
    for (const key of expected) {
      const sendersOf = [a, b, c, d].filter((url) =>
        streamedTo({ current: topology.current!, future: topology.future! }, url, e, key),
      );
      assert.equal(sendersOf.length, 3);
    }
  });

  /** A joining node e, every key on its current replicas; the keys e must end up with. */
  async function joining() {
    const view = withJoining(bootstrapMembership([a, b, c, d]), e);
    const parts = cluster(view);
    const topology = parts.topologies.get(a)!;
    for (const [i, key] of keys.entries()) {
      for (const url of topology.replicas(key, 3))
        await parts.engines.get(url)!.write(valueEntry(key, BigInt(i + 1), key));
    }
    const expected = keys.filter((key) => topology.future!.replicas(key, 3).includes(e)).map(String);
    const rings = { current: topology.current!, future: topology.future! };
    return { view, rings, expected, ...parts };
  }

  async function keysOf(engine: Engine): Promise<string[]> {
    const cursor = engine.scan({ start: Buffer.alloc(0) });
    const out: string[] = [];
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      for (const entry of batch) out.push(entry.key.toString());
    }
    await cursor.close();
    return out.sort();
  }

  test('a source that says it is shutting down, or fails while up, is asked again, never skipped', async () => {
    const { view, rings, expected, sources } = await joining();
    const target = new MemoryEngine();
    let refusals = 0;
    const receiver = new StreamReceiver({
      selfUrl: e,
      view,
      rings,
      engine: target,
      transport: {
        stream: (peer, body) => {
          // b shuts down for a while, c fails otherwise: both stay up as the transport sees them.
          if (peer === b && refusals++ < 6)
            return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Node is shutting down'));
          if (peer === c && refusals < 6) return Promise.reject(new RingkvError('RINGKV_TIMEOUT', 'slow'));
          return sources.get(peer)!.handle(body);
        },
        isUp: () => true,
      },
      retryMs: 5,
      sourceDownMaxMs: 1,
    });
    await receiver.run();
    const progress = receiver.progress();
    assert.ok(progress.done);
    assert.deepEqual(
      progress.transfers.map((t) => t.state),
      ['done', 'done', 'done', 'done'],
    );
    assert.deepEqual(await keysOf(target), expected.sort());
  });

  test("this node's own write failures never skip a source: the same page again until it stores", async () => {
    const { view, rings, expected, sources } = await joining();
    const inner = new MemoryEngine();
    let failing = true;
    const target: Engine = Object.assign(Object.create(inner) as Engine, {
      write: (entry: Entry) =>
        failing ? Promise.reject(new RingkvError('RINGKV_NO_SPACE', 'Disk full')) : inner.write(entry),
    });
    const lines: string[] = [];
    const receiver = new StreamReceiver({
      selfUrl: e,
      view,
      rings,
      engine: target,
      transport: { stream: (peer, body) => sources.get(peer)!.handle(body), isUp: () => true },
      retryMs: 5,
      sourceDownMaxMs: 1,
      log: (line) => lines.push(line),
    });
    const running = receiver.run();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(!receiver.done);
    assert.ok(receiver.progress().transfers.every((t) => t.state === 'streaming'));
    assert.ok(
      lines.some((l) => l.includes('cannot store what') && l.includes('Disk full')),
      lines.join('\n'),
    );
    failing = false;
    await running;
    assert.ok(receiver.done);
    assert.deepEqual(await keysOf(inner), expected.sort());
  });

  test('a source the transport reports down is given up after sourceDownMaxMs; one that is up is not', async () => {
    const { view, rings, sources } = await joining();
    const receiver = (upB: boolean) =>
      new StreamReceiver({
        selfUrl: e,
        view,
        rings,
        engine: new MemoryEngine(),
        transport: {
          stream: (peer, body) =>
            peer === b
              ? Promise.reject(new RingkvError('RINGKV_UNAVAILABLE', 'Connection refused'))
              : sources.get(peer)!.handle(body),
          isUp: (peer) => peer !== b || upB,
        },
        retryMs: 5,
        sourceDownMaxMs: 30,
      });
    const down = receiver(false);
    await down.run();
    assert.ok(down.done);
    assert.equal(down.progress().transfers.find((t) => t.source === b)?.state, 'skipped');

    const up = receiver(true);
    const running = up.run();
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.ok(!up.done);
    assert.equal(up.progress().transfers.find((t) => t.source === b)?.state, 'streaming');
    up.abort();
    await running;
    assert.ok(!up.done, 'an aborted receiver is not done');
  });

  test('a source holding another epoch answers an empty page with its own; the receiver asks again', async () => {
    const view = withJoining(bootstrapMembership([a, b, c]), d);
    const { sources } = cluster(cancelled(view));
    const page = decodeStreamPage(
      await sources.get(a)!.handle(
        encodeStreamRequest({
          epoch: view.epoch,
          view: viewDigest(view),
          target: d,
          start: Buffer.alloc(0),
          limit: 10,
        }),
      ),
    );
    // epoch 3 (cancelled) against the request's 2: an empty page that names epoch 3.
    assert.equal(page.epoch, 3n);
    assert.equal(page.view, viewDigest(cancelled(view)));
    assert.equal(page.entries.length, 0);
  });

  test('a source holding another view of the same epoch sends nothing: the receiver exchanges views and waits', async () => {
    // Two changes made at once from one view: a leaves in one, b in the other; both are epoch 2.
    const base = bootstrapMembership([a, b, c, d, e]);
    const ours = withLeaving(base, a, { dead: false });
    const theirs = withLeaving(base, b, { dead: false });
    assert.equal(ours.epoch, theirs.epoch);
    assert.notEqual(viewDigest(ours), viewDigest(theirs));
    // The sources hold the other view; each has every key, so any page served would carry entries.
    const { sources, engines } = cluster(theirs);
    for (const engine of engines.values()) {
      for (const [i, key] of keys.entries()) await engine.write(valueEntry(key, BigInt(i + 1), key));
    }
    const topology = new Topology(ours, VNODES);
    const target = new MemoryEngine();
    let stale = 0;
    const receiver = new StreamReceiver({
      selfUrl: c,
      view: ours,
      rings: { current: topology.current!, future: topology.future! },
      engine: target,
      transport: { stream: (peer, body) => sources.get(peer)!.handle(body), isUp: () => true },
      onStale: async () => {
        if (++stale >= 8) receiver.abort();
      },
      retryMs: 1,
    });
    await receiver.run();
    assert.ok(stale >= 8, `asked the sources to exchange views ${stale} times`);
    assert.ok(!receiver.done, 'not done: no source held the move of its view');
    assert.deepEqual(await keysOf(target), []);
    const progress = receiver.progress();
    assert.equal(progress.view, viewDigestHex(ours));
    assert.ok(
      progress.transfers.every((t) => t.error?.includes('another view of membership epoch 2')),
      JSON.stringify(progress.transfers),
    );
  });
});

describe('cleanup ranges', () => {
  test('subtraction of [start, end) lists', () => {
    assert.deepEqual(subtractRanges([0, 100], [10, 20, 30, 40]), [0, 10, 20, 30, 40, 100]);
    assert.deepEqual(subtractRanges([0, 10, 20, 30], [0, 30]), []);
    assert.deepEqual(subtractRanges([0, 10, 20, 30], [5, 25]), [0, 5, 25, 30]);
    assert.deepEqual(subtractRanges([0, 10], []), [0, 10]);
  });

  test('after a move a node drops exactly the keys it is not among the first three replicas of', () => {
    const inRanges = (ranges: number[], key: Buffer): boolean => {
      const h = hash32(key);
      for (let i = 0; i < ranges.length; i += 2) if (h >= ranges[i]! && h < ranges[i + 1]!) return true;
      return false;
    };
    const view = flipped(withJoining(bootstrapMembership([a, b, c, d]), e));
    const after = new Topology(view);
    for (const url of [a, e]) {
      const unheld = unheldRanges(url, view);
      for (const key of keys) assert.equal(inRanges(unheld, key), !after.replicas(key, 3).includes(url));
    }
    assert.deepEqual(
      unheldRanges(a, bootstrapMembership([a, b, c])),
      [],
      'three nodes: each holds everything',
    );
    assert.deepEqual(unheldRanges('http://x:1', view), [0, 2 ** 32]);
  });
});
