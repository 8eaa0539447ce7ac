import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestHandler } from '../../../test/support/transport-peer.js';
import { type Entry, makeVersion, tombstoneEntry, valueEntry } from '../../storage/index.js';
import { RingkvError } from '../../util/errors.js';
import type { ReplicaPlacement } from '../replication/index.js';
import { Ring } from '../ring/index.js';
import { SimTransport } from '../transport/sim-transport.js';
import { peerDirName } from './format.js';
import { type HandoffTransport, HintedHandoff } from './handoff.js';
import { HintStore, type HintStoreOptions } from './hint-store.js';
import { hintPlacement } from './placement.js';

const A = 'http://sim-a:1';
const B = 'http://sim-b:1';
const dirs: string[] = [];

after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function setup(count: number, peers: readonly string[] = [A], options: HintStoreOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'ringkv-handoff-'));
  dirs.push(dir);
  const store = await HintStore.open(dir, { sync: false, ...options });
  const handlers = new Map(peers.map((peer) => [peer, new TestHandler()]));
  const transport = new SimTransport(handlers, { seed: 3, delayMsMax: 1 });
  for (const peer of peers) {
    for (let i = 0; i < count; i++) await store.add(peer, entry(i));
  }
  return { dir, store, handlers, transport };
}

/** Versions of now: hints of values older than the tombstone grace are not kept. */
const BASE_VERSION = makeVersion(Date.now(), 0);

function entry(i: number): Entry {
  return valueEntry(
    Buffer.from(`k${String(i).padStart(4, '0')}`),
    BASE_VERSION + BigInt(i),
    Buffer.from(`v${i}`),
  );
}

async function keysOf(handler: TestHandler): Promise<number> {
  const page = await handler.scan(Buffer.alloc(0), undefined, 100_000);
  return page.entries.length;
}

