import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryEngine, type PurgeFilter, type PurgeOptions, valueEntry } from '../../storage/index.js';
import type { Gossip } from './gossip.js';
import {
  bootstrapMembership,
  flipped,
  MemberState,
  type Membership,
  viewDigestHex,
  withLeaving,
} from './membership.js';
import { Mover } from './mover.js';
import { StreamSource } from './streaming.js';
import { Topology } from './topology.js';

const [a, b, c, d, e] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1', 'http://e:1'] as const;
const VNODES = { vnodesPerNode: 16 };

describe('Mover, the completer', () => {
  /**
   * Node a completes the move of `view` (d leaves; a, b and c are its new
   * owners). b and c answer progress requests with `peerView`'s digest:
   * done streaming for that view. Resolves to the views a proposed.
   */
  async function completing(view: Membership, peerView: () => Membership, waitMs: number) {
    const topology = new Topology(view, VNODES);
    const sources = new Map(
      [b, c, d].map((url): [string, StreamSource] => [
        url,
        new StreamSource({ selfUrl: url, topology: new Topology(view, VNODES), engine: new MemoryEngine() }),
      ]),
    );
    const proposed: Membership[] = [];
    const gossip = {
      exchangeAll: async () => [],
      exchange: async () => true,
      propose: async (change: (v: Membership) => Membership) => {
        const next = change(topology.view);
        topology.adopt(next);
        proposed.push(next);
        return next;
      },
    } as unknown as Gossip;
    const progressOf = (url: string) => {
      const theirs = peerView();
      return {
        node: url,
        epoch: String(theirs.epoch),
        state: 'normal',
        move: 'http://d:1 leaving',
        members: {},
        receiving: {
          epoch: String(theirs.epoch),
          view: viewDigestHex(theirs),
          done: true,
          startedAtMs: 0,
          ranges: 2,
          rangesDone: 2,
          keys: 0,
          bytes: 0,
          bytesLeft: 0,
          transfers: [],
        },
      };
    };
    const mover = new Mover({
      selfUrl: a,
      topology,
      gossip,
      engine: new MemoryEngine(),
      transport: {
        membership: () => Promise.reject(new Error('not used')),
        stream: (peer, body) => sources.get(peer)!.handle(body),
        move: async (peer) => Buffer.from(JSON.stringify(progressOf(peer))),
        isUp: () => true,
      },
      pollIntervalMs: 5,
      trailingMs: 60_000,
    });
    mover.start();
    await sleep(waitMs);
    await mover.stop();
    return { proposed, topology };
  }

  const base = bootstrapMembership([a, b, c, d]);
  const view = withLeaving(base, d, { dead: false });

  test('flips once every new owner streamed for this very view', async () => {
    const { proposed, topology } = await completing(view, () => view, 300);
    assert.equal(proposed.length, 1);
    assert.equal(topology.epoch, view.epoch + 1n);
    assert.equal(topology.member(d)?.state, MemberState.Removed);
  });

  test('does not flip on progress for another view of the same epoch (a change that lost the merge)', async () => {
    // Made at the same time from the same view: c leaves instead of d. Same epoch, other rings.
    const other = withLeaving(base, c, { dead: false });
    assert.equal(other.epoch, view.epoch);
    const { proposed, topology } = await completing(view, () => other, 300);
    assert.deepEqual(proposed, []);
    assert.equal(topology.view, view);
  });
});

/**
 * A mover of node a for the cleanup tests: no completer (peers down, polls a minute apart), a
 * clock far past every version written, a short trail; `stream` answers its STREAM requests.
 */
function cleanupMover(
  topology: Topology,
  engine: MemoryEngine,
  stream: (peer: string, body: Buffer) => Promise<Buffer>,
  options: Pick<ConstructorParameters<typeof Mover>[0], 'cleanupDue' | 'markCleanupDue'>,
): Mover {
  return new Mover({
    selfUrl: a,
    topology,
    gossip: { exchangeAll: async () => [], exchange: async () => true } as unknown as Gossip,
    engine,
    transport: {
      membership: () => Promise.reject(new Error('not used')),
      stream,
      move: () => Promise.reject(new Error('not used')),
      isUp: () => false,
    },
    now: () => 1n << 40n,
    trailingMs: 10,
    pollIntervalMs: 60_000,
    ...options,
  });
}

