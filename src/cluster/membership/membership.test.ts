import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { propertyParams } from '../../../test/support/property.js';
import { isRingkvError, RingkvError } from '../../util/errors.js';
import {
  decodeMembership,
  decodeMoveRequest,
  decodeStreamPage,
  decodeStreamRequest,
  EPOCH_MAX,
  encodeMembership,
  encodeMoveRequest,
  encodeStreamPage,
  encodeStreamRequest,
  MoveKind,
} from './format.js';
import {
  bootstrapMembership,
  cancelled,
  compareMemberships,
  currentMembers,
  EMPTY_MEMBERSHIP,
  findMember,
  flipped,
  futureMembers,
  holdsChange,
  leavingAlready,
  MEMBERS_MAX,
  type Member,
  MemberState,
  type Membership,
  mergeMemberships,
  moveUnderWay,
  REMOVED_KEPT_MAX,
  rivalViews,
  withJoining,
  withLeaving,
} from './membership.js';

const [a, b, c, d, e] = ['http://a:1', 'http://b:1', 'http://c:1', 'http://d:1', 'http://e:1'] as const;

function states(view: Membership): Record<string, string> {
  return Object.fromEntries(view.members.map((m) => [m.url, `${m.state}${m.dead ? '+dead' : ''}`]));
}

function refused(make: () => unknown, pattern: RegExp): void {
  assert.throws(
    make,
    (err: unknown) => isRingkvError(err, 'RINGKV_BAD_REQUEST') && pattern.test(err.message),
  );
}

/** Any valid view: distinct sorted URLs, any states and epochs, each member changed at one of its epochs. */
const memberArb = (epoch: bigint): fc.Arbitrary<Member> =>
  fc
    .record({
      port: fc.integer({ min: 1, max: 40 }),
      state: fc.constantFrom(
        MemberState.Joining,
        MemberState.Normal,
        MemberState.Leaving,
        MemberState.Removed,
      ),
      dead: fc.boolean(),
      token: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
      since: fc.bigInt({ min: 1n, max: epoch }),
    })
    .map(({ port, state, dead, token, since }) => {
      const url = `http://n:${port}`;
      return { url, state, dead, token: token === undefined ? url : `http://n:${token}`, since };
    });
const viewArb: fc.Arbitrary<Membership> = fc
  .oneof(
    fc.constant(EMPTY_MEMBERSHIP),
    fc.bigInt({ min: 1n, max: 6n }).chain((epoch) =>
      fc.record({
        epoch: fc.constant(epoch),
        members: fc.uniqueArray(memberArb(epoch), { selector: (m) => m.url, maxLength: 6 }),
      }),
    ),
  )
  .map(({ epoch, members }) => ({ epoch, members: [...members].sort((x, y) => (x.url < y.url ? -1 : 1)) }));

