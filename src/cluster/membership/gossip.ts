/**
 * Gossip: how membership views spread. Every node
 *
 * - pushes each change it makes to every member at once (propose());
 * - exchanges its view with one random live peer every intervalMs (the
 *   periodic exchange), so that a node that missed a push catches up;
 * - answers a peer's view (receive(), the internode MEMBERSHIP message) with
 *   the view it holds after merging, so one round trip updates both sides.
 *
 * Every view heard of, from whatever source, goes through offer(): merged
 * with the held one (membership.ts's rule) and, when it wins, written to the
 * MEMBERSHIP file *before* the topology adopts it, so a restarted node never
 * goes back to an older view. Offers are applied one at a time. A rival
 * first view (membership.ts) is never taken: it is counted, remembered by
 * the peer that answered with it, and reported (onRivalView). Bytes that
 * are not a valid view (format.ts) are refused before any of that: counted
 * and reported (onRefused), never adopted nor stored.
 *
 * The internode link carries the cluster secret's proof when one is set, so
 * only nodes (and operators) that know it can change the membership.
 *
 *   const gossip = new Gossip({ selfUrl, topology, transport, persist });
 *   gossip.start();
 *   await gossip.propose((view) => withLeaving(view, url, { dead: true }));
 */
import { limits } from '../../config/limits.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import type { MembershipLinks } from '../transport/index.js';
import { decodeMembership, encodeMembership } from './format.js';
import {
  compareMemberships,
  EMPTY_MEMBERSHIP,
  holdsChange,
  liveMembers,
  MemberState,
  type Membership,
  rivalViews,
} from './membership.js';
import type { Topology } from './topology.js';

export interface GossipOptions {
  readonly selfUrl: string;
  readonly topology: Topology;
  readonly transport: Pick<MembershipLinks, 'membership'> & { isUp(peer: string): boolean };
  /** Writes a view durably before it is adopted (file.ts). */
  readonly persist: (view: Membership) => Promise<void>;
  readonly intervalMs?: number;
  readonly requestTimeoutMs?: number;
  /** A rival view (membership.ts) was offered and not taken; `peer` is the one that answered with it (undefined: it sent it). */
  readonly onRivalView?: (view: Membership, peer: string | undefined) => void;
  /**
   * Bytes offered as a view were not one (format.ts's reason): refused, neither
   * adopted nor stored. `peer` is the one that answered with them (undefined: it sent them).
   */
  readonly onRefused?: (reason: string, peer: string | undefined) => void;
}

export interface GossipStats {
  readonly exchanges: number;
  readonly failedExchanges: number;
  readonly pushes: number;
  readonly adopted: number;
  /** The last exchange that failed (a peer down, most often), if any. */
  readonly lastError: string | undefined;
  /** Rival views offered and not taken (membership.ts). */
  readonly rivalViews: number;
  /** Views received that were not valid ones (format.ts), refused. */
  readonly refusedViews: number;
}

export class Gossip {
  readonly #selfUrl: string;
  readonly #topology: Topology;
  readonly #transport: GossipOptions['transport'];
  readonly #persist: (view: Membership) => Promise<void>;
  readonly #intervalMs: number;
  readonly #requestTimeoutMs: number;
  readonly #onRivalView: GossipOptions['onRivalView'];
  readonly #onRefused: GossipOptions['onRefused'];
  /** Peers whose last answer was a rival view, and that view. */
  readonly #rivals = new Map<string, Membership>();
  /** The offer being applied; the next one waits for it. */
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #exchanges = 0;
  #failedExchanges = 0;
  #pushes = 0;
  #adopted = 0;
  #lastError: string | undefined;
  #rivalViews = 0;
  #refused = 0;

  constructor(options: GossipOptions) {
    this.#selfUrl = options.selfUrl;
    this.#topology = options.topology;
    this.#transport = options.transport;
    this.#persist = options.persist;
    this.#intervalMs = options.intervalMs ?? limits.membershipGossipIntervalMs;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? limits.membershipRequestTimeoutMs;
    this.#onRivalView = options.onRivalView;
    this.#onRefused = options.onRefused;
  }

  get view(): Membership {
    return this.#topology.view;
  }

