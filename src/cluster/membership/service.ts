/**
 * MembershipService: a node's membership, assembled: the view it starts
 * from, the topology its requests are placed by, gossip, the stream source
 * and the mover, and the internode handlers for MEMBERSHIP, STREAM and MOVE.
 *
 * The view a node starts from (open()), in this order:
 * 1. The MEMBERSHIP file in its data directory, when there is one: a
 *    restarted node uses what it stored. A `--cluster` list that disagrees
 *    with it is reported in one line and not followed, and so is a `--join`
 *    of a node the view lists already; a node the stored view says was
 *    removed does not start.
 * 2. With `--join ANY_MEMBER` (no file yet): the member's view, fetched over
 *    the internode protocol. Once the node listens, start() proposes it as
 *    joining (with `--replace DEAD`, joining in the dead member's place).
 *    A node the fetched view already lists (a join that was interrupted, or
 *    a node that lost its disk) takes up its place instead.
 * 3. Otherwise `--cluster`: the bootstrap view, epoch 1, every node normal.
 *    The other listed nodes that answer are asked for their views first: a
 *    rival view (membership.ts: a running cluster formed with another list)
 *    is refused, and so is a later view that does not list this node.
 *    The view is stored only once start() found no rival either, so a
 *    refused start stores no membership and the same directory can --join.
 *
 * start(), before the node reports ready: an exchange with every live member
 * (a node that was away catches up before it serves), the join proposal if
 * any, then gossip and the mover run. A node that meets a rival view
 * there does not start if it was never started before, and says so in one
 * record (membership.rival-view) if it was.
 */
import { limits } from '../../config/limits.js';
import type { Engine, Vfs } from '../../storage/index.js';
import { errorMessage, isRingkvError, RingkvError } from '../../util/errors.js';
import type { MembershipLinks } from '../transport/index.js';
import { loadCleanupDue, loadMembership, markCleanupDue, saveMembership } from './file.js';
import { decodeMembership, encodeMembership } from './format.js';
import { answersExchange, Gossip } from './gossip.js';
import {
  bootstrapMembership,
  compareMemberships,
  describeMove,
  EMPTY_MEMBERSHIP,
  findMember,
  liveMembers,
  MEMBER_STATE_NAMES,
  MemberState,
  type Membership,
  moveUnderWay,
  rivalViews,
  viewDigest,
  withJoining,
} from './membership.js';
import { Mover } from './mover.js';
import { StreamSource } from './streaming.js';
import { Topology } from './topology.js';

export interface MembershipStart {
  readonly selfUrl: string;
  readonly dataDir: string;
  /** `--cluster`, normalized; [selfUrl] when not given. */
  readonly cluster: readonly string[];
  /** `--join ANY_MEMBER`. */
  readonly join?: string | undefined;
  /** `--replace DEAD_URL` (with --join). */
  readonly replace?: string | undefined;
}

export interface MembershipServiceOptions {
  readonly vfs: Vfs;
  readonly engine: Engine;
  readonly transport: MembershipLinks & { isUp(peer: string): boolean };
  /** Every entry streamed in and stored (the node's clock and the replica's memory learn it). */
  readonly observe?: (version: bigint, key: Buffer) => void;
  /** A new version from the node's clock (the cleanup after a move drops only older ones). */
  readonly now?: () => bigint;
  /** Records for operators: `event` names what happened (membership.*). */
  readonly log: (level: 'info' | 'warn', event: string, line: string) => void;
  readonly onRemoved?: () => void;
  readonly bytesPerSecond?: number;
}

/** A fetch of a member's view at start: short, one attempt (the operator runs the command again). */
const FETCH_TIMEOUT_MS = 5000;
/** Distinct refused views logged before the record of them starts over. */
const REFUSED_REPORTED_MAX = 64;
/** A join that loses a race with another change is proposed again this many times. */
const JOIN_ATTEMPTS_MAX = 5;

export class MembershipService {
  readonly topology: Topology;
  readonly gossip: Gossip;
  readonly mover: Mover;
  readonly source: StreamSource;
  readonly #start: MembershipStart;
  readonly #options: MembershipServiceOptions;
  /** Set when start() must propose this node as joining. */
  readonly #joinReplacing: { readonly replaces?: string } | undefined;
  #shares: _Shares | undefined;
  /** Set when this node stored itself as joining: start() joins again if the members do not list it. */
  #joinAgain: { readonly replaces?: string } | undefined;
  /** A first view not stored yet (open(), case 3): start() stores it once no member holds a rival one. */
  #firstView: Membership | undefined;
  /** Rival views reported already (by viewDigest), so that gossip's rounds do not repeat the record. */
  readonly #rivalsReported = new Set<bigint>();
  /** Reasons of refused views reported already (bounded), so that a peer sending one each round logs it once. */
  readonly #refusedReported = new Set<string>();