describe('membership: the model', () => {
  test('bootstrap: epoch 1, every node normal, the same view whatever the order', () => {
    const one = bootstrapMembership([c, a, b]);
    assert.equal(one.epoch, 1n);
    assert.deepEqual(states(one), { [a]: '2', [b]: '2', [c]: '2' });
    assert.deepEqual(encodeMembership(one), encodeMembership(bootstrapMembership([a, b, c, a])));
    assert.equal(compareMemberships(one, bootstrapMembership([b, c, a])), 0);
  });

  test('a join, then its flip: joining in the future ring only, then normal in both', () => {
    const start = bootstrapMembership([a, b, c]);
    const joining = withJoining(start, d);
    assert.equal(joining.epoch, 2n);
    assert.ok(moveUnderWay(joining));
    assert.deepEqual(
      currentMembers(joining).map((m) => m.url),
      [a, b, c],
    );
    assert.deepEqual(
      futureMembers(joining).map((m) => m.url),
      [a, b, c, d],
    );
    const done = flipped(joining);
    assert.equal(done.epoch, 3n);
    assert.ok(!moveUnderWay(done));
    assert.deepEqual(
      currentMembers(done).map((m) => m.url),
      [a, b, c, d],
    );
    assert.equal(done.members.find((m) => m.url === d)!.since, 3n);
  });

  test('decommission and remove: leaving, then removed; a removed member stays listed', () => {
    const start = bootstrapMembership([a, b, c, d]);
    const leaving = withLeaving(start, c, { dead: false });
    assert.deepEqual(
      futureMembers(leaving).map((m) => m.url),
      [a, b, d],
    );
    const removed = flipped(leaving);
    assert.deepEqual(states(removed), { [a]: '2', [b]: '2', [c]: '4', [d]: '2' });
    const dead = withLeaving(removed, d, { dead: true });
    assert.equal(dead.members.find((m) => m.url === d)!.dead, true);
    assert.deepEqual(
      currentMembers(flipped(dead)).map((m) => m.url),
      [a, b],
    );
  });

  test('leavingAlready: the same leave asked again is under way or done; any other change is not', () => {
    const start = bootstrapMembership([a, b, c, d]);
    assert.equal(leavingAlready(start, c, { dead: true }), undefined);
    const removing = withLeaving(start, c, { dead: true });
    assert.equal(leavingAlready(removing, c, { dead: true }), 'under way');
    // A decommission of a node being removed is another change, and so is a leave within a replace.
    assert.equal(leavingAlready(removing, c, { dead: false }), undefined);
    assert.equal(leavingAlready(removing, d, { dead: true }), undefined);
    assert.equal(leavingAlready(flipped(removing), c, { dead: false }), 'done');
    assert.equal(leavingAlready(withJoining(start, e, { replaces: c }), c, { dead: true }), undefined);
    assert.equal(leavingAlready(cancelled(removing), c, { dead: true }), undefined);
  });

  test("replace: the new node joins with the dead node's token, which leaves as dead", () => {
    const start = withLeaving(flipped(withJoining(bootstrapMembership([a, b, c]), d)), a, { dead: false });
    const view = withJoining(flipped(start), e, { replaces: c });
    assert.deepEqual(states(view), { [a]: '4', [b]: '2', [c]: '3+dead', [d]: '2', [e]: '1' });
    assert.equal(view.members.find((m) => m.url === e)!.token, c);
    const done = flipped(view);
    assert.deepEqual(states(done), { [a]: '4', [b]: '2', [c]: '4+dead', [d]: '2', [e]: '2' });
    // A replacement of the replacement keeps the first token.
    const again = withJoining(done, c, { replaces: e });
    assert.equal(again.members.find((m) => m.url === c)!.token, c);
  });

  test('cancel: joining members are removed, leaving ones normal again', () => {
    const view = withJoining(bootstrapMembership([a, b, c]), e, { replaces: b });
    const back = cancelled(view);
    assert.deepEqual(states(back), { [a]: '2', [b]: '2', [c]: '2', [e]: '4' });
    assert.ok(!moveUnderWay(back));
    // A node removed by a cancel may join again.
    assert.equal(withJoining(back, e).members.find((m) => m.url === e)!.state, MemberState.Joining);
  });

  test('refusals: one move at a time, members in the right state, never the last member', () => {
    const start = bootstrapMembership([a, b, c]);
    const joining = withJoining(start, d);
    refused(() => withJoining(joining, e), /a move is under way \(http:\/\/d:1 joining\)/);
    refused(() => withLeaving(joining, a, { dead: false }), /a move is under way/);
    refused(() => withJoining(start, a), /already normal/);
    refused(() => withLeaving(start, d, { dead: true }), /not a member/);
    refused(() => withJoining(start, d, { replaces: e }), /not a member/);
    refused(() => flipped(start), /No move under way/);
    refused(() => cancelled(start), /No move under way/);
    refused(() => withLeaving(bootstrapMembership([a]), a, { dead: false }), /the last member/);
  });

  test(`removed members: at most ${REMOVED_KEPT_MAX} are kept, the oldest dropped first`, () => {
    let view = bootstrapMembership([a, b]);
    for (let i = 0; i < REMOVED_KEPT_MAX + 3; i++) {
      const url = `http://x:${1000 + i}`;
      view = flipped(withLeaving(flipped(withJoining(view, url)), url, { dead: true }));
    }
    const removed = view.members.filter((m) => m.state === MemberState.Removed);
    assert.equal(removed.length, REMOVED_KEPT_MAX);
    assert.ok(!view.members.some((m) => m.url === 'http://x:1000'));
    assert.ok(view.members.some((m) => m.url === `http://x:${1000 + REMOVED_KEPT_MAX + 2}`));
  });
});