  /**
   * Merges a view heard of (from `peer`'s answer, when known); persists and
   * adopts it when it wins. Resolves to the view held afterwards.
   */
  offer(view: Membership, peer?: string): Promise<Membership> {
    const applied = this.#queue.then(async () => {
      const held = this.#topology.view;
      if (peer !== undefined) this.#rivals.delete(peer);
      if (rivalViews(held, view)) {
        this.#rivalViews++;
        if (peer !== undefined) this.#rivals.set(peer, view);
        this.#onRivalView?.(view, peer);
        return held;
      }
      if (compareMemberships(view, held) <= 0) return held;
      await this.#persist(view);
      this.#topology.adopt(view);
      this.#adopted++;
      return view;
    });
    this.#queue = applied.catch(() => undefined);
    return applied;
  }

  /**
   * Persists `view` if it is still the one held (a first view, stored once
   * the start found no rival), in turn with offers: a later view adopted
   * meanwhile is never overwritten by it. Resolves to whether it was.
   */
  persistHeld(view: Membership): Promise<boolean> {
    const stored = this.#queue.then(async () => {
      if (this.#topology.view !== view) return false;
      await this.#persist(view);
      return true;
    });
    this.#queue = stored.catch(() => undefined);
    return stored;
  }

  /** The internode MEMBERSHIP handler: merge the peer's view, answer with the one held after. */
  async receive(body: Buffer): Promise<Buffer> {
    const view = decodeMembership(body);
    if (typeof view === 'string') {
      this.#refused++;
      this.#onRefused?.(view, undefined);
      throw new RingkvError('RINGKV_PROTOCOL', `Bad membership view: ${view}`);
    }
    return encodeMembership(await this.offer(view));
  }

  /**
   * Makes a change to the held view (`change` builds the next view from it,
   * or throws RINGKV_BAD_REQUEST), adopts it and pushes it to every member.
   * Rejects (RINGKV_UNAVAILABLE) if, once the members answered, the view
   * held does not hold the change: a concurrent change won over it, maybe
   * followed already by one made on the winner (membership.ts's
   * holdsChange). Resolving says only that no member that answered knew of
   * a change that won: one that did not answer may still hold one, so what
   * a node does (moves, cleanups) follows the view it holds, not this.
   */
  propose(change: (view: Membership) => Membership): Promise<Membership> {
    const made = this.#queue.then(async () => {
      const next = change(this.#topology.view);
      await this.#persist(next);
      this.#topology.adopt(next);
      this.#adopted++;
      return next;
    });
    this.#queue = made.catch(() => undefined);
    return made.then(async (next) => {
      await this.push(next);
      const held = this.#topology.view;
      if (!holdsChange(held, next)) {
        throw new RingkvError(
          'RINGKV_UNAVAILABLE',
          `A concurrent change of the membership won over this one (epoch ${next.epoch}; the cluster is at epoch ${held.epoch}); try again`,
        );
      }
      return next;
    });
  }

  /**
   * Sends `view` to every member that is not removed, and to those removed
   * by it, except this node; merges each answer. Resolves to the peers that
   * answered; never rejects.
   */
  async push(view: Membership = this.#topology.view): Promise<string[]> {
    this.#pushes++;
    const targets = view.members
      .filter((m) => m.state !== MemberState.Removed || m.since === view.epoch)
      .map((m) => m.url)
      .filter((url) => url !== this.#selfUrl);
    const answered = await Promise.all(targets.map((peer) => this.exchange(peer, view)));
    return targets.filter((_, i) => answered[i]);
  }

  /** One exchange: sends the held view (or `view`), merges the answer. Resolves to whether the peer answered. */
  async exchange(peer: string, view: Membership = this.#topology.view): Promise<boolean> {
    this.#exchanges++;
    try {
      const answer = await this.#transport.membership(
        peer,
        encodeMembership(view),
        Date.now() + this.#requestTimeoutMs,
      );
      const theirs = decodeMembership(answer);
      if (typeof theirs === 'string') {
        this.#refused++;
        this.#onRefused?.(theirs, peer);
        throw new RingkvError('RINGKV_PROTOCOL', `Bad membership answer: ${theirs}`);
      }
      await this.offer(theirs, peer);
      return true;
    } catch (err) {
      this.#failedExchanges++;
      this.#lastError = `${peer}: ${errorMessage(err)}`;
      return false;
    }
  }

  /** Exchanges with every live member at once (at start, and before a move streams). Resolves to those that answered. */
  async exchangeAll(): Promise<string[]> {
    const peers = liveMembers(this.#topology.view)
      .map((m) => m.url)
      .filter((url) => url !== this.#selfUrl);
    const answered = await Promise.all(peers.map((peer) => this.exchange(peer)));
    return peers.filter((_, i) => answered[i]);
  }

  /** Peers whose last answer was a rival view (membership.ts), with that view. */
  rivals(): ReadonlyMap<string, Membership> {
    return this.#rivals;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#queue;
  }

  stats(): GossipStats {
    return {
      exchanges: this.#exchanges,
      failedExchanges: this.#failedExchanges,
      pushes: this.#pushes,
      adopted: this.#adopted,
      lastError: this.#lastError,
      rivalViews: this.#rivalViews,
      refusedViews: this.#refused,
    };
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const peers = liveMembers(this.#topology.view)
        .map((m) => m.url)
        .filter((url) => url !== this.#selfUrl && this.#transport.isUp(url));
      const peer = peers[Math.floor(Math.random() * peers.length)];
      void (peer === undefined ? Promise.resolve(false) : this.exchange(peer)).then(() => this.#schedule());
    }, this.#intervalMs);
    this.#timer.unref();
  }
}

/**
 * Whether `url` answers a membership exchange now (an empty view, which
 * changes nothing): a node to remove or replace must not.
 */
export async function answersExchange(
  transport: Pick<MembershipLinks, 'membership'>,
  url: string,
  timeoutMs: number = limits.membershipRequestTimeoutMs,
): Promise<boolean> {
  try {
    await transport.membership(url, encodeMembership(EMPTY_MEMBERSHIP), Date.now() + timeoutMs);
    return true;
  } catch {
    return false;
  }
}
