/**
 * Mover: a node's part in moves, driven by the membership view alone, so
 * that a move survives the death of whichever node started it.
 *
 * While a move is under way (some member joining or leaving):
 * 1. Every *new owner* (a joining node; with a member leaving, every normal
 *    node too, since the leaving one's ranges land on them) first exchanges
 *    views with every live member (so none still writes without the pending
 *    owners), then streams its new ranges from every live current replica
 *    (streaming.ts). A restarted new owner starts over; entries it already
 *    has are simply written again.
 * 2. The *completer*, the first normal member of the current ring (by URL)
 *    that this node sees up, itself included, asks every new owner for its
 *    progress every pollIntervalMs, and once all of them have streamed
 *    everything for this very view (its epoch and digest: two changes made
 *    at once share an epoch) it makes the flip (membership.ts's
 *    flipped()) and pushes it. Two nodes that both take themselves for the
 *    completer make the same flip from the same view: byte for byte the same
 *    new view, so nothing conflicts.
 * 3. After the flip every node uses the new rings at once; the old current
 *    ring keeps getting writes for limits.ringTrailingMs (topology.ts). A
 *    node that finds itself removed (decommissioned, or removed while it was
 *    away) serves out that time, then calls onRemoved (the node stops).
 * 4. Cleanup, once that time is over (never before the flip): every node
 *    that stays drops, for good (Engine.purge), the keys of every hash range
 *    it does not hold in the new current ring (as one of a key's first R):
 *    after a flip, what it handed to new owners; after a cancel, what it
 *    streamed in for nothing; and whatever an earlier cleanup that did not
 *    run left. Only versions written before the cleanup starts go, and none
 *    at all if the membership changed meanwhile (a new move may hand those
 *    ranges back); a change while it runs abandons it. Keys written with a `from` above R keep R copies. A
 *    marker in the data directory (file.ts's CLEANUP_DUE) lasts until the
 *    cleanup is done, so that a node restarted before it ran, or while it
 *    ran (closing the engine abandons a purge), does it then. A node that
 *    was down at the flip (its stored view has another current ring than
 *    the one it learns as it starts) does it too.
 *
 * Operators' requests arrive as internode MOVE messages (handleMove):
 * decommission (of the node that receives it), remove (of a dead node),
 * cancel, and progress.
 */
import { limits } from '../../config/limits.js';
import type { Engine } from '../../storage/index.js';
import { errorMessage, isRingkvError, RingkvError } from '../../util/errors.js';
import type { MembershipLinks } from '../transport/index.js';
import { decodeMoveRequest, MoveKind } from './format.js';
import { answersExchange, type Gossip } from './gossip.js';
import {
  cancelled,
  currentMembers,
  describeMove,
  EMPTY_MEMBERSHIP,
  flipped,
  leavingAlready,
  MEMBER_STATE_NAMES,
  MemberState,
  type Membership,
  moveUnderWay,
  sameCurrentRing,
  sameView,
  viewDigestHex,
  withLeaving,
} from './membership.js';
import { type ReceiveProgress, StreamReceiver } from './streaming.js';
import { replicationFactor, ringOf, type Topology } from './topology.js';

export interface MoverOptions {
  readonly selfUrl: string;
  readonly topology: Topology;
  readonly gossip: Gossip;
  readonly engine: Engine;
  readonly transport: MembershipLinks & { isUp(peer: string): boolean };
  /** Every entry streamed in and stored: the node's clock moves past it, the replica's memory learns it. */
  readonly observe?: (version: bigint, key: Buffer) => void;
  /** A new version from the node's clock: the cleanup drops only versions at or below it. */
  readonly now?: () => bigint;
  /** A cleanup was due when the node stopped (file.ts's CLEANUP_DUE): it is redone at start. */
  readonly cleanupDue?: boolean;
  /** Records that a cleanup is due for the view of `epoch`, or (undefined) that none is. */
  readonly markCleanupDue?: (epoch: bigint | undefined) => Promise<void>;
  /** This node was removed from the cluster: stop it (called once, after the trailing time). */
  readonly onRemoved?: () => void;
  /** One line per event an operator should see. */
  readonly log?: (line: string) => void;
  readonly pollIntervalMs?: number;
  readonly trailingMs?: number;
  readonly bytesPerSecond?: number;
}