  private constructor(
    view: Membership,
    start: MembershipStart,
    options: MembershipServiceOptions,
    join: { readonly replaces?: string } | undefined,
    cleanupDue = false,
  ) {
    this.#start = start;
    this.#options = options;
    this.#joinReplacing = join;
    this.topology = new Topology(view);
    this.gossip = new Gossip({
      selfUrl: start.selfUrl,
      topology: this.topology,
      transport: options.transport,
      persist: (next) => saveMembership(options.vfs, start.dataDir, next),
      onRivalView: (view, peer) => this.#reportRival(view, peer),
      onRefused: (reason, peer) => this.#reportRefused(reason, peer),
    });
    this.mover = new Mover({
      selfUrl: start.selfUrl,
      topology: this.topology,
      gossip: this.gossip,
      engine: options.engine,
      transport: options.transport,
      log: (line) => options.log('info', 'membership', line),
      ...(options.observe === undefined ? {} : { observe: options.observe }),
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.onRemoved === undefined ? {} : { onRemoved: options.onRemoved }),
      ...(options.bytesPerSecond === undefined ? {} : { bytesPerSecond: options.bytesPerSecond }),
      cleanupDue,
      markCleanupDue: (epoch) => markCleanupDue(options.vfs, start.dataDir, epoch),
    });
    this.source = new StreamSource({
      selfUrl: start.selfUrl,
      topology: this.topology,
      engine: options.engine,
    });
  }

  /** Decides the view the node starts from (module comment); rejects with a one-line error. */
  static async open(start: MembershipStart, options: MembershipServiceOptions): Promise<MembershipService> {
    const { selfUrl } = start;
    const stored = await loadMembership(options.vfs, start.dataDir);
    if (stored !== undefined) {
      const self = findMember(stored, selfUrl);
      if (self?.state === MemberState.Removed) throw removedError(selfUrl, self.since);
      const listed = liveMembers(stored).map((m) => m.url);
      if (start.cluster.length > 1 && !sameSet(start.cluster, listed)) {
        options.log(
          'warn',
          'membership.mismatch',
          `--cluster lists ${start.cluster.join(',')} but the stored membership (epoch ${stored.epoch}) has ${listed.join(',')}: the stored membership is used (--cluster only starts a new cluster; members join with --join and leave with ringkv decommission or remove)`,
        );
      }
      if (self !== undefined && start.join !== undefined) {
        // A member restarted with the --join it was first started with (a service definition kept as
        // it was): nothing to join, but say so, or the flag looks followed.
        options.log(
          'info',
          'membership.join-ignored',
          `--join ${start.join}${start.replace === undefined ? '' : ` --replace ${start.replace}`} was ignored: this node is already a member of the cluster (${MEMBER_STATE_NAMES[self.state]}, epoch ${stored.epoch})`,
        );
      }
      const joining = self === undefined && start.join !== undefined ? joinOf(start) : undefined;
      if (self === undefined && joining === undefined) throw notMemberError(selfUrl, stored.epoch);
      const due = await loadCleanupDue(options.vfs, start.dataDir);
      const service = new MembershipService(stored, start, options, joining, due);
      // A join stored here may have lost the merge to a change made at the same time: start() makes
      // it again if the members never heard of it, or the node could never join on this directory.
      if (self?.state === MemberState.Joining && start.join !== undefined) service.#joinAgain = joinOf(start);
      return service;
    }
    if (start.join !== undefined) {
      const view = await fetchView(options.transport, start.join);
      const self = findMember(view, selfUrl);
      if (self !== undefined && self.state !== MemberState.Removed) {
        // Listed already: an interrupted join, or a member that lost its disk. It takes up its place.
        await saveMembership(options.vfs, start.dataDir, view);
        return new MembershipService(view, start, options, undefined);
      }
      return new MembershipService(view, start, options, joinOf(start));
    }
    const view = bootstrapMembership(start.cluster);
    await refuseOtherViews(options.transport, view, selfUrl);
    const service = new MembershipService(view, start, options, undefined);
    service.#firstView = view;
    return service;
  }

  /** The internode MEMBERSHIP, STREAM and MOVE handlers. */
  readonly handlers = {
    membership: (body: Buffer): Promise<Buffer> => this.gossip.receive(body),
    stream: (body: Buffer): Promise<Buffer> => this.source.handle(body),
    move: (body: Buffer): Promise<Buffer> => this.mover.handleMove(body),
  };

  /** The live members other than this node: the peers it links to. */
  peers(): string[] {
    return liveMembers(this.topology.view)
      .map((m) => m.url)
      .filter((url) => url !== this.#start.selfUrl);
  }

  /** Catches up with the members, joins if asked to, then runs gossip and the mover. */
  async start(): Promise<void> {
    await this.gossip.exchangeAll();
    const selfUrl = this.#start.selfUrl;
    const [rival] = this.gossip.rivals();
    if (rival !== undefined && this.#firstView !== undefined && this.topology.view === this.#firstView) {
      throw rivalError(rival[0], rival[1]);
    }
    if (this.#firstView !== undefined) {
      // Stored now, unless a later view was adopted (and stored) meanwhile: in turn with gossip's
      // offers, or one adopted during the write could be overwritten by this older view.
      await this.gossip.persistHeld(this.#firstView);
      this.#firstView = undefined;
    }
    if (
      this.#joinReplacing !== undefined &&
      findMember(this.topology.view, selfUrl)?.state !== MemberState.Joining
    ) {
      await this.#join(this.#joinReplacing.replaces);
    } else if (this.#joinAgain !== undefined && findMember(this.topology.view, selfUrl) === undefined) {
      this.#options.log(
        'info',
        'membership.join',
        `The join this node stored is unknown to the cluster (epoch ${this.topology.epoch}; it lost to a change made at the same time): joining again`,
      );
      await this.#join(this.#joinAgain.replaces);
    }
    const self = findMember(this.topology.view, selfUrl);
    if (self === undefined) throw notMemberError(selfUrl, this.topology.epoch);
    this.gossip.start();
    this.mover.start();
  }

  async stop(): Promise<void> {
    await this.mover.stop();
    await this.gossip.stop();
  }

  /** For /v0/status: the view, each member's share of the rings, the move and its progress. */
  status(): Record<string, unknown> {
    const view = this.topology.view;
    const shares = this.#sharesOf(view);
    return {
      epoch: String(view.epoch),
      members: view.members.map((m) => ({
        url: m.url,
        state: MEMBER_STATE_NAMES[m.state],
        ...(m.dead ? { dead: true } : {}),
        ...(m.token === m.url ? {} : { token: m.token }),
        since: String(m.since),
        share: round(shares.current.get(m.url) ?? 0),
        ...(shares.future === undefined ? {} : { futureShare: round(shares.future.get(m.url) ?? 0) }),
      })),
      ...this.mover.status(),
      trailing: this.topology.trailing,
      gossip: this.gossip.stats(),
      streamed: this.source.stats(),
    };
  }

  /** Gossip's onRivalView: one record per rival view, on running nodes (a first start refuses instead). */
  #reportRival(view: Membership, peer: string | undefined): void {
    if (this.#firstView !== undefined) return;
    const digest = viewDigest(view);
    if (this.#rivalsReported.has(digest)) return;
    this.#rivalsReported.add(digest);
    this.#options.log(
      'warn',
      'membership.rival-view',
      `${peer ?? 'A peer'} holds ${rivalDescription(view)}, started with another --cluster list than this node's first view (members ${memberList(this.topology.view)}): it is not taken. Nodes of a new cluster need the same --cluster list; a node added to a running cluster starts with --join ANY_MEMBER`,
    );
  }

  /** Gossip's onRefused: one record per reason (a peer repeats its bad view every round). */
  #reportRefused(reason: string, peer: string | undefined): void {
    const key = `${peer ?? ''} ${reason}`;
    if (this.#refusedReported.has(key)) return;
    if (this.#refusedReported.size >= REFUSED_REPORTED_MAX) this.#refusedReported.clear();
    this.#refusedReported.add(key);
    this.#options.log(
      'warn',
      'membership.refused',
      `${peer === undefined ? 'A peer sent' : `${peer} answered with`} a membership view that is not a valid one (${reason}): it is refused, not taken nor stored (held view: epoch ${this.topology.epoch})`,
    );
  }

  async #join(replaces: string | undefined): Promise<void> {
    const selfUrl = this.#start.selfUrl;
    if (replaces !== undefined && (await answersExchange(this.#options.transport, replaces))) {
      throw new RingkvError(
        'RINGKV_CONFIG',
        `Cannot replace ${replaces}: it is up and answering (decommission it, or stop it first)`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const view = await this.gossip.propose((v) =>
          withJoining(v, selfUrl, replaces === undefined ? {} : { replaces }),
        );
        this.#options.log(
          'info',
          'membership.join',
          `Joining the cluster at epoch ${view.epoch} (${describeMove(view)}): streaming this node's ranges`,
        );
        return;
      } catch (err) {
        if (isRingkvError(err, 'RINGKV_BAD_REQUEST')) {
          throw new RingkvError('RINGKV_CONFIG', `Cannot join: ${err.message}`, { cause: err });
        }
        if (attempt >= JOIN_ATTEMPTS_MAX) throw err;
        await this.gossip.exchangeAll();
      }
    }
  }

  #sharesOf(view: Membership): _Shares {
    if (this.#shares?.view !== view) {
      this.#shares = {
        view,
        current: this.topology.current?.primaryShares() ?? new Map(),
        future: moveUnderWay(view) ? this.topology.future?.primaryShares() : undefined,
      };
    }
    return this.#shares;
  }
}