describe('Mover, the cleanup after a move', () => {
  const five = bootstrapMembership([a, b, c, d, e]);
  const keys = Array.from({ length: 500 }, (_, i) => Buffer.from(`key-${i}`));

  /** Node a of `view`, its store holding every key; records what it marks as due. */
  async function nodeA(view: Membership, cleanupDue: boolean, engine = new MemoryEngine()) {
    // The default ring, as the cleanup computes its ranges with.
    const topology = new Topology(view);
    for (const [i, key] of keys.entries()) await engine.write(valueEntry(key, BigInt(i + 1), key));
    const marks: (bigint | undefined)[] = [];
    const sources = new Map(
      view.members.map((m): [string, StreamSource] => [
        m.url,
        new StreamSource({
          selfUrl: m.url,
          topology: new Topology(view, VNODES),
          engine: new MemoryEngine(),
        }),
      ]),
    );
    const mover = cleanupMover(topology, engine, (peer, body) => sources.get(peer)!.handle(body), {
      cleanupDue,
      markCleanupDue: async (epoch) => {
        marks.push(epoch);
      },
    });
    /** The keys a holds now. */
    const held = async () => {
      const out: string[] = [];
      for (const key of keys) if ((await engine.get(key)) !== undefined) out.push(key.toString());
      return out;
    };
    /** The keys a holds on `view`'s current ring. */
    const own = keys
      .filter((key) => topology.current!.replicas(key, 3).includes(a))
      .map((key) => key.toString());
    return { topology, mover, marks, held, own };
  }

  test('a cleanup due when the node stopped runs at start, and the marker is cleared', async () => {
    const node = await nodeA(five, true);
    assert.ok(node.own.length > 0 && node.own.length < keys.length);
    node.mover.start();
    await sleep(1500);
    await node.mover.stop();
    assert.deepEqual(await node.held(), node.own);
    assert.deepEqual(node.marks.slice(-1), [undefined]);
  });

  test('without the marker, a start drops nothing', async () => {
    const node = await nodeA(five, false);
    node.mover.start();
    await sleep(1500);
    await node.mover.stop();
    assert.equal((await node.held()).length, keys.length);
    assert.deepEqual(node.marks, []);
  });

  test("a move's end marks the cleanup due at once, before the trailing time", async () => {
    const leaving = withLeaving(five, e, { dead: false });
    const node = await nodeA(leaving, false);
    node.mover.start();
    node.topology.adopt(flipped(leaving));
    await node.mover.stop();
    // Stopped before the cleanup ran: the marker stays, for the next start.
    assert.deepEqual(node.marks, [leaving.epoch + 1n]);
    assert.equal((await node.held()).length, keys.length);
  });

  test("a cleanup that ends after another move ended leaves that move's marker", async () => {
    /** A purge that takes its time: another move ends while it runs. */
    class SlowPurge extends MemoryEngine {
      override async purge(filter: PurgeFilter): Promise<void> {
        await sleep(600);
        return super.purge(filter);
      }
    }
    const node = await nodeA(five, true, new SlowPurge());
    node.mover.start();
    // The cleanup due at start runs after about a second; this move ends during its purge.
    await sleep(1200);
    const leaving = withLeaving(five, e, { dead: false });
    node.topology.adopt(leaving);
    node.topology.adopt(flipped(leaving));
    await sleep(700);
    await node.mover.stop();
    assert.deepEqual(node.marks, [five.epoch, leaving.epoch + 1n]);
  });
});

describe('Mover, a cleanup overtaken by a new move', () => {
  test('a move that starts while the purge waits its turn keeps what this node streams in for it', async () => {
    const five = bootstrapMembership([a, b, c, d, e]);
    const keys = Array.from({ length: 500 }, (_, i) => Buffer.from(`key-${i}`));
    /** A purge that waits for the engine (a compaction running) before it drops anything. */
    class WaitingPurge extends MemoryEngine {
      override async purge(filter: PurgeFilter, options?: PurgeOptions): Promise<void> {
        await sleep(600);
        return super.purge(filter, options);
      }
    }
    const engine = new WaitingPurge();
    const topology = new Topology(five);
    for (const [i, key] of keys.entries()) await engine.write(valueEntry(key, BigInt(i + 1), key));
    const mover = cleanupMover(topology, engine, () => Promise.reject(new Error('down')), {
      cleanupDue: true,
    });
    mover.start();
    // The cleanup due at start begins after about a second; e starts leaving while its purge waits.
    await sleep(1200);
    const leaving = withLeaving(five, e, { dead: false });
    topology.adopt(leaving);
    // a is a new owner of part of e's ranges: what it streams in keeps its (old) versions.
    const gained = keys.filter(
      (key) =>
        !topology.current!.replicas(key, 3).includes(a) && topology.future!.replicas(key, 3).includes(a),
    );
    assert.ok(gained.length > 0);
    for (const key of gained) await engine.write(valueEntry(key, 7n, key));
    await sleep(700);
    await mover.stop();
    const lost = [];
    for (const key of gained) if ((await engine.get(key)) === undefined) lost.push(key.toString());
    assert.deepEqual(lost, [], 'streamed in for the new move, then dropped by the old cleanup');
  });
});
