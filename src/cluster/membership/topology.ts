/**
 * Topology: the rings a node computes from its membership view, and where
 * each request goes (the coordinator's ReplicaPlacement).
 *
 * - current ring (normal + leaving members): reads ask its replicas, and a
 *   write counts `ack` among them.
 * - future ring (normal + joining), while a move is under way: its owners
 *   that are not current replicas of the key are *pending*: writes go to
 *   them too (pendingReplicas), and each one raises the acknowledgements a
 *   write needs by one, so its answer never stands in for a current
 *   replica's (coordinator.ts). A write thus reaches `ack` replicas of the
 *   current ring and `ack` of the future one: quorum reads see it before
 *   and after the flip.
 * - trailing ring: after the current ring changes (a flip, a cancel), the
 *   previous one keeps getting writes the same way for `trailingMs`, while
 *   nodes that have not yet heard of the change read from it.
 *
 * R, the replication factor moves keep (streaming.ts), is min(size, 3): the
 * same number anti-entropy maintains.
 *
 * Lookups are on every request's path: with no move and no trailing ring,
 * pendingReplicas() is one comparison and returns a shared empty array.
 */
import { limits } from '../../config/limits.js';
import { Ring } from '../ring/index.js';
import {
  currentMembers,
  futureMembers,
  type Member,
  MemberState,
  type Membership,
  moveUnderWay,
  sameCurrentRing,
} from './membership.js';

const NONE: readonly string[] = Object.freeze([]);

export interface TopologyOptions {
  readonly vnodesPerNode?: number;
  /** How long the previous current ring keeps getting writes after it changed (default limits.ringTrailingMs). */
  readonly trailingMs?: number;
  readonly nowMs?: () => number;
}

export class Topology {
  readonly #options: TopologyOptions;
  readonly #trailingMs: number;
  readonly #nowMs: () => number;
  #view: Membership;
  #current: Ring | undefined;
  #future: Ring | undefined;
  #trailing: Ring | undefined;
  #trailingUntilMs = 0;
  readonly #listeners: ((view: Membership, previous: Membership) => void)[] = [];

  constructor(view: Membership, options: TopologyOptions = {}) {
    this.#options = options;
    this.#trailingMs = options.trailingMs ?? limits.ringTrailingMs;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#view = view;
    this.#current = _ring(currentMembers(view), options);
    this.#future = moveUnderWay(view) ? _ring(futureMembers(view), options) : undefined;
  }

  get view(): Membership {
    return this.#view;
  }

  get epoch(): bigint {
    return this.#view.epoch;
  }

  /** The current ring; undefined only for a view with no normal or leaving member (none yet). */
  get current(): Ring | undefined {
    return this.#current;
  }

  /** The future ring while a move is under way. */
  get future(): Ring | undefined {
    return this.#future;
  }

  /** The nodes of the current ring: the cluster's size for `from`. */
  get nodes(): readonly string[] {
    return this.#current?.nodes ?? NONE;
  }

  /** The key's first `from` replicas on the current ring (`from` is cut to its size). */
  replicas(key: Uint8Array, from: number): readonly string[] {
    const ring = this.#current;
    if (ring === undefined) return NONE;
    return ring.replicas(key, Math.min(from, ring.nodes.length));
  }

  /** Nodes that also get a write of the key: pending owners of the future ring, and trailing ones. */
  pendingReplicas(key: Uint8Array, from: number): readonly string[] {
    if (this.#future === undefined && this.#trailing === undefined) return NONE;
    if (this.#trailing !== undefined && this.#nowMs() >= this.#trailingUntilMs) this.#trailing = undefined;
    const current = this.replicas(key, from);
    const extra: string[] = [];
    for (const ring of [this.#future, this.#trailing]) {
      if (ring === undefined) continue;
      for (const url of ring.replicas(key, Math.min(from, ring.nodes.length))) {
        if (!current.includes(url) && !extra.includes(url)) extra.push(url);
      }
    }
    return extra.length === 0 ? NONE : extra;
  }

  /** Whether `url` is a member that is not removed (hints are kept only for those). */
  isMember(url: string): boolean {
    const member = this.member(url);
    return member !== undefined && member.state !== MemberState.Removed;
  }

  member(url: string): Member | undefined {
    return this.#view.members.find((m) => m.url === url);
  }

  /** Whether the trailing ring still gets writes. */
  get trailing(): boolean {
    return this.#trailing !== undefined && this.#nowMs() < this.#trailingUntilMs;
  }

  /**
   * Takes a newer view (the caller merged and persisted it): rebuilds the
   * rings, keeps the previous current ring trailing if it changed, and tells
   * the listeners.
   */
  adopt(view: Membership): void {
    const previous = this.#view;
    if (view === previous) return;
    const before = this.#current;
    this.#view = view;
    this.#current =
      before !== undefined && sameCurrentRing(previous, view)
        ? before
        : _ring(currentMembers(view), this.#options);
    this.#future = moveUnderWay(view) ? _ring(futureMembers(view), this.#options) : undefined;
    if (before !== undefined && before !== this.#current) {
      this.#trailing = before;
      this.#trailingUntilMs = this.#nowMs() + this.#trailingMs;
    }
    for (const listener of this.#listeners) listener(view, previous);
  }

  /** Called after each adopted view, with the one it replaced. */
  onChange(listener: (view: Membership, previous: Membership) => void): void {
    this.#listeners.push(listener);
  }
}

/** The replication factor moves and anti-entropy keep on a ring of `size` nodes. */
export function replicationFactor(size: number): number {
  return Math.max(1, Math.min(size, limits.antiEntropyReplicationFactorMax));
}

/** A ring of the members, each placed by its token; undefined for none. */
export function ringOf(members: readonly Member[], options: TopologyOptions = {}): Ring | undefined {
  return _ring(members, options);
}

function _ring(members: readonly Member[], options: TopologyOptions): Ring | undefined {
  if (members.length === 0) return undefined;
  const tokens = new Map<string, string>();
  for (const member of members) if (member.token !== member.url) tokens.set(member.url, member.token);
  return new Ring(
    members.map((m) => m.url),
    {
      ...(options.vnodesPerNode === undefined ? {} : { vnodesPerNode: options.vnodesPerNode }),
      ...(tokens.size === 0 ? {} : { tokens }),
    },
  );
}