/** What a node answers to a progress request (MOVE kind 1), as JSON. */
export interface MoveProgressAnswer {
  readonly node: string;
  readonly epoch: string;
  readonly state: string;
  readonly move: string | null;
  /** Every member's state in this node's view. */
  readonly members: Readonly<Record<string, string>>;
  /** This node's streaming for the move under way, if it is a new owner. */
  readonly receiving: ReceiveProgress | null;
}

/** New owners of the move under way: joining members, and with a member leaving every normal one. */
export function newOwners(view: Membership): string[] {
  const leaving = view.members.some((m) => m.state === MemberState.Leaving);
  return view.members
    .filter((m) => m.state === MemberState.Joining || (leaving && m.state === MemberState.Normal))
    .map((m) => m.url);
}

/** The cleanup starts this long after the trailing ring stopped getting writes. */
const CLEANUP_MARGIN_MS = 1000;
/** The hash space: 0 .. 2^32 - 1. */
const RING_SPAN = 2 ** 32;

/**
 * The hash ranges in which `self` is not among a key's first R replicas on
 * `view`'s current ring (R its replication factor): flattened [start, end)
 * pairs, sorted. Everything when `self` is not on it.
 */
export function unheldRanges(self: string, view: Membership): number[] {
  const ring = ringOf(currentMembers(view));
  const held =
    ring?.nodes.includes(self) === true ? ring.ranges(self, replicationFactor(ring.nodes.length)) : [];
  return subtractRanges([0, RING_SPAN], held);
}

/** The ranges of `a` not in `b` (both sorted lists of [start, end) pairs). */
export function subtractRanges(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < a.length; i += 2) {
    let start = a[i]!;
    const end = a[i + 1]!;
    while (j < b.length && b[j + 1]! <= start) j += 2;
    for (let k = j; k < b.length && b[k]! < end; k += 2) {
      if (b[k]! > start) out.push(start, b[k]!);
      start = Math.max(start, b[k + 1]!);
    }
    if (start < end) out.push(start, end);
  }
  return out;
}

export class Mover {
  readonly #options: MoverOptions;
  readonly #selfUrl: string;
  readonly #topology: Topology;
  readonly #log: (line: string) => void;
  #receiver: StreamReceiver | undefined;
  /** The completer's last look at each new owner. */
  #owners = new Map<string, ReceiveProgress | { error: string }>();
  #timer: NodeJS.Timeout | undefined;
  #removedTimer: NodeJS.Timeout | undefined;
  #cleanupTimer: NodeJS.Timeout | undefined;
  /** The last cleanup: what it dropped, or why it did not run. */
  #cleanup: Record<string, unknown> | null = null;
  /** Abandons the purge under way: a membership change gives it up (it may hand those ranges back). */
  #purging: AbortController | undefined;
  #running = false;
  /** The marker's writes (CLEANUP_DUE), one after the other. */
  #marking: Promise<void> = Promise.resolve();
  #polling = false;
  #removed = false;
  /** The view the node started from (its stored one), before it caught up with the members. */
  readonly #startView: Membership;

  constructor(options: MoverOptions) {
    this.#options = options;
    this.#selfUrl = options.selfUrl;
    this.#topology = options.topology;
    this.#startView = options.topology.view;
    this.#log = options.log ?? (() => {});
    this.#topology.onChange((view, previous) => this.#changed(view, previous));
  }

