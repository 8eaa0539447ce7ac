import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { MemoryVfs } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import { loadMembership, saveMembership } from './file.js';
import { EPOCH_MAX, encodeMembership } from './format.js';
import { Gossip } from './gossip.js';
import {
  bootstrapMembership,
  compareMemberships,
  flipped,
  MemberState,
  type Membership,
  REMOVED_KEPT_MAX,
  rivalViews,
  sameView,
  withJoining,
  withLeaving,
} from './membership.js';
import { Topology } from './topology.js';

const [a, b, c, d, e] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1', 'http://e:1'] as const;

/**
 * Nodes whose gossip talks in process. What a node sends, to every peer
 * (`hold(url)`) or to one (`hold(url, peer)`), can be held (a slow link) and
 * let go later, so that the order in which views arrive is the test's.
 */
function nodes(urls: readonly string[], view: Membership) {
  const gossips = new Map<string, Gossip>();
  const held = new Map<string, (() => void)[]>();
  for (const url of urls) {
    gossips.set(
      url,
      new Gossip({
        selfUrl: url,
        topology: new Topology(view, { vnodesPerNode: 8 }),
        transport: {
          membership: async (peer, body) => {
            const waiting = held.get(url) ?? held.get(`${url}>${peer}`);
            if (waiting !== undefined) await new Promise<void>((resolve) => waiting.push(resolve));
            const to = gossips.get(peer);
            if (to === undefined) throw new Error(`${peer} is down`);
            return to.receive(body);
          },
          isUp: (peer) => gossips.has(peer),
        },
        persist: async () => {},
      }),
    );
  }
  return {
    node: (url: string) => gossips.get(url)!,
    /** Holds what `url` sends (to `peer` only, if given) from now on. */
    hold: (url: string, peer?: string) => held.set(peer === undefined ? url : `${url}>${peer}`, []),
    /** Lets go of what was held meanwhile, and of what is sent from now on. */
    release: (url: string, peer?: string) => {
      const link = peer === undefined ? url : `${url}>${peer}`;
      const waiting = held.get(link) ?? [];
      held.delete(link);
      for (const resolve of waiting) resolve();
    },
    /** Resolves once `count` messages are held from `url` (bounded: the test's own steps send them). */
    sent: async (url: string, count: number, peer?: string) => {
      const link = peer === undefined ? url : `${url}>${peer}`;
      for (let i = 0; i < 100 && (held.get(link)?.length ?? 0) < count; i++) await new Promise(setImmediate);
      assert.equal(held.get(link)?.length, count);
    },
  };
}

/** Two changes from `view` that conflict, ordered so that `winner` wins the merge. */
function conflicting(view: Membership, x: (v: Membership) => Membership, y: (v: Membership) => Membership) {
  return compareMemberships(y(view), x(view)) > 0 ? { loser: x, winner: y } : { loser: y, winner: x };
}

const unavailable = (err: unknown) => isRingkvError(err, 'RINGKV_UNAVAILABLE');