/** Each member's share of the current ring (and of the future one during a move), for one view. */
interface _Shares {
  readonly view: Membership;
  readonly current: Map<string, number>;
  readonly future: Map<string, number> | undefined;
}

function joinOf(start: MembershipStart): { readonly replaces?: string } {
  return start.replace === undefined ? {} : { replaces: start.replace };
}

/**
 * `peer`'s view, asked with an empty one (which changes nothing there):
 * undefined if the answer is not a view. Rejects if the peer does not answer.
 */
async function askView(
  transport: MembershipLinks,
  peer: string,
  timeoutMs: number,
): Promise<Membership | undefined> {
  const body = await transport.membership(peer, encodeMembership(EMPTY_MEMBERSHIP), Date.now() + timeoutMs);
  const view = decodeMembership(body);
  return typeof view === 'string' ? undefined : view;
}

async function fetchView(transport: MembershipLinks, member: string): Promise<Membership> {
  let view: Membership | undefined;
  try {
    view = await askView(transport, member, FETCH_TIMEOUT_MS);
  } catch (err) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `Cannot fetch the membership from --join ${member}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  if (view === undefined || view.members.length === 0) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `--join ${member} answered no membership: is it a member of a cluster?`,
    );
  }
  return view;
}

/**
 * A first start's check (open(), case 3): asks the other nodes `first` lists
 * for their views, at once. If the latest view answered is a first view, it
 * refuses a rival one; if it is a later view, it refuses it when it does not
 * list this node (it was made without it: it must join), lists it removed,
 * or was made from a rival first view.
 * Nodes that do not answer (not started yet) are skipped; start()'s exchange
 * meets those that start at the same time.
 */
async function refuseOtherViews(
  transport: MembershipLinks,
  first: Membership,
  selfUrl: string,
): Promise<void> {
  const peers = first.members.map((m) => m.url).filter((url) => url !== selfUrl);
  const views = await Promise.all(
    peers.map((peer) => askView(transport, peer, limits.membershipRequestTimeoutMs).catch(() => undefined)),
  );
  // Judged by the latest view answered: a peer that lags behind it takes it from the others soon.
  let at = -1;
  views.forEach((view, i) => {
    if (view !== undefined && (at < 0 || compareMemberships(view, views[at]!) > 0)) at = i;
  });
  const latest = views[at];
  if (latest === undefined || latest.epoch === 0n) return;
  if (latest.epoch === 1n) {
    const rival = views.findIndex((view) => view !== undefined && rivalViews(first, view));
    if (rival >= 0) throw rivalError(peers[rival]!, views[rival]!);
    return;
  }
  const self = findMember(latest, selfUrl);
  if (self === undefined) throw notMemberError(selfUrl, latest.epoch);
  if (self.state === MemberState.Removed) throw removedError(selfUrl, self.since);
  if (rivalViews(first, latest)) throw rivalError(peers[at]!, latest);
}

function rivalError(peer: string, view: Membership): RingkvError {
  return new RingkvError(
    'RINGKV_CONFIG',
    `${peer} holds ${rivalDescription(view)}: it was started with another --cluster list. Start the nodes of a new cluster with the same --cluster list; to add this node to that cluster, start it with --join ${peer}`,
  );
}

function rivalDescription(view: Membership): string {
  return view.epoch === 1n
    ? `another first view of the cluster (epoch 1, members ${memberList(view)})`
    : `a membership made from another first view of the cluster (epoch ${view.epoch}, members ${memberList(view)})`;
}

function memberList(view: Membership): string {
  return view.members.map((m) => m.url).join(',');
}

function removedError(url: string, epoch: bigint): RingkvError {
  return new RingkvError(
    'RINGKV_CONFIG',
    `This node (${url}) was removed from the cluster at epoch ${epoch}: to add it again, start it on an empty data directory with --join ANY_MEMBER`,
  );
}

function notMemberError(url: string, epoch: bigint): RingkvError {
  return new RingkvError(
    'RINGKV_CONFIG',
    `This node (${url}) is not a member of the cluster (membership epoch ${epoch}): start it with --join ANY_MEMBER to add it`,
  );
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((url) => b.includes(url));
}

function round(share: number): number {
  return Math.round(share * 10_000) / 10_000;
}