  /** Acts on the view held now (a move to resume, a removal to carry out), then on every change. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const view = this.#topology.view;
    this.#changed(view, EMPTY_MEMBERSHIP);
    // A node that was down when the ring changed (a flip it missed) learned the new ring as it
    // started: it holds ranges it handed over, as the nodes that saw the flip did until their cleanup.
    const ringChanged = !sameCurrentRing(this.#startView, view);
    if (
      (this.#options.cleanupDue === true || ringChanged) &&
      !moveUnderWay(view) &&
      this.#topology.member(this.#selfUrl)?.state === MemberState.Normal
    ) {
      this.#log(
        `${ringChanged ? `The ring changed while this node was away (epoch ${this.#startView.epoch} -> ${view.epoch})` : 'A cleanup was due when this node stopped'}: it runs in ${this.#trailingMs() + CLEANUP_MARGIN_MS} ms`,
      );
      this.#scheduleCleanup(view);
    }
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#receiver?.abort();
    this.#receiver = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#removedTimer !== undefined) clearTimeout(this.#removedTimer);
    if (this.#cleanupTimer !== undefined) clearTimeout(this.#cleanupTimer);
    this.#timer = undefined;
  }

  /** The internode MOVE handler: an operator's request, or a completer asking for progress. */
  async handleMove(body: Buffer): Promise<Buffer> {
    const request = decodeMoveRequest(body);
    const gossip = this.#options.gossip;
    let answer: unknown;
    switch (request.kind) {
      case MoveKind.Progress:
        answer = this.progress();
        break;
      case MoveKind.Decommission: {
        if (request.argument !== this.#selfUrl) {
          throw new RingkvError(
            'RINGKV_BAD_REQUEST',
            `Decommission is asked of the node that leaves: this is ${this.#selfUrl}, not ${request.argument}`,
          );
        }
        answer = this.#leavingAlready(this.#selfUrl, { dead: false });
        if (answer !== undefined) break;
        const view = await gossip.propose((v) => withLeaving(v, this.#selfUrl, { dead: false }));
        this.#log(
          `Decommissioning ${this.#selfUrl} (epoch ${view.epoch}): its ranges stream to their new owners`,
        );
        answer = { epoch: String(view.epoch), move: describeMove(view) };
        break;
      }
      case MoveKind.Remove: {
        const dead = request.argument;
        if (dead === this.#selfUrl) {
          throw new RingkvError(
            'RINGKV_BAD_REQUEST',
            `${dead} cannot remove itself: decommission it instead`,
          );
        }
        answer = this.#leavingAlready(dead, { dead: true });
        if (answer !== undefined) break;
        if (await answersExchange(this.#options.transport, dead)) {
          throw new RingkvError(
            'RINGKV_BAD_REQUEST',
            `${dead} is up and answering: decommission it (ringkv decommission --url ${dead}) rather than remove it`,
          );
        }
        const view = await gossip.propose((v) => withLeaving(v, dead, { dead: true }));
        this.#log(`Removing ${dead} (epoch ${view.epoch}): its ranges are rebuilt from the other replicas`);
        answer = { epoch: String(view.epoch), move: describeMove(view) };
        break;
      }
      case MoveKind.Cancel: {
        const before = this.#topology.view;
        const view = await gossip.propose((v) => cancelled(v));
        this.#log(`Move cancelled (epoch ${view.epoch}): ${describeMove(before)}`);
        answer = { epoch: String(view.epoch), cancelled: describeMove(before) };
        break;
      }
    }
    return Buffer.from(JSON.stringify(answer));
  }

  /**
   * The answer to a decommission or remove that is made already (membership.ts's
   * leavingAlready): the same command run again after its wait timed out takes up
   * the move, or learns it is done, rather than being refused. Undefined otherwise.
   */
  #leavingAlready(url: string, options: { dead: boolean }): Record<string, string | null> | undefined {
    const view = this.#topology.view;
    const already = leavingAlready(view, url, options);
    if (already === undefined) return undefined;
    return { epoch: String(view.epoch), move: moveUnderWay(view) ? describeMove(view) : null, already };
  }

  /** This node's answer to a progress request. */
  progress(): MoveProgressAnswer {
    const view = this.#topology.view;
    const self = this.#topology.member(this.#selfUrl);
    const receiver = this.#receiver;
    return {
      node: this.#selfUrl,
      epoch: String(view.epoch),
      state: self === undefined ? 'unknown' : MEMBER_STATE_NAMES[self.state],
      move: moveUnderWay(view) ? describeMove(view) : null,
      members: Object.fromEntries(view.members.map((m) => [m.url, MEMBER_STATE_NAMES[m.state]])),
      receiving: receiver !== undefined && sameView(receiver.view, view) ? receiver.progress() : null,
    };
  }

  /** For /v0/status: the move under way, this node's streaming, and what the completer last heard. */
  status(): Record<string, unknown> {
    const view = this.#topology.view;
    return {
      move: moveUnderWay(view) ? describeMove(view) : null,
      newOwners: moveUnderWay(view) ? newOwners(view) : [],
      receiving: this.progress().receiving,
      completing: this.#owners.size === 0 ? null : Object.fromEntries(this.#owners),
      cleanup: this.#cleanup,
    };
  }

  #changed(view: Membership, previous: Membership): void {
    if (!this.#running) return;
    // A purge waits its turn behind a running compaction, then compacts what was flushed meanwhile:
    // entries a new move streams in (their versions are old) would go with the rest.
    this.#purging?.abort(new RingkvError('RINGKV_UNAVAILABLE', 'the membership changed during it'));
    if (view !== previous && previous !== EMPTY_MEMBERSHIP) {
      this.#log(
        `Membership epoch ${view.epoch}: ${moveUnderWay(view) ? `move under way (${describeMove(view)})` : 'no move under way'}`,
      );
    }
    if (this.#receiver !== undefined && !sameView(this.#receiver.view, view)) {
      this.#receiver.abort();
      this.#receiver = undefined;
    }
    this.#owners = new Map();
    const self = this.#topology.member(this.#selfUrl);
    if (self?.state === MemberState.Removed && !this.#removed) {
      this.#removed = true;
      this.#log(
        `This node was removed from the cluster (epoch ${view.epoch}): it stops in ${this.#trailingMs()} ms`,
      );
      // It serves out the trailing time: nodes that have not heard of the change yet still write to it.
      this.#removedTimer = setTimeout(
        () => this.#options.onRemoved?.(),
        previous === EMPTY_MEMBERSHIP ? 0 : this.#trailingMs(),
      );
      this.#removedTimer.unref();
      return;
    }
    if (moveUnderWay(view) && newOwners(view).includes(this.#selfUrl) && this.#receiver === undefined) {
      void this.#receive(view);
    }
    // A move ended, or (for a node that was cut off) the ring changed without this node seeing the move.
    const ended =
      moveUnderWay(previous) || (previous !== EMPTY_MEMBERSHIP && !sameCurrentRing(previous, view));
    if (ended && !moveUnderWay(view) && self?.state === MemberState.Normal) {
      this.#scheduleCleanup(view);
    }
  }

  /** Once the trailing time is over, drops what the move's end left here that this node no longer holds. */
  #scheduleCleanup(view: Membership): void {
    const lost = unheldRanges(this.#selfUrl, view);
    this.#markCleanupDue(lost.length === 0 ? undefined : view.epoch);
    if (lost.length === 0) return;
    const share = lost.reduce((sum, bound, i) => sum + (i % 2 === 0 ? -bound : bound), 0) / 2 ** 32;
    this.#cleanup = { epoch: String(view.epoch), state: 'scheduled', ranges: lost.length / 2, share };
    if (this.#cleanupTimer !== undefined) clearTimeout(this.#cleanupTimer);
    this.#cleanupTimer = setTimeout(() => {
      this.#cleanupTimer = undefined;
      void this.#runCleanup(view, lost, share);
    }, this.#trailingMs() + CLEANUP_MARGIN_MS);
    this.#cleanupTimer.unref();
  }

  async #runCleanup(view: Membership, lost: number[], share: number): Promise<void> {
    const engine = this.#options.engine;
    const base = { epoch: String(view.epoch), ranges: lost.length / 2, share };
    if (this.#topology.view !== view || !this.#running) {
      this.#cleanup = { ...base, state: 'skipped', reason: 'the membership changed since' };
      this.#log(`Cleanup for epoch ${view.epoch} skipped: the membership changed since; the data stays`);
      return;
    }
    if (engine.purge === undefined || this.#options.now === undefined) return;
    const startedMs = Date.now();
    this.#cleanup = { ...base, state: 'running' };
    const abandon = new AbortController();
    this.#purging = abandon;
    try {
      await engine.purge({ hashRanges: lost, versionMax: this.#options.now() }, { signal: abandon.signal });
      this.#cleanup = { ...base, state: 'done', ms: Date.now() - startedMs };
      // A move that ended meanwhile marked its own cleanup, still due.
      if (this.#topology.view === view) this.#markCleanupDue(undefined);
      this.#log(
        `Cleanup for epoch ${view.epoch}: dropped the keys of ${lost.length / 2} ranges (${(share * 100).toFixed(1)}% of the hash space) this node no longer holds, in ${Date.now() - startedMs} ms`,
      );
    } catch (err) {
      if (abandon.signal.aborted) {
        this.#cleanup = { ...base, state: 'skipped', reason: 'the membership changed during it' };
        this.#log(
          `Cleanup for epoch ${view.epoch} abandoned: the membership changed during it; the data stays`,
        );
        return;
      }
      this.#cleanup = { ...base, state: 'failed', error: errorMessage(err) };
      this.#log(
        isRingkvError(err, 'RINGKV_CLOSED')
          ? `Cleanup for epoch ${view.epoch} stopped by the node's shutdown; it runs again at the next start`
          : `Cleanup for epoch ${view.epoch} failed: ${errorMessage(err)}; the data stays`,
      );
    } finally {
      if (this.#purging === abandon) this.#purging = undefined;
    }
  }

  /** Streams this node's new ranges for the move of `view`. */
  async #receive(view: Membership): Promise<void> {
    const { topology, gossip } = this.#options;
    const current = topology.current;
    const future = topology.future;
    if (current === undefined || future === undefined) return;
    const receiver = new StreamReceiver({
      selfUrl: this.#selfUrl,
      view,
      rings: { current, future },
      engine: this.#options.engine,
      transport: this.#options.transport,
      ...(this.#options.observe === undefined ? {} : { observe: this.#options.observe }),
      onStale: (source) => gossip.exchange(source),
      ...(this.#options.bytesPerSecond === undefined ? {} : { bytesPerSecond: this.#options.bytesPerSecond }),
      log: this.#log,
    });
    this.#receiver = receiver;
    // Everyone that can be reached holds this view before anything is streamed: none writes without this node.
    await gossip.exchangeAll();
    if (this.#receiver !== receiver || !sameView(topology.view, view)) return;
    this.#log(`Streaming this node's new ranges for the move of epoch ${view.epoch} (${describeMove(view)})`);
    await receiver.run();
    if (!receiver.done) return;
    const progress = receiver.progress();
    const seconds = Math.max(0.001, ((progress.doneAtMs ?? Date.now()) - progress.startedAtMs) / 1000);
    this.#log(
      `Streamed ${progress.keys} keys, ${progress.bytes} bytes in ${seconds.toFixed(1)} s (${(progress.bytes / 1048576 / seconds).toFixed(1)} MiB/s) for the move of epoch ${view.epoch}`,
    );
    void this.#poll();
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#poll().then(() => this.#schedule());
    }, this.#options.pollIntervalMs ?? limits.movePollIntervalMs);
    this.#timer.unref();
  }

  /** The completer's round: ask each new owner how far it got; flip once all are done. */
  async #poll(): Promise<void> {
    const view = this.#topology.view;
    if (this.#polling || !moveUnderWay(view) || !this.#completes(view)) return;
    this.#polling = true;
    try {
      const owners = newOwners(view);
      const answers = await Promise.all(owners.map((url) => this.#progressOf(url)));
      if (this.#topology.view !== view) return;
      this.#owners = new Map(owners.map((url, i) => [url, answers[i]!]));
      // Done for this very view: a new owner that streamed for another view of the same epoch does not count.
      const digest = viewDigestHex(view);
      const done = answers.every((a) => 'done' in a && a.done && a.view === digest);
      if (!done) return;
      const next = await this.#options.gossip.propose((v) => {
        if (!sameView(v, view))
          throw new RingkvError('RINGKV_UNAVAILABLE', 'The membership changed meanwhile');
        return flipped(v);
      });
      this.#log(`Move complete (epoch ${next.epoch}): ${describeMove(view)}`);
    } catch (err) {
      this.#log(`Completing the move of epoch ${view.epoch} failed: ${errorMessage(err)}`);
    } finally {
      this.#polling = false;
    }
  }

  /** Whether this node completes the move: the first normal member of the current ring it sees up. */
  #completes(view: Membership): boolean {
    const transport = this.#options.transport;
    for (const member of view.members) {
      if (member.state !== MemberState.Normal) continue;
      if (member.url === this.#selfUrl) return true;
      if (transport.isUp(member.url)) return false;
    }
    return false;
  }

  async #progressOf(url: string): Promise<ReceiveProgress | { error: string }> {
    if (url === this.#selfUrl) return this.progress().receiving ?? { error: 'not streaming yet' };
    try {
      const body = await this.#options.transport.move(
        url,
        Buffer.from([MoveKind.Progress]),
        Date.now() + limits.membershipRequestTimeoutMs,
      );
      const answer = JSON.parse(body.toString('utf8')) as MoveProgressAnswer;
      return answer.receiving ?? { error: `not streaming (epoch ${answer.epoch})` };
    } catch (err) {
      return { error: errorMessage(err) };
    }
  }

  /** Keeps the CLEANUP_DUE marker in step; a failure to is logged (it costs a cleanup, or one skipped on a restart). */
  #markCleanupDue(epoch: bigint | undefined): void {
    const mark = this.#options.markCleanupDue;
    if (mark === undefined) return;
    // In order: a mark and a clear made one after the other land in that order.
    this.#marking = this.#marking
      .then(() => mark(epoch))
      .catch((err: unknown) => {
        this.#log(`Cannot record whether a cleanup is due: ${errorMessage(err)}`);
      });
  }

  #trailingMs(): number {
    return this.#options.trailingMs ?? limits.ringTrailingMs;
  }
}