describe('Gossip: two changes made at once from one view', () => {
  const start = bootstrapMembership([a, b, c, d]);
  const { loser, winner } = conflicting(
    start,
    (v) => withLeaving(v, c, { dead: false }),
    (v) => withLeaving(v, d, { dead: false }),
  );

  test('the change that lost the merge is refused, the one that won is made, every node holds it', async () => {
    const cluster = nodes([a, b, c, d], start);
    const [lost, won] = await Promise.allSettled([
      cluster.node(a).propose(loser),
      cluster.node(b).propose(winner),
    ]);
    assert.equal(lost.status, 'rejected');
    assert.ok(unavailable(lost.reason), String(lost.reason));
    assert.equal(won.status, 'fulfilled');
    assert.ok(sameView(won.value, winner(start)));
    for (const url of [a, b, c, d]) assert.ok(sameView(cluster.node(url).view, won.value), url);
  });

  test('refused too when a later change made on the winner arrives during the push', async () => {
    const cluster = nodes([a, b, c, d], start);
    // a's link is slow: its change is made and stored, its push not yet delivered.
    cluster.hold(a);
    const lost = cluster.node(a).propose(loser);
    await cluster.sent(a, 3);
    assert.ok(sameView(cluster.node(a).view, loser(start)));
    // Meanwhile b's change wins, and the move it started completes (the flip, one epoch later).
    const won = await cluster.node(b).propose(winner);
    const flip = await cluster.node(b).propose(flipped);
    assert.equal(flip.epoch, won.epoch + 1n);
    assert.ok(sameView(cluster.node(a).view, flip));
    cluster.release(a);
    await assert.rejects(lost, unavailable);
    for (const url of [a, b, c, d]) assert.ok(sameView(cluster.node(url).view, flip), url);
  });

  test('a joining node whose join lost is told so, though the view it hears next is a later one', async () => {
    const { loser: join, winner: other } = conflicting(
      start,
      (v) => withJoining(v, e),
      (v) => withLeaving(v, d, { dead: false }),
    );
    const cluster = nodes([a, b, c, d, e], start);
    cluster.hold(e);
    const lost = cluster.node(e).propose(join);
    await cluster.sent(e, 4);
    await cluster.node(b).propose(other);
    const flip = await cluster.node(b).propose(flipped);
    // e is not among the members b pushes to: it hears of the flip only in the answers to its own push.
    cluster.release(e);
    await assert.rejects(lost, unavailable);
    assert.ok(sameView(cluster.node(e).view, flip));
  });

  test('made when a later change made on it arrives during the push', async () => {
    const cluster = nodes([a, b, c, d], start);
    const mine = loser(start);
    // a's push reaches b at once (b holds a's change and completes its move), d's answer comes late.
    cluster.hold(a, d);
    const made = cluster.node(a).propose(loser);
    await cluster.sent(a, 1, d);
    assert.ok(sameView(cluster.node(b).view, mine));
    const flip = await cluster.node(b).propose(flipped);
    assert.equal(flip.epoch, mine.epoch + 1n);
    assert.ok(sameView(cluster.node(a).view, flip));
    cluster.release(a, d);
    assert.ok(sameView(await made, mine));
  });
});