describe('membership: the merge rule', () => {
  test('the higher epoch wins; an empty view loses to anything', () => {
    const start = bootstrapMembership([a, b, c]);
    const joining = withJoining(start, d);
    assert.equal(mergeMemberships(start, joining), joining);
    assert.equal(mergeMemberships(joining, start), joining);
    assert.equal(mergeMemberships(EMPTY_MEMBERSHIP, start), start);
  });

  test('equal epochs: two concurrent changes resolve to the same one on every node', () => {
    const start = bootstrapMembership([a, b, c]);
    const viaA = withJoining(start, d);
    const viaB = withJoining(start, e);
    const winner = mergeMemberships(viaA, viaB);
    assert.equal(mergeMemberships(viaB, viaA), winner);
    assert.ok(winner === viaA || winner === viaB);
  });

  test('property: commutative, associative, idempotent; the epoch never goes down', () => {
    fc.assert(
      fc.property(viewArb, viewArb, viewArb, (x, y, z) => {
        const key = (v: Membership) => encodeMembership(v).toString('hex');
        assert.equal(key(mergeMemberships(x, y)), key(mergeMemberships(y, x)));
        assert.equal(
          key(mergeMemberships(x, mergeMemberships(y, z))),
          key(mergeMemberships(mergeMemberships(x, y), z)),
        );
        assert.equal(key(mergeMemberships(x, x)), key(x));
        const merged = mergeMemberships(x, y);
        assert.ok(merged.epoch >= x.epoch && merged.epoch >= y.epoch);
        assert.ok(merged === x || merged === y);
      }),
      propertyParams({ numRuns: 500 }),
    );
  });

  test('property: nodes that hear the same views in any order, any number of times, agree', () => {
    fc.assert(
      fc.property(
        fc.array(viewArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 30 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 30 }),
        (views, order1, order2) => {
          const fold = (order: number[]) =>
            [...views, ...order.map((i) => views[i % views.length]!)].reduce(
              (held, view) => mergeMemberships(held, view),
              EMPTY_MEMBERSHIP,
            );
          assert.equal(compareMemberships(fold(order1), fold(order2)), 0);
        },
      ),
      propertyParams({ numRuns: 300 }),
    );
  });
});

describe('membership: whether a view holds a change', () => {
  const start = bootstrapMembership([a, b, c, d]);
  /** Every change that can be made to `view`. */
  function changes(view: Membership): Membership[] {
    const makes = [
      ...[a, b, c, d].flatMap((url) => [
        () => withLeaving(view, url, { dead: false }),
        () => withLeaving(view, url, { dead: true }),
      ]),
      () => withJoining(view, e),
      () => withJoining(view, e, { replaces: d }),
      () => flipped(view),
      () => cancelled(view),
    ];
    return makes.flatMap((make) => {
      try {
        return [make()];
      } catch {
        return [];
      }
    });
  }
  const changedUrls = (view: Membership) =>
    view.members.filter((m) => m.since === view.epoch).map((m) => m.url);

  test('two changes made at once from one view: a later view made on either holds it, not the other', () => {
    let pairs = 0;
    for (const from of [start, withLeaving(start, d, { dead: false }), withJoining(start, e)]) {
      const made = changes(from);
      for (const x of made) {
        assert.ok(holdsChange(x, x));
        assert.equal(holdsChange(from, x), false);
        for (const y of made) {
          if (compareMemberships(x, y) === 0) continue;
          pairs++;
          assert.equal(holdsChange(y, x), false);
          const yOnly = !changedUrls(x).every((url) => changedUrls(y).includes(url));
          for (const later of changes(y)) {
            assert.ok(holdsChange(later, y));
            for (const next of changes(later)) assert.ok(holdsChange(next, y));
            // x changed a member y did not: every view made on y shows that member as it was.
            if (yOnly) assert.equal(holdsChange(later, x), false);
          }
        }
      }
    }
    assert.ok(pairs > 50, String(pairs));
  });

  test('a flip and a cancel of one move: a later view made on the cancel does not hold the flip', () => {
    const moving = withJoining(start, e);
    const flip = flipped(moving);
    const cancel = cancelled(moving);
    assert.equal(holdsChange(withLeaving(cancel, a, { dead: false }), flip), false);
    assert.equal(holdsChange(withLeaving(flip, a, { dead: false }), cancel), false);
    assert.ok(holdsChange(withLeaving(flip, a, { dead: false }), flip));
  });
});

