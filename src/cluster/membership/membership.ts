/**
 * Membership as data: which nodes make up the cluster, each one's state, and
 * an epoch that only grows. Every node keeps one view (persisted in its data
 * directory, file.ts), spreads it (gossip.ts) and computes its rings from it
 * (topology.ts):
 *
 *   current ring = members that are normal or leaving   (reads; writes count `ack` here)
 *   future ring  = members that are normal or joining   (only while a move is under way)
 *
 * A member's life:
 *
 *   joining --flip--> normal --decommission / remove--> leaving --flip--> removed
 *      |                                                   |
 *      +--cancel--> removed                                +--cancel--> normal
 *
 * A *move* is under way while some member is joining or leaving. Only one
 * move at a time: a change that would start another is refused until the
 * first one flips (every joining member becomes normal, every leaving one
 * removed, in one new epoch) or is cancelled. Every change makes a new view
 * with the epoch one higher than the view it was made from.
 *
 * The merge rule (mergeMemberships), which every node applies to every view
 * it hears of: the higher epoch wins; at equal epochs (two changes made at
 * once from the same view, through two nodes) the view whose encoding
 * (format.ts) is larger, byte by byte, wins. The merge picks one of the two
 * views whole, never a mixture, so it is commutative, associative and
 * idempotent, and all nodes that have heard of the same views hold the same
 * one. The losing change is simply not made: the node that made it sees so
 * in the merged view and reports it (or tries again on the new view).
 *
 * One exception: two different views of epoch 1 are two first views, of
 * nodes started with different `--cluster` lists, and neither replaces the
 * other (rivalViews). Taking one over the other would change the ring with
 * no move: keys would be read from nodes that never held them, and dropped
 * by those that did. Nor does a node still at its first view take a later
 * view made from a rival one (a change made through a node of the other
 * list), for the same reason. A node refuses to start beside a rival view
 * (service.ts); running nodes that meet one keep their own and report it.
 *
 * Removed members stay in the view (at most REMOVED_KEPT_MAX of them, the
 * oldest dropped first), so that a removed node that comes back learns it
 * was removed rather than being unknown.
 */
import { createHash } from 'node:crypto';
import { compareBytes } from '../../util/bytes.js';
import { RingkvError } from '../../util/errors.js';
import { encodeMembership } from './format.js';

/** On-disk and on-wire values (format.ts): never renumber. */
export const MemberState = {
  Joining: 1,
  Normal: 2,
  Leaving: 3,
  Removed: 4,
} as const;
export type MemberState = (typeof MemberState)[keyof typeof MemberState];

export const MEMBER_STATE_NAMES: Readonly<Record<MemberState, string>> = {
  [MemberState.Joining]: 'joining',
  [MemberState.Normal]: 'normal',
  [MemberState.Leaving]: 'leaving',
  [MemberState.Removed]: 'removed',
};

export interface Member {
  /** The node's URL, normalized (`http://host:port`). */
  readonly url: string;
  readonly state: MemberState;
  /**
   * Known dead (set by `remove` and `--replace`): nothing is streamed from
   * it, and the move does not wait for it.
   */
  readonly dead: boolean;
  /** The name its ring points are placed by: its URL, or that of the dead node it replaced. */
  readonly token: string;
  /** The epoch of the view in which its state last changed. */
  readonly since: bigint;
}

export interface Membership {
  readonly epoch: bigint;
  /** Sorted by URL, each URL once. */
  readonly members: readonly Member[];
}

/** Removed members kept in a view (so that a returning node learns it was removed); the oldest go first. */
export const REMOVED_KEPT_MAX = 64;
/** Members in a view at most (format.ts refuses more): far beyond any cluster a ring of 4,096 points per node serves. */
export const MEMBERS_MAX = 1024;

/** The view of a node that knows nothing yet (epoch 0, no members): loses every merge. */
export const EMPTY_MEMBERSHIP: Membership = Object.freeze({ epoch: 0n, members: Object.freeze([]) });