describe('Gossip: rival first views (two --cluster lists)', () => {
  const ours = bootstrapMembership([a, b, c]);
  const theirs = bootstrapMembership([a, b, c, d]);

  /** A node holding `view`, whose peers answer with the views `answers` gives them. */
  function node(view: Membership, answers: ReadonlyMap<string, Membership>) {
    const reported: { view: Membership; peer: string | undefined }[] = [];
    const gossip = new Gossip({
      selfUrl: a,
      topology: new Topology(view, { vnodesPerNode: 8 }),
      transport: {
        membership: async (peer) => {
          const answer = answers.get(peer);
          if (answer === undefined) throw new Error(`${peer} is down`);
          return encodeMembership(answer);
        },
        isUp: (peer) => answers.has(peer),
      },
      persist: async () => {},
      onRivalView: (rival, peer) => reported.push({ view: rival, peer }),
    });
    return { gossip, reported };
  }

  test('neither replaces the other, whichever would win the merge', async () => {
    assert.ok(rivalViews(ours, theirs) && rivalViews(theirs, ours));
    assert.ok(!rivalViews(ours, bootstrapMembership([c, b, a])));
    for (const [held, offered] of [
      [ours, theirs],
      [theirs, ours],
    ] as const) {
      const { gossip, reported } = node(held, new Map());
      assert.equal(await gossip.offer(offered), held);
      assert.equal(gossip.view, held);
      assert.equal(gossip.stats().rivalViews, 1);
      assert.deepEqual(reported, [{ view: offered, peer: undefined }]);
    }
  });

  test('a peer that answers with one is remembered until it answers with another view', async () => {
    const answers = new Map([
      [b, ours],
      [c, theirs],
    ]);
    const { gossip, reported } = node(ours, answers);
    assert.deepEqual(await gossip.exchangeAll(), [b, c]);
    assert.equal(gossip.view, ours);
    assert.deepEqual([...gossip.rivals().keys()], [c]);
    assert.ok(sameView(gossip.rivals().get(c)!, theirs));
    assert.equal(reported.length, 1);
    assert.equal(reported[0]!.peer, c);
    answers.set(c, ours);
    await gossip.exchange(c);
    assert.equal(gossip.rivals().size, 0);
  });

  test('a later view made from the rival first view is not taken either, by a node still at its first view', async () => {
    // Made through a node of the other list (a join through d, say): taking it would put d in the
    // ring with no data moved, just as taking the rival first view itself would.
    for (const [held, later] of [
      [ours, withJoining(theirs, e)],
      [ours, flipped(withJoining(theirs, e))],
      [theirs, withJoining(ours, e)],
      [theirs, flipped(withLeaving(ours, c, { dead: true }))],
    ] as const) {
      const { gossip, reported } = node(held, new Map());
      assert.equal(await gossip.offer(later), held, `epoch ${later.epoch}`);
      assert.equal(gossip.stats().rivalViews, 1);
      assert.equal(reported.length, 1);
    }
  });

  test('a later view made from its own first view is taken as usual, whatever changed since', async () => {
    const start = bootstrapMembership([a, b, c, d]);
    for (const later of [
      withJoining(start, e),
      flipped(withJoining(start, e)),
      flipped(withLeaving(start, d, { dead: true })),
      withLeaving(flipped(withJoining(start, e)), a, { dead: false }),
    ]) {
      const { gossip } = node(start, new Map());
      assert.equal(await gossip.offer(later), later, `epoch ${later.epoch}`);
      assert.equal(gossip.stats().rivalViews, 0);
    }
  });

  test('so is one that dropped a removed member of the first view, then let a removed node join again', async () => {
    // d is removed, and dropped from the view past REMOVED_KEPT_MAX removed members; one of those
    // joins again with its URL, so fewer than REMOVED_KEPT_MAX are removed. b was down all along.
    const start = bootstrapMembership([a, b, c, d]);
    let later = flipped(withLeaving(start, d, { dead: true }));
    for (let i = 0; i < REMOVED_KEPT_MAX; i++) {
      const url = `http://x:${i}`;
      later = flipped(withLeaving(flipped(withJoining(later, url)), url, { dead: true }));
    }
    later = withJoining(later, 'http://x:0');
    assert.ok(!later.members.some((m) => m.url === d));
    const { gossip } = node(start, new Map());
    assert.equal(await gossip.offer(later), later);
    assert.equal(gossip.stats().rivalViews, 0);
  });
});

describe('Gossip: bytes that are not a valid view', () => {
  const held = flipped(withJoining(bootstrapMembership([a, b, c]), d));
  /** Views that would win the merge over `held`, were they valid. */
  const invalid: [string, Membership][] = [
    ['the largest epoch', { ...held, epoch: 2n ** 64n - 1n }],
    ['an epoch past EPOCH_MAX', { ...held, epoch: EPOCH_MAX + 1n }],
    [
      'a member changed after the epoch',
      { epoch: held.epoch + 1n, members: held.members.map((m) => ({ ...m, since: held.epoch + 2n })) },
    ],
    [
      'this node spelled otherwise (and so not listed)',
      {
        epoch: held.epoch + 1n,
        members: [
          ...held.members.filter((m) => m.url !== a),
          { ...held.members[0]!, url: 'http://A:1' },
        ].sort((x, y) => (x.url < y.url ? -1 : 1)),
      },
    ],
    [
      'this node twice, under two spellings',
      {
        epoch: held.epoch + 1n,
        members: [...held.members, { ...held.members[0]!, url: `${a}/`, state: MemberState.Removed }].sort(
          (x, y) => (x.url < y.url ? -1 : 1),
        ),
      },
    ],
  ];

  function node(answer?: Buffer) {
    const stored: Membership[] = [];
    const refusals: { reason: string; peer: string | undefined }[] = [];
    const gossip = new Gossip({
      selfUrl: a,
      topology: new Topology(held, { vnodesPerNode: 8 }),
      transport: {
        membership: async () => {
          if (answer === undefined) throw new Error('down');
          return answer;
        },
        isUp: () => true,
      },
      persist: async (view) => {
        stored.push(view);
      },
      onRefused: (reason, peer) => refusals.push({ reason, peer }),
    });
    return { gossip, stored, refusals };
  }

  for (const [what, view] of invalid) {
    test(`one with ${what} is refused when received, and when answered: never adopted nor stored`, async () => {
      const bytes = encodeMembership(view);
      const receiver = node();
      await assert.rejects(receiver.gossip.receive(bytes), (err: unknown) =>
        isRingkvError(err, 'RINGKV_PROTOCOL'),
      );
      assert.equal(receiver.gossip.view, held);
      assert.deepEqual(receiver.stored, []);
      assert.equal(receiver.refusals.length, 1);
      assert.equal(receiver.refusals[0]!.peer, undefined);
      assert.equal(receiver.gossip.stats().refusedViews, 1);

      const asker = node(bytes);
      assert.equal(await asker.gossip.exchange(b), false);
      assert.equal(asker.gossip.view, held);
      assert.deepEqual(asker.stored, []);
      assert.deepEqual(
        asker.refusals.map((r) => r.peer),
        [b],
      );
      // The node still makes changes.
      assert.equal(
        (await asker.gossip.propose((v) => withLeaving(v, d, { dead: false }))).epoch,
        held.epoch + 1n,
      );
    });
  }
});