describe('membership: rival views (a node still at its first view)', () => {
  interface Step {
    readonly kind: number;
    readonly pick: number;
    readonly other: number;
  }
  const stepArb: fc.Arbitrary<Step> = fc.record({
    kind: fc.integer({ min: 0, max: 8 }),
    pick: fc.nat(),
    other: fc.nat(),
  });
  const stepsArb = fc.array(stepArb, { maxLength: 60, size: 'max' });
  const firstArb = fc
    .uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 })
    .map((ports) => bootstrapMembership(ports.map((port) => `http://n:${port}`)));
  /** Not in any first view firstArb makes, nor among the URLs history() makes up. */
  const outsider = 'http://n:99';

  /**
   * Every view of a legitimate history made from `first`, in order: joins (of new URLs, and of
   * removed ones again), replaces, decommissions, removes, flips, cancels, two changes made at once
   * (either wins), and runs of joins and removes past REMOVED_KEPT_MAX removed members. Steps that
   * cannot be made on the view they meet are skipped.
   */
  function history(first: Membership, steps: readonly Step[]): Membership[] {
    const views = [first];
    let view = first;
    let fresh = 0;
    const newUrl = () => `http://x:${++fresh}`;
    const pickOf = (v: Membership, state: MemberState, pick: number) => {
      const urls = v.members.filter((m) => m.state === state).map((m) => m.url);
      if (urls.length === 0) throw new RingkvError('RINGKV_BAD_REQUEST', 'none to pick');
      return urls[pick % urls.length]!;
    };
    const change = (v: Membership, { kind, pick, other }: Step): Membership => {
      switch (kind) {
        case 0:
          return withJoining(v, newUrl());
        case 1: {
          // A removed node joins again with its URL, placed by it or by the dead member it replaces.
          const url = pickOf(v, MemberState.Removed, pick);
          return other % 2 === 0
            ? withJoining(v, url)
            : withJoining(v, url, { replaces: pickOf(v, MemberState.Normal, other) });
        }
        case 2:
          return withJoining(v, newUrl(), { replaces: pickOf(v, MemberState.Normal, pick) });
        case 3:
        case 4:
          return withLeaving(v, pickOf(v, MemberState.Normal, pick), { dead: kind === 4 });
        case 5:
          return flipped(v);
        default:
          return cancelled(v);
      }
    };
    for (const step of steps) {
      try {
        if (step.kind === 7) {
          for (let i = 0; i <= step.pick % 40; i++) {
            const url = newUrl();
            for (const next of [
              (v: Membership) => withJoining(v, url),
              flipped,
              (v: Membership) => withLeaving(v, url, { dead: true }),
              flipped,
            ]) {
              view = next(view);
              views.push(view);
            }
          }
        } else if (step.kind === 8) {
          const x = change(view, { ...step, kind: step.pick % 7 });
          const y = change(view, { ...step, kind: step.other % 7 });
          views.push(x, y);
          view = mergeMemberships(x, y);
        } else {
          view = change(view, step);
          views.push(view);
        }
      } catch (err) {
        if (!isRingkvError(err, 'RINGKV_BAD_REQUEST')) throw err;
      }
    }
    return views;
  }

  test('a node down since its first view takes a view made after a dropped removed member and a removed one joining again', () => {
    const first = bootstrapMembership([a, b, c]);
    let view = flipped(withLeaving(first, c, { dead: true }));
    for (let i = 0; i < REMOVED_KEPT_MAX; i++) {
      const url = `http://x:${i}`;
      view = flipped(withLeaving(flipped(withJoining(view, url)), url, { dead: true }));
    }
    view = withJoining(view, 'http://x:5');
    assert.equal(findMember(view, c), undefined);
    assert.equal(view.members.filter((m) => m.state === MemberState.Removed).length, REMOVED_KEPT_MAX - 1);
    assert.equal(rivalViews(first, view), false);
  });

  test('property: no view of a legitimate history is a rival of its first view', () => {
    fc.assert(
      fc.property(firstArb, stepsArb, (first, steps) => {
        for (const view of history(first, steps)) {
          assert.equal(
            rivalViews(first, view),
            false,
            `epoch ${view.epoch}: ${JSON.stringify(states(view))}`,
          );
        }
      }),
      propertyParams({ numRuns: 200 }),
    );
  });

  test('property: views of a history made from another first list are rivals, while their members tell', () => {
    fc.assert(
      fc.property(firstArb, stepsArb, (first, steps) => {
        // Their list has one node more, which stays untouched: every view of theirs shows it at epoch 1.
        const theirs = bootstrapMembership([...first.members.map((m) => m.url), outsider]);
        const keep = (view: Membership) => findMember(view, outsider)?.since === 1n;
        for (const view of history(theirs, steps).filter(keep)) assert.ok(rivalViews(first, view));
        // Their list has one node less: a view lacks it, unless it could have dropped it as removed.
        for (const view of history(first, steps)) {
          const changed = view.members.filter((m) => m.since !== 1n).length;
          if (changed < REMOVED_KEPT_MAX) assert.ok(rivalViews(theirs, view), `epoch ${view.epoch}`);
        }
      }),
      propertyParams({ numRuns: 100 }),
    );
  });
});