describe('HintedHandoff', () => {
  it('delivers in batches once the peer is up, then the hints are gone', async () => {
    const { dir, store, handlers, transport } = await setup(25);
    const handoff = new HintedHandoff({ store, transport, batchEntriesMax: 10, inFlightMax: 4 });
    transport.setDown(A, true);
    await handoff.runOnce();
    assert.equal(handoff.stats().delivered, 0, 'a down peer is skipped');
    assert.equal(handlers.get(A)!.calls, 0);
    assert.equal(store.pending(A).entries, 25);

    transport.setDown(A, false);
    await handoff.runOnce();
    const stats = handoff.stats();
    assert.equal(stats.delivered, 25);
    assert.equal(stats.batches, 3, '10 + 10 + 5');
    assert.equal(await keysOf(handlers.get(A)!), 25);
    assert.deepEqual(await handlers.get(A)!.engine.get(entry(7).key), entry(7));
    assert.deepEqual(store.pending(A), { entries: 0, bytes: 0 });
    assert.deepEqual(await readdir(join(dir, peerDirName(A))), [], 'delivered files are deleted');
    await store.close();
    await transport.close();
  });

  it('a round and peerUp never deliver to one peer at once (no double delivery, no failed round)', async () => {
    const C = 'http://sim-c:1';
    const { store, handlers, transport } = await setup(20, [A, B, C]);
    const handoff = new HintedHandoff({
      store,
      transport,
      intervalMs: 3_600_000,
      batchEntriesMax: 5,
      peersConcurrentMax: 1,
    });
    // C answers slowly, so that the round reaches C while peerUp's delivery to it still runs.
    handlers.get(C)!.delayTurns = () => 3000;
    handoff.start();
    // The round serves A first, one peer at a time; C comes back meanwhile.
    const round = handoff.runOnce();
    handoff.peerUp(C);
    await round;
    // C's batches take 3,000 turns each: on a busy machine that is seconds, so the wait is long.
    for (let i = 0; i < 2000 && store.pending(C).entries > 0; i++) await sleep(5);
    await handoff.stop();
    for (const peer of [A, B, C]) {
      assert.equal(store.pending(peer).entries, 0, peer);
      assert.equal(handlers.get(peer)!.calls, 20, `${peer}: each hint written once`);
    }
    await store.close();
    await transport.close();
  });

  it("peerUp delivers a peer's hints at once, outside the schedule; not once stopped", async () => {
    const { store, handlers, transport } = await setup(30, [A, B]);
    // A schedule an hour apart: only peerUp can deliver within the test.
    const handoff = new HintedHandoff({ store, transport, intervalMs: 3_600_000, batchEntriesMax: 10 });
    handoff.start();
    handoff.peerUp(A);
    for (let i = 0; i < 200 && store.pending(A).entries > 0; i++) await sleep(5);
    await handoff.stop();
    assert.equal(await keysOf(handlers.get(A)!), 30);
    assert.equal(store.pending(A).entries, 0);
    assert.equal(store.pending(B).entries, 30, 'only the peer that is back');
    assert.equal(handlers.get(B)!.calls, 0);
    // Stopped: a peer coming back no longer starts deliveries (shutdown drains instead).
    handoff.peerUp(B);
    await sleep(20);
    assert.equal(handlers.get(B)!.calls, 0);
    await store.close();
    await transport.close();
  });

  it('stops a peer at the first failed write and retries the batch in a later round', async () => {
    const { store, handlers, transport } = await setup(12);
    const handler = handlers.get(A)!;
    let writesLeft = 5;
    const flaky: HandoffTransport = {
      isUp: () => true,
      write: (peer, e, deadlineMs) => {
        if (writesLeft-- <= 0) return Promise.reject(new RingkvError('RINGKV_TIMEOUT', 'lost'));
        return transport.write(peer, e, deadlineMs);
      },
    };
    const handoff = new HintedHandoff({ store, transport: flaky, batchEntriesMax: 4, inFlightMax: 1 });
    await handoff.runOnce();
    assert.equal(handoff.stats().delivered, 4, 'the first batch only');
    assert.equal(handoff.stats().failedBatches, 1);
    assert.match(handoff.stats().lastError ?? '', /lost/);
    assert.equal(store.pending(A).entries, 8, 'the failed batch stays');
    writesLeft = 1000;
    await handoff.runOnce();
    assert.equal(store.pending(A).entries, 0);
    assert.equal(await keysOf(handler), 12);
    await store.close();
    await transport.close();
  });

  it('leaves out hints too old to deliver, and drops them even while their peer is down', async () => {
    let nowMs = Date.now();
    const { store, transport } = await setup(12, [A, B], { ageMaxMs: 60_000, wallMs: () => nowMs });
    const gone = tombstoneEntry(Buffer.from('gone'), BASE_VERSION);
    await store.add(A, gone);
    transport.setDown(B, true);
    const written: string[] = [];
    const counting: HandoffTransport = {
      isUp: (peer) => transport.isUp(peer),
      write: (peer, e, deadlineMs) => {
        written.push(`${peer} ${e.key}`);
        return transport.write(peer, e, deadlineMs);
      },
    };
    const lines: string[] = [];
    const handoff = new HintedHandoff({
      store,
      transport: counting,
      batchEntriesMax: 5,
      log: (l) => lines.push(l),
    });
    nowMs += 120_000;
    await handoff.runOnce();
    assert.deepEqual(written, [`${A} gone`], 'the tombstone alone; nothing to the peer that is down');
    assert.deepEqual(store.peers(), []);
    assert.equal(store.stats().tooOld, 24);
    assert.equal(handoff.stats().delivered, 1);
    assert.ok(lines.includes(`Delivered 1 hints to ${A}; dropped 12 too old to deliver`), lines.join('\n'));
    assert.ok(lines.includes(`Dropped 12 hints for ${B}: too old to deliver`), lines.join('\n'));
    await store.close();
    await transport.close();
  });

  it('drops the hints of a peer that left the cluster, down or not, and frees their budget; keeps the others', async () => {
    const { dir, store, transport } = await setup(20, [A, B]);
    transport.setDown(A, true);
    transport.setDown(B, true);
    const members = new Set([A, B]);
    const lines: string[] = [];
    const handoff = new HintedHandoff({
      store,
      transport,
      isMember: (peer) => members.has(peer),
      log: (line) => lines.push(line),
    });
    await handoff.runOnce();
    assert.equal(store.pending(A).entries, 20, 'a member that is down keeps its hints');
    const bytesBefore = store.stats().pendingBytes;

    members.delete(A);
    await handoff.runOnce();
    assert.deepEqual(store.pending(A), { entries: 0, bytes: 0 });
    assert.equal(store.pending(B).entries, 20, 'B is still a member');
    assert.equal(store.stats().pendingBytes, bytesBefore / 2);
    assert.equal(handoff.stats().forgotten, 20);
    assert.deepEqual(await readdir(join(dir, peerDirName(A))), [], 'its files are deleted');
    assert.ok(
      lines.some((l) => l === `Dropped 20 hints for ${A}: no longer a member of the cluster`),
      lines.join('\n'),
    );
    assert.deepEqual(store.peers(), [B]);

    // After a restart nothing comes back for A.
    await store.close();
    const reopened = await HintStore.open(dir, { sync: false });
    assert.deepEqual(reopened.peers(), [B]);
    await reopened.close();
    await transport.close();
  });

  it('runs on its own schedule once started', async () => {
    const { store, handlers, transport } = await setup(5);
    const handoff = new HintedHandoff({ store, transport, intervalMs: 5 });
    handoff.start();
    for (let i = 0; i < 400 && store.pending(A).entries > 0; i++) await sleep(5);
    await handoff.stop();
    assert.equal(store.pending(A).entries, 0);
    assert.equal(await keysOf(handlers.get(A)!), 5);
    assert.ok(handoff.stats().rounds >= 1);
    await store.close();
    await transport.close();
  });

  it("a slow peer's long backlog does not hold up the next rounds: another peer's new hint goes meanwhile", async () => {
    const { store, transport } = await setup(60, [A, B]);
    // B's hints are taken out of the way: B gets one new hint once A's delivery is under way.
    for (let i = 0; i < 60; i++) {
      const batch = await store.peek(B, 100, 1 << 20);
      if (batch === undefined) break;
      await store.acknowledge(batch);
    }
    let pendingForAWhenBGotIt: number | undefined;
    const slow: HandoffTransport = {
      isUp: () => true,
      write: async (peer) => {
        if (peer === A)
          await sleep(20); // 60 hints, one at a time: about 1.2 s in all
        else pendingForAWhenBGotIt ??= store.pending(A).entries;
      },
    };
    const handoff = new HintedHandoff({
      store,
      transport: slow,
      intervalMs: 10,
      batchEntriesMax: 2,
      inFlightMax: 1,
      peerRoundMsMax: 100,
    });
    handoff.start();
    for (let i = 0; i < 100 && store.pending(A).entries === 60; i++) await sleep(5);
    assert.ok(store.pending(A).entries < 60, "A's delivery started");
    assert.equal(await store.add(B, entry(0)), true);
    for (let i = 0; i < 600 && pendingForAWhenBGotIt === undefined; i++) await sleep(5);
    await handoff.stop();
    assert.notEqual(pendingForAWhenBGotIt, undefined, 'B got its hint');
    assert.ok(
      pendingForAWhenBGotIt! > 0,
      `B waited for all of A's backlog (A had ${pendingForAWhenBGotIt} left)`,
    );
    await store.close();
    await transport.close();
  });

  it('drain delivers to reachable peers before the deadline and keeps the rest on disk', async () => {
    const { dir, store, handlers, transport } = await setup(6, [A, B]);
    transport.setDown(B, true);
    const handoff = new HintedHandoff({ store, transport, intervalMs: 60_000 });
    handoff.start();
    const result = await handoff.drain(Date.now() + 2000);
    assert.deepEqual(result, { delivered: 6, remaining: 6 });
    assert.equal(await keysOf(handlers.get(A)!), 6);
    assert.equal(await keysOf(handlers.get(B)!), 0);
    await store.close();

    const reopened = await HintStore.open(dir);
    assert.deepEqual(reopened.peers(), [B]);
    assert.equal(reopened.pending(B).entries, 6);
    await reopened.close();
    await transport.close();
  });

  it('drain with a past deadline sends nothing', async () => {
    const { store, handlers, transport } = await setup(3);
    const handoff = new HintedHandoff({ store, transport });
    assert.deepEqual(await handoff.drain(Date.now() - 1), { delivered: 0, remaining: 3 });
    assert.equal(handlers.get(A)!.calls, 0);
    await store.close();
    await transport.close();
  });

  describe('after a ring change', () => {
    const [W, X, Y, Z] = ['http://sim-w:1', 'http://sim-x:1', 'http://sim-y:1', 'http://sim-z:1'];
    /** Few points per node, so that a join moves many keys. */
    const ringOf = (nodes: readonly string[]) => new Ring(nodes, { vnodesPerNode: 8 });

    /** A placement whose ring the test changes, as the membership's Topology changes its own. */
    function changingRing(nodes: readonly string[]) {
      const state = { ring: ringOf(nodes) };
      const placement: ReplicaPlacement = {
        get nodes() {
          return state.ring.nodes;
        },
        replicas: (key, from) => state.ring.replicas(key, from),
      };
      return { state, placement };
    }

    /** Keys k0000.. split by whether X is among their first `from` replicas on `before` and on `after`. */
    function keysMoved(before: Ring, after: Ring, from: number) {
      const stays: Entry[] = [];
      const leaves: Entry[] = [];
      for (let i = 0; i < 400 && (stays.length < 5 || leaves.length < 5); i++) {
        const e = entry(i);
        if (!before.replicas(e.key, from).includes(X)) continue;
        if (after.replicas(e.key, from).includes(X)) stays.push(e);
        else leaves.push(e);
      }
      assert.ok(stays.length >= 5 && leaves.length >= 5, "the join moves some of X's keys, not all");
      return { stays, leaves };
    }

    async function handlerHas(handler: TestHandler, e: Entry): Promise<boolean> {
      return (await handler.engine.get(e.key))?.version === e.version;
    }

    it("a hint for a peer that no longer holds its key goes to the key's current replicas, never to the peer", async () => {
      const { store, handlers, transport } = await setup(0, [W, X, Y, Z]);
      const { state, placement } = changingRing([W, X, Y]);
      // Z joins: some keys X held are Z's now.
      const { stays, leaves } = keysMoved(state.ring, ringOf([W, X, Y, Z]), 2);
      // Hints for X of writes made with from=2, while X was down and W, X, Y the ring.
      for (const e of [...stays, ...leaves]) assert.ok(await store.add(X, e, 2));
      state.ring = ringOf([W, X, Y, Z]);
      const lines: string[] = [];
      const handoff = new HintedHandoff({
        store,
        transport,
        placement: hintPlacement(placement),
        log: (l) => lines.push(l),
      });
      await handoff.runOnce();

      for (const e of leaves) {
        assert.equal(
          await handlerHas(handlers.get(X)!, e),
          false,
          `${e.key}: not on X, which no longer holds it`,
        );
        for (const owner of state.ring.replicas(e.key, 2)) {
          assert.ok(
            await handlerHas(handlers.get(owner)!, e),
            `${e.key}: on its owner ${owner}, same version`,
          );
        }
      }
      for (const e of stays) assert.ok(await handlerHas(handlers.get(X)!, e), `${e.key}: X still holds it`);
      assert.equal(handlers.get(X)!.calls, stays.length, 'X gets only the keys it still holds');
      assert.deepEqual(store.peers(), []);
      assert.equal(handoff.stats().delivered, stays.length);
      assert.equal(handoff.stats().rerouted, leaves.length);
      assert.equal(store.stats().deliveredByPeer[X], stays.length, 'delivered to X: only what X got');
      assert.ok(
        lines.includes(
          `Delivered ${stays.length} hints to ${X}; handed ${leaves.length} hints for ${X} to their keys' current replicas: it no longer holds those keys`,
        ),
        lines.join('\n'),
      );
      await store.close();
      await transport.close();
    });

    it('a new owner that is down gets a hint of its own, with the same `from`; the peer gets nothing', async () => {
      const { store, handlers, transport } = await setup(0, [W, X, Y, Z]);
      const { state, placement } = changingRing([W, X, Y]);
      const { leaves } = keysMoved(state.ring, ringOf([W, X, Y, Z]), 2);
      const toZ = leaves.filter((e) => ringOf([W, X, Y, Z]).replicas(e.key, 2).includes(Z));
      assert.ok(toZ.length > 0);
      for (const e of toZ) await store.add(X, e, 2);
      state.ring = ringOf([W, X, Y, Z]);
      // X is down as well: its hints that moved go anyway.
      transport.setDown(X, true);
      transport.setDown(Z, true);
      const handoff = new HintedHandoff({ store, transport, placement: hintPlacement(placement) });
      await handoff.runOnce();
      assert.equal(store.pending(X).entries, 0, "X's hints went, though X is down");
      assert.equal(store.pending(Z).entries, toZ.length, 'kept for Z');
      assert.equal(handoff.stats().rerouted, toZ.length);

      transport.setDown(Z, false);
      await handoff.runOnce();
      for (const e of toZ) assert.ok(await handlerHas(handlers.get(Z)!, e));
      assert.deepEqual(store.peers(), []);
      assert.equal(handlers.get(X)!.calls, 0);
      // Z's hints were placed by from=2 too: Z holds them, so they were delivered, not moved again.
      assert.equal(handoff.stats().delivered, toZ.length);
      await store.close();
      await transport.close();
    });

    it('a batch retried after a rerouted hint could not be kept hands each hint to each node once', async () => {
      const { store, handlers, transport } = await setup(0, [W, X, Y, Z]);
      const moved = [entry(0), entry(1)];
      for (const e of moved) await store.add(X, e, 2);
      // The key is Y's and Z's now; both are down, and Z's hints cannot be kept (its disk fails) at first.
      transport.setDown(Y, true);
      transport.setDown(Z, true);
      let zFails = true;
      const add = store.add.bind(store);
      store.add = (peer, e, from) =>
        peer === Z && zFails ? Promise.reject(new RingkvError('RINGKV_IO', 'disk')) : add(peer, e, from);
      const handoff = new HintedHandoff({ store, transport, placement: () => [Y, Z] });
      for (let round = 0; round < 3; round++) await handoff.runOnce();
      assert.equal(store.pending(X).entries, 2, 'kept for X while a hint for Z cannot be');
      assert.equal(
        store.pending(Y).entries,
        2,
        'one hint for Y per moved hint, however often the batch is tried',
      );
      zFails = false;
      await handoff.runOnce();
      assert.equal(store.pending(X).entries, 0);
      assert.equal(store.pending(Y).entries, 2);
      assert.equal(store.pending(Z).entries, 2);
      assert.equal(handlers.get(X)!.calls, 0);
      assert.equal(handoff.stats().rerouted, 2);
      await store.close();
      await transport.close();
    });

    it("places a hint by its write's `from`, and one that does not record it by the replication factor R", async () => {
      const { store, handlers, transport } = await setup(0, [W, X, Y, Z]);
      const { placement } = changingRing([W, X, Y, Z]);
      const ring = ringOf([W, X, Y, Z]);
      // Keys whose fourth replica is X: a write with from=4 went to X, R = 3 does not hold X.
      const last = Array.from({ length: 400 }, (_, i) => entry(i))
        .filter((e) => ring.replicas(e.key, 4)[3] === X)
        .slice(0, 2);
      assert.equal(last.length, 2);
      await store.add(X, last[0]!, 4);
      await store.add(X, last[1]!);
      const handoff = new HintedHandoff({ store, transport, placement: hintPlacement(placement) });
      await handoff.runOnce();
      assert.ok(
        await handlerHas(handlers.get(X)!, last[0]!),
        'from=4: X is one of its nodes, the ring unchanged',
      );
      assert.equal(await handlerHas(handlers.get(X)!, last[1]!), false, 'no from: placed by R = 3');
      for (const owner of ring.replicas(last[1]!.key, 3))
        assert.ok(await handlerHas(handlers.get(owner)!, last[1]!));
      await store.close();
      await transport.close();
    });
  });
});