describe('Gossip: views heard in any order, stored, and heard again after a restart', () => {
  const start = bootstrapMembership([a, b, c, d]);
  const joined = withJoining(start, e);
  const flip = flipped(joined);
  const leaveD = withLeaving(flip, d, { dead: false });
  const leaveC = withLeaving(flip, c, { dead: true });
  /** A history with two changes made at once (epoch 4) and each one's move completed. */
  const history = [start, joined, flip, leaveD, leaveC, flipped(leaveD), flipped(leaveC)];
  const latest = history.reduce((x, y) => (compareMemberships(x, y) >= 0 ? x : y));

  async function node(vfs: MemoryVfs): Promise<Gossip> {
    const view = (await loadMembership(vfs, '/data')) ?? start;
    return new Gossip({
      selfUrl: a,
      topology: new Topology(view, { vnodesPerNode: 8 }),
      transport: { membership: async () => Promise.reject(new Error('down')), isUp: () => false },
      persist: (next) => saveMembership(vfs, '/data', next),
    });
  }

  test('property: every node ends at the same view, stored; no stale view undoes it, before or after a restart', async () => {
    const order = fc.array(fc.constantFrom(...history.map((_, i) => i)), { minLength: 1, maxLength: 20 });
    await fc.assert(
      fc.asyncProperty(order, order, async (first, again) => {
        const vfs = new MemoryVfs();
        await vfs.mkdir('/data');
        let gossip = await node(vfs);
        for (const i of first) await gossip.offer(history[i]!);
        const best = first.map((i) => history[i]!).reduce((x, y) => (compareMemberships(x, y) >= 0 ? x : y));
        assert.ok(sameView(gossip.view, best));
        // A node that heard nothing but `start` stores nothing: it is still at its first view.
        const stored = await loadMembership(vfs, '/data');
        assert.ok(stored === undefined ? sameView(best, start) : sameView(stored, best));
        // Restarted from its file, it hears every view again, stale ones included, then the rest.
        gossip = await node(vfs);
        for (const i of [...again, ...first]) await gossip.offer(history[i]!);
        const after = [...first, ...again]
          .map((i) => history[i]!)
          .reduce((x, y) => (compareMemberships(x, y) >= 0 ? x : y));
        assert.ok(sameView(gossip.view, after));
        const reloaded = await loadMembership(vfs, '/data');
        assert.ok(reloaded === undefined ? sameView(after, start) : sameView(reloaded, after));
        // Hearing them all leaves every node at the latest one.
        for (const view of history) await gossip.offer(view);
        assert.ok(sameView(gossip.view, latest));
        assert.ok(sameView((await loadMembership(vfs, '/data'))!, latest));
      }),
      propertyParams({ numRuns: 100 }),
    );
  });
});
