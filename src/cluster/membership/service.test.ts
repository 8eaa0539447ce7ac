import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Engine, MemoryVfs } from '../../storage/index.js';
import { isRingkvError } from '../../util/errors.js';
import { loadMembership, saveMembership } from './file.js';
import { encodeMembership } from './format.js';
import { bootstrapMembership, flipped, type Membership, withJoining, withLeaving } from './membership.js';
import { MembershipService } from './service.js';

const [a, b, c, d, e] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1', 'http://e:1'] as const;
const DIR = '/data';

/**
 * A node `self` started with `--cluster list`, whose peers answer a
 * membership exchange with `answer(peer, call)` (call counts from 1 per
 * peer; undefined: the peer is down). Nothing else is reached: the start
 * ends before the mover runs, or the test stops the service.
 */
async function node(
  self: string,
  list: readonly string[],
  answer: (peer: string, call: number) => Membership | undefined,
  stored?: Membership,
  vfs: MemoryVfs = new MemoryVfs(),
) {
  await vfs.mkdir(DIR);
  if (stored !== undefined) await saveMembership(vfs, DIR, stored);
  const calls = new Map<string, number>();
  const records: { event: string; line: string }[] = [];
  const refused = async () => {
    throw new Error('not reached in these tests');
  };
  const open = () =>
    MembershipService.open(
      { selfUrl: self, dataDir: DIR, cluster: list },
      {
        vfs,
        engine: {} as Engine,
        transport: {
          membership: async (peer) => {
            const call = (calls.get(peer) ?? 0) + 1;
            calls.set(peer, call);
            const view = answer(peer, call);
            if (view === undefined) throw new Error(`${peer} is down`);
            return encodeMembership(view);
          },
          stream: refused,
          move: refused,
          isUp: () => true,
        },
        log: (_level, event, line) => records.push({ event, line }),
      },
    );
  return { vfs, records, open };
}

const isConfig = (pattern: RegExp) => (err: unknown) =>
  isRingkvError(err, 'RINGKV_CONFIG') && pattern.test((err as Error).message);