describe('membership: the bytes', () => {
  test('property: a view round-trips through its encoding', () => {
    fc.assert(
      fc.property(viewArb, (view) => {
        const decoded = decodeMembership(encodeMembership(view));
        assert.notEqual(typeof decoded, 'string', String(decoded));
        assert.deepEqual(decoded, view);
      }),
      propertyParams({ numRuns: 300 }),
    );
  });

  test('damage is refused: every flipped byte, every truncation', () => {
    const bytes = encodeMembership(withJoining(bootstrapMembership([a, b, c]), d, { replaces: b }));
    for (let i = 0; i < bytes.length; i++) {
      const damaged = Buffer.from(bytes);
      damaged[i]! ^= 0x40;
      assert.equal(typeof decodeMembership(damaged), 'string', `flipped byte ${i}`);
    }
    for (let length = 0; length < bytes.length; length++) {
      assert.equal(typeof decodeMembership(bytes.subarray(0, length)), 'string', `cut at ${length}`);
    }
  });

  test('property: a view with an absurd epoch or since, or a member URL spelled otherwise, is refused', () => {
    /** Ways to spell a member's URL that a node never spells it (nodeAddress() would respell them). */
    const respelled = (url: string): string[] => {
      const { hostname, port } = new URL(url);
      return [
        `http://${hostname.toUpperCase()}:${port}`,
        `${url}/`,
        `http://${hostname}:0${port}`,
        `HTTP://${hostname}:${port}`,
        `http://${hostname}`,
        `https://${hostname}:${port}`,
        `http://${hostname}:${port}/x`,
        ` ${url}`,
      ];
    };
    const sorted = (members: Member[]) => [...members].sort((x, y) => (x.url < y.url ? -1 : 1));
    const absurd = fc.oneof(
      // Epochs past EPOCH_MAX (up to the u64 maximum), whatever the members.
      fc
        .tuple(viewArb, fc.bigInt({ min: EPOCH_MAX + 1n, max: 2n ** 64n - 1n }))
        .map(([view, epoch]) => ({ ...view, epoch })),
      // Members at epoch 0 (only the empty view has it).
      viewArb
        .filter((view) => view.members.length > 0)
        .map((view) => ({ ...view, epoch: 0n, members: view.members.map((m) => ({ ...m, since: 0n })) })),
      // A member changed at epoch 0 or after the view's epoch.
      fc
        .tuple(
          viewArb.filter((view) => view.members.length > 0),
          fc.nat(),
          fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 64n - 1n })),
        )
        .map(([view, at, more]) => {
          const i = at % view.members.length;
          const since =
            more === 0n ? 0n : view.epoch + more > 2n ** 64n - 1n ? 2n ** 64n - 1n : view.epoch + more;
          return { ...view, members: view.members.map((m, j) => (j === i ? { ...m, since } : m)) };
        }),
      // A member's URL (or token) spelled otherwise, beside the others or beside its own spelling.
      fc
        .tuple(
          viewArb.filter((view) => view.members.length > 0),
          fc.nat(),
          fc.nat(),
          fc.constantFrom('url', 'token', 'both'),
        )
        .map(([view, at, how, what]) => {
          const i = at % view.members.length;
          const member = view.members[i]!;
          const spellings = respelled(member.url);
          const url = spellings[how % spellings.length]!;
          const changed = what === 'token' ? { ...member, token: url } : { ...member, url };
          const others = what === 'both' ? view.members : view.members.filter((_, j) => j !== i);
          return { ...view, members: sorted([...others, changed]) };
        }),
    );
    fc.assert(
      fc.property(absurd, (view) => {
        const decoded = decodeMembership(encodeMembership(view));
        assert.equal(
          typeof decoded,
          'string',
          `taken: ${JSON.stringify(view, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`,
        );
      }),
      propertyParams({ numRuns: 300 }),
    );
    // And the edges that stay valid.
    const edge = {
      epoch: EPOCH_MAX,
      members: [{ url: a, state: MemberState.Normal, dead: false, token: a, since: EPOCH_MAX }],
    };
    assert.deepEqual(decodeMembership(encodeMembership(edge)), edge);
  });

  test(`a join past ${MEMBERS_MAX} members is refused: a view every node can decode is all it makes`, () => {
    const urls = Array.from({ length: MEMBERS_MAX - 1 }, (_, i) => `http://n:${i + 1}`);
    const full = withJoining(bootstrapMembership(urls), 'http://n:9999');
    assert.equal(full.members.length, MEMBERS_MAX);
    assert.deepEqual(decodeMembership(encodeMembership(full)), full);
    refused(() => withJoining(flipped(full), 'http://m:1'), /cannot join: the membership lists 1024 members/);
  });

  test('STREAM and MOVE bodies round-trip', () => {
    const request = {
      epoch: 7n,
      view: 0xfedcba9876543210n,
      target: d,
      start: Buffer.from('key-1'),
      limit: 512,
    };
    assert.deepEqual(decodeStreamRequest(encodeStreamRequest(request)), request);
    const page = {
      epoch: 7n,
      view: 0x0123456789abcdefn,
      more: true,
      estimatedBytes: 123_456,
      coveredThrough: Buffer.from('key-9'),
      entries: [
        { key: Buffer.from('k1'), version: 5n, kind: 1 as const, expiresAtMs: 0, value: Buffer.from('v') },
        { key: Buffer.from('k2'), version: 6n, kind: 2 as const, expiresAtMs: 0, value: Buffer.alloc(0) },
      ],
    };
    assert.deepEqual(decodeStreamPage(encodeStreamPage(page)), page);
    assert.deepEqual(decodeMoveRequest(encodeMoveRequest(MoveKind.Remove, c)), {
      kind: MoveKind.Remove,
      argument: c,
    });
    assert.throws(() => decodeMoveRequest(Buffer.from([9])), /unknown move request kind/);
  });
});