/** The first view of a cluster started with `--cluster`: epoch 1, every node normal. Equal on every node given the same URLs. */
export function bootstrapMembership(urls: readonly string[]): Membership {
  const members = [...new Set(urls)]
    .sort()
    .map((url): Member => ({ url, state: MemberState.Normal, dead: false, token: url, since: 1n }));
  return { epoch: 1n, members };
}

/** >0 when `a` wins over `b`: the higher epoch, then the larger encoding. 0 only for equal views. */
export function compareMemberships(a: Membership, b: Membership): number {
  if (a.epoch !== b.epoch) return a.epoch > b.epoch ? 1 : -1;
  return compareBytes(encodeMembership(a), encodeMembership(b));
}

/** Whether two views are the same view: equal epochs are not enough (two changes made at once share one). */
export function sameView(a: Membership, b: Membership): boolean {
  return a === b || compareMemberships(a, b) === 0;
}

const digests = new WeakMap<Membership, bigint>();

/**
 * A view's identity on the wire: 64 bits of a SHA-256 of its encoding. A
 * move's messages carry it beside the epoch, so that a node holding another
 * view of the same epoch (a change that lost the merge) is never taken for
 * one holding the move's view.
 */
export function viewDigest(view: Membership): bigint {
  let digest = digests.get(view);
  if (digest === undefined) {
    digest = createHash('sha256').update(encodeMembership(view)).digest().readBigUInt64BE(0);
    digests.set(view, digest);
  }
  return digest;
}

/**
 * Whether `view` holds the change that made `made`: it is `made`, or a later
 * view made from it. Views name no parent, so a later one is judged by its
 * members: each one `made` changed (its `since` is `made`'s epoch) is there
 * as `made` left it or changed since, and no member changed at that epoch
 * differs from `made`'s. A later view made from a concurrent change that won
 * shows that change's members, or `made`'s ones as they were before it.
 * (Two changes of the same members cannot be told apart once a later
 * change changed those members again: such a view is taken to hold either.)
 */
export function holdsChange(view: Membership, made: Membership): boolean {
  if (view.epoch <= made.epoch) return sameView(view, made);
  const changed = made.members.filter((m) => m.since === made.epoch);
  return (
    changed.every((m) => {
      const now = findMember(view, m.url);
      return now !== undefined && (now.since > made.epoch || sameMember(now, m));
    }) &&
    view.members.every((m) => {
      if (m.since !== made.epoch) return true;
      const then = findMember(made, m.url);
      return then !== undefined && sameMember(m, then);
    })
  );
}

function sameMember(x: Member, y: Member): boolean {
  return (
    x.url === y.url && x.state === y.state && x.dead === y.dead && x.token === y.token && x.since === y.since
  );
}

/** viewDigest as 16 hex digits, for JSON answers. */
export function viewDigestHex(view: Membership): string {
  return viewDigest(view).toString(16).padStart(16, '0');
}

/**
 * Whether `view` is a rival of `held` (module comment): `held` is a first
 * view (epoch 1), and `view` is another first view, or a later view that
 * cannot have been made from `held`. Views name no parent, so a later one
 * is judged by its members: those untouched since epoch 1 (`since` 1) must
 * be `held`'s, as `held` has them, and each of `held`'s members must still
 * be there (removed ones are dropped only past REMOVED_KEPT_MAX of them, so
 * only a view with that many members changed since epoch 1 may lack one).
 */
export function rivalViews(held: Membership, view: Membership): boolean {
  if (held.epoch !== 1n || view.epoch < 1n) return false;
  if (view.epoch === 1n) return !sameView(held, view);
  const untouchedElsewhere = view.members.some((m) => {
    if (m.since !== 1n) return false;
    const ours = findMember(held, m.url);
    return ours === undefined || !sameMember(m, ours);
  });
  if (untouchedElsewhere) return true;
  // A member of held is missing once dropped as the oldest of more than REMOVED_KEPT_MAX removed ones.
  // From then on at least that many members changed since epoch 1, though fewer may be removed: a
  // removed one that joins again (the same URL) is no longer counted as removed.
  const changed = view.members.filter((m) => m.since !== 1n).length;
  return changed < REMOVED_KEPT_MAX && held.members.some((m) => findMember(view, m.url) === undefined);
}