describe('MembershipService: a first start beside other views', () => {
  const three = [a, b, c];
  const four = [a, b, c, d];

  test('a rival first view answered before the start is refused, naming its node, and nothing is stored', async () => {
    const { vfs, open } = await node(d, four, (peer) =>
      peer === b ? bootstrapMembership(three) : undefined,
    );
    await assert.rejects(
      open(),
      isConfig(
        /^http:\/\/b:1 holds another first view of the cluster \(epoch 1, members .*\): .*--join http:\/\/b:1$/,
      ),
    );
    assert.equal(await loadMembership(vfs, DIR), undefined);
  });

  test('one met first in the start exchange (its node started at the same time) is refused too', async () => {
    const { vfs, open } = await node(d, four, (peer, call) =>
      peer === c && call > 1 ? bootstrapMembership(three) : undefined,
    );
    const service = await open();
    await assert.rejects(service.start(), isConfig(/^http:\/\/c:1 holds another first view/));
    assert.equal(await loadMembership(vfs, DIR), undefined);
  });

  test('a later view that leaves this node out, or removed it, is refused before anything is stored', async () => {
    const joined = flipped(withJoining(bootstrapMembership(three), e));
    const out = await node(d, four, () => joined);
    await assert.rejects(out.open(), isConfig(/^This node \(http:\/\/d:1\) is not a member .* --join/));
    assert.equal(await loadMembership(out.vfs, DIR), undefined);

    const removed = flipped(withLeaving(bootstrapMembership(four), d, { dead: true }));
    const gone = await node(d, four, () => removed);
    await assert.rejects(gone.open(), isConfig(/^This node \(http:\/\/d:1\) was removed from the cluster/));
  });

  test('a later view made from a rival first view is refused, though it lists this node', async () => {
    // The cluster was formed as a, b, c, e; d joined it, lost its disk, and is started with the wrong list.
    const theirs = flipped(withJoining(bootstrapMembership([a, b, c, e]), d));
    const { vfs, open } = await node(d, four, () => theirs);
    await assert.rejects(
      open(),
      isConfig(
        /^http:\/\/a:1 holds a membership made from another first view of the cluster \(epoch 3, members .*\): .*--join http:\/\/a:1$/,
      ),
    );
    assert.equal(await loadMembership(vfs, DIR), undefined);
  });

  test('peers that lag behind the latest view answered do not refuse the start', async () => {
    // a, b, c formed the cluster; d joined it (epoch 3), then lost its disk and is started with
    // --cluster a,b,c,d. b and c have not heard of the flip yet: b's first view is a rival of d's.
    const later = flipped(withJoining(bootstrapMembership(three), d));
    const lagging = new Map<string, Membership>([
      [a, later],
      [b, bootstrapMembership(three)],
      [c, withJoining(bootstrapMembership(three), d)],
    ]);
    const { open } = await node(d, four, (peer) => lagging.get(peer));
    const service = await open();
    await service.start();
    await service.stop();
    assert.deepEqual(service.topology.view, later);
  });

  test('the same first view, or none, lets it start, and its view is stored only once started', async () => {
    const { vfs, open } = await node(d, four, (peer) => (peer === a ? bootstrapMembership(four) : undefined));
    const service = await open();
    assert.equal(await loadMembership(vfs, DIR), undefined);
    await service.start();
    await service.stop();
    assert.deepEqual(await loadMembership(vfs, DIR), bootstrapMembership(four));
  });

  test('a later view adopted while the first view is being stored is the one left stored', async () => {
    // The first write of MEMBERSHIP (the first view's, in start()) waits until a later view is pushed.
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached!: () => void;
    const storing = new Promise<void>((resolve) => {
      reached = resolve;
    });
    let first = true;
    class GatedVfs extends MemoryVfs {
      override async open(...args: Parameters<MemoryVfs['open']>) {
        if (first && args[0].endsWith('MEMBERSHIP.tmp')) {
          first = false;
          reached();
          await released;
        }
        return super.open(...args);
      }
    }
    const { vfs, open } = await node(d, four, () => undefined, undefined, new GatedVfs());
    const service = await open();
    const started = service.start();
    await storing;
    const later = flipped(withJoining(bootstrapMembership(four), e));
    const pushed = service.handlers.membership(encodeMembership(later));
    // Unordered, the push is adopted and stored during the first view's write; in turn, it waits for it.
    for (let i = 0; i < 100 && service.topology.epoch !== later.epoch; i++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    release();
    await Promise.all([started, pushed]);
    await service.stop();
    assert.deepEqual(service.topology.view, later);
    assert.deepEqual(await loadMembership(vfs, DIR), later);
  });

  test('a node that was started before keeps its stored view beside a rival, and logs it once', async () => {
    const { records, open } = await node(
      a,
      three,
      () => bootstrapMembership(four),
      bootstrapMembership(three),
    );
    const service = await open();
    await service.start();
    await service.gossip.exchangeAll();
    await service.stop();
    assert.deepEqual(service.topology.view, bootstrapMembership(three));
    const rival = records.filter((r) => r.event === 'membership.rival-view');
    assert.equal(rival.length, 1, JSON.stringify(records));
    assert.match(
      rival[0]!.line,
      /another first view of the cluster \(epoch 1, members http:\/\/a:1,http:\/\/b:1,http:\/\/c:1,http:\/\/d:1\), started with another --cluster list than this node's first view \(members http:\/\/a:1,http:\/\/b:1,http:\/\/c:1\): it is not taken/,
    );
    assert.equal(service.gossip.stats().rivalViews, 4);
  });
});

describe('MembershipService: a view that is not a valid one', () => {
  test('is refused with one record naming its peer and why; the stored view stays', async () => {
    const three = [a, b, c];
    const stored = bootstrapMembership(three);
    const absurd: Membership = { ...flipped(withJoining(stored, d)), epoch: 2n ** 64n - 1n };
    const { vfs, records, open } = await node(a, three, () => absurd, stored);
    const service = await open();
    await service.start();
    await service.gossip.exchangeAll();
    await assert.rejects(service.handlers.membership(encodeMembership(absurd)));
    await service.stop();
    assert.deepEqual(service.topology.view, stored);
    assert.deepEqual(await loadMembership(vfs, DIR), stored);
    const refused = records.filter((r) => r.event === 'membership.refused');
    assert.deepEqual(refused.map((r) => r.line.split(' ')[0]).sort(), ['A', b, c], JSON.stringify(records));
    assert.match(refused[0]!.line, /epoch 18446744073709551615, more than 9007199254740991/);
  });
});