/** The view that wins (module comment): one of the two, whole. */
export function mergeMemberships(a: Membership, b: Membership): Membership {
  return compareMemberships(a, b) >= 0 ? a : b;
}

export function findMember(view: Membership, url: string): Member | undefined {
  return view.members.find((member) => member.url === url);
}

/** Members of the current ring: normal and leaving. */
export function currentMembers(view: Membership): Member[] {
  return view.members.filter((m) => m.state === MemberState.Normal || m.state === MemberState.Leaving);
}

/**
 * Whether two views have the same current ring: the same members, each placed
 * by the same token (a URL can come back on an equal list with another
 * token: removed, then joined with --replace).
 */
export function sameCurrentRing(a: Membership, b: Membership): boolean {
  const x = currentMembers(a);
  const y = currentMembers(b);
  return x.length === y.length && x.every((m, i) => m.url === y[i]!.url && m.token === y[i]!.token);
}

/** Members of the future ring: normal and joining. */
export function futureMembers(view: Membership): Member[] {
  return view.members.filter((m) => m.state === MemberState.Normal || m.state === MemberState.Joining);
}

/** Members that are not removed: the nodes this view talks to. */
export function liveMembers(view: Membership): Member[] {
  return view.members.filter((m) => m.state !== MemberState.Removed);
}

/** Whether a move is under way: some member joining or leaving. */
export function moveUnderWay(view: Membership): boolean {
  return view.members.some((m) => m.state === MemberState.Joining || m.state === MemberState.Leaving);
}

/** A one-line description of the move under way, for messages: "http://d:1 joining, http://c:1 leaving". */
export function describeMove(view: Membership): string {
  return view.members
    .filter((m) => m.state === MemberState.Joining || m.state === MemberState.Leaving)
    .map((m) => `${m.url} ${MEMBER_STATE_NAMES[m.state]}${m.dead ? ' (dead)' : ''}`)
    .join(', ');
}

/**
 * `url` joins: a new member in state joining, placed by its own URL, or by
 * the token of `replaces` (a dead member, which leaves in the same change).
 * Refused while another move is under way, when `url` is already a member,
 * or when the view would list more than MEMBERS_MAX members.
 */
export function withJoining(view: Membership, url: string, options: { replaces?: string } = {}): Membership {
  refuseDuringMove(view, `${url} cannot join`);
  const existing = findMember(view, url);
  if (existing !== undefined && existing.state !== MemberState.Removed) {
    throw badChange(`${url} cannot join: it is already ${MEMBER_STATE_NAMES[existing.state]}`);
  }
  const epoch = view.epoch + 1n;
  let token = url;
  let members = view.members.filter((m) => m.url !== url);
  if (options.replaces !== undefined) {
    const dead = normalMember(view, options.replaces, `${url} cannot replace ${options.replaces}`);
    token = dead.token;
    members = members.map((m) =>
      m.url === dead.url ? { ...m, state: MemberState.Leaving, dead: true, since: epoch } : m,
    );
  }
  members.push({ url, state: MemberState.Joining, dead: false, token, since: epoch });
  const next = _view(epoch, members);
  // A view of more members could be stored here, and would be refused by every peer and by this node's restart.
  if (next.members.length > MEMBERS_MAX) {
    throw badChange(
      `${url} cannot join: the membership lists ${MEMBERS_MAX} members already, the most it can`,
    );
  }
  return next;
}

/**
 * `url` leaves: decommission (it streams its data away itself) or, with
 * `dead`, remove (its ranges are rebuilt from the other replicas). The last
 * normal member cannot leave.
 */
export function withLeaving(view: Membership, url: string, options: { dead: boolean }): Membership {
  const what = options.dead ? `${url} cannot be removed` : `${url} cannot be decommissioned`;
  refuseDuringMove(view, what);
  normalMember(view, url, what);
  if (view.members.filter((m) => m.state === MemberState.Normal).length < 2) {
    throw badChange(`${what}: it is the last member`);
  }
  const epoch = view.epoch + 1n;
  return _view(
    epoch,
    view.members.map((m) =>
      m.url === url ? { ...m, state: MemberState.Leaving, dead: options.dead, since: epoch } : m,
    ),
  );
}

/**
 * Whether the change withLeaving(view, url, { dead }) asks for is made
 * already: 'under way' when the move under way is that one member leaving
 * (in the same way), 'done' when it is removed. An operator's command run
 * again (after its wait timed out) then takes it up rather than being
 * refused. Undefined otherwise.
 */
export function leavingAlready(
  view: Membership,
  url: string,
  options: { dead: boolean },
): 'under way' | 'done' | undefined {
  const member = findMember(view, url);
  if (member?.state === MemberState.Removed) return 'done';
  if (member?.state !== MemberState.Leaving || member.dead !== options.dead) return undefined;
  const moving = view.members.filter(
    (m) => m.state === MemberState.Joining || m.state === MemberState.Leaving,
  );
  return moving.length === 1 ? 'under way' : undefined;
}

/** The end of a move: joining members become normal, leaving ones removed, at once. */
export function flipped(view: Membership): Membership {
  if (!moveUnderWay(view)) throw badChange('No move under way to complete');
  const epoch = view.epoch + 1n;
  return _view(
    epoch,
    view.members.map((m) => {
      if (m.state === MemberState.Joining) return { ...m, state: MemberState.Normal, since: epoch };
      if (m.state === MemberState.Leaving) return { ...m, state: MemberState.Removed, since: epoch };
      return m;
    }),
  );
}

/** A move given up: joining members are removed, leaving ones are normal again (and no longer taken for dead). */
export function cancelled(view: Membership): Membership {
  if (!moveUnderWay(view)) throw badChange('No move under way to cancel');
  const epoch = view.epoch + 1n;
  return _view(
    epoch,
    view.members.map((m) => {
      if (m.state === MemberState.Joining) return { ...m, state: MemberState.Removed, since: epoch };
      if (m.state === MemberState.Leaving)
        return { ...m, state: MemberState.Normal, dead: false, since: epoch };
      return m;
    }),
  );
}

function refuseDuringMove(view: Membership, what: string): void {
  if (moveUnderWay(view)) {
    throw badChange(
      `${what}: a move is under way (${describeMove(view)}); wait for it to finish or cancel it (ringkv cancel)`,
    );
  }
}

function normalMember(view: Membership, url: string, what: string): Member {
  const member = findMember(view, url);
  if (member === undefined || member.state === MemberState.Removed) {
    throw badChange(`${what}: ${url} is not a member`);
  }
  if (member.state !== MemberState.Normal) {
    throw badChange(`${what}: ${url} is ${MEMBER_STATE_NAMES[member.state]}`);
  }
  return member;
}

/** Sorts, and drops the oldest removed members past REMOVED_KEPT_MAX. */
function _view(epoch: bigint, members: Member[]): Membership {
  const removed = members.filter((m) => m.state === MemberState.Removed);
  if (removed.length > REMOVED_KEPT_MAX) {
    const dropped = new Set(
      removed
        .sort((a, b) => (a.since < b.since ? -1 : a.since > b.since ? 1 : a.url < b.url ? -1 : 1))
        .slice(0, removed.length - REMOVED_KEPT_MAX)
        .map((m) => m.url),
    );
    members = members.filter((m) => !dropped.has(m.url));
  }
  members.sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
  return { epoch, members };
}

function badChange(message: string): RingkvError {
  return new RingkvError('RINGKV_BAD_REQUEST', message);
}
