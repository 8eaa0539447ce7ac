/**
 * HintedHandoff: the loop that hands stored hints (hint-store.ts) to their
 * peers once they are back.
 *
 * It runs on its own schedule, never once per write: every `intervalMs` a
 * round looks at the peers with hints and, for those the transport reports
 * up (and, every `downRetryMs`, for those it does not, in case nothing else
 * brings them back), sends their hints oldest first:
 *   1. peek a batch (at most batchEntriesMax entries, about batchBytesMax bytes);
 *      the store leaves out hints too old to deliver (hint-store.ts);
 *   2. place each hint by its key as the cluster is now (`placement`: the
 *      nodes a write of the key with the hint's `from` goes to). The ring
 *      may have changed since the hint was kept (a join, a decommission):
 *      a peer that no longer holds the key must not get it (it would keep a
 *      copy nobody maintains, which can come back as a resurrected delete
 *      once the range is its again), and the key's owners now should;
 *   3. write the hints the peer still holds with transport.write, at most
 *      inFlightMax at once (none for a batch with no such hint: it goes
 *      even while the peer is down);
 *   4. then hand the others, with their own version, to their key's
 *      current nodes instead (*rerouted*): a write to each that is up, and a
 *      new hint (same `from`) for each that is down or fails;
 *   5. all succeeded: acknowledge the batch (the store drops it, and deletes a
 *      fully delivered file), go on with the next; any failed: stop this
 *      peer's round and retry the whole batch later (what was handed on to a
 *      node already is not handed to it again). Writes are idempotent
 *      (the newest version wins), so entries delivered twice are harmless.
 * At most peersConcurrentMax peers are served at once, one round at a time.
 * A round serves each peer for at most peerRoundMsMax, then moves on (the
 * next round goes on where it stopped): the next round waits for this one,
 * so a slow peer with a long backlog would otherwise hold up every other
 * peer's hints for as long as its own took.
 *
 * drain(deadlineMs), for shutdown: stops the schedule, lets the round under
 * way finish its batch, then delivers to every peer with hints until the
 * deadline; whatever is left stays on disk for the next start.
 *
 * Example:
 *   const handoff = new HintedHandoff({ store: hints, transport });
 *   handoff.start();
 *   // on SIGTERM: await handoff.drain(Date.now() + 3000); await hints.close();
 */
import { limits } from '../../config/limits.js';
import type { Entry } from '../../storage/index.js';
import { assert } from '../../util/assert.js';
import { errorMessage } from '../../util/errors.js';
import type { HintBatch, HintStore } from './hint-store.js';

/** What the handoff needs of a transport (the Transport contract has it). */
export interface HandoffTransport {
  /** Resolves once the peer stored the entry; what it resolves to is not used. */
  write(peer: string, entry: Entry, deadlineMs: number): Promise<unknown>;
  isUp(peer: string): boolean;
}

export interface HintedHandoffOptions {
  readonly store: HintStore;
  readonly transport: HandoffTransport;
  readonly intervalMs?: number;
  readonly batchEntriesMax?: number;
  readonly batchBytesMax?: number;
  readonly inFlightMax?: number;
  readonly peersConcurrentMax?: number;
  readonly writeTimeoutMs?: number;
  readonly downRetryMs?: number;
  /** A scheduled round's delivery to one peer goes on at most this long (default limits.hintPeerRoundMsMax). */
  readonly peerRoundMsMax?: number;
  /** Whether a peer is still a member of the cluster: the hints of one that is not are dropped (default: every peer is). */
  readonly isMember?: (peer: string) => boolean;
  /**
   * The nodes a write of `key` made with `from` goes to now (its replicas
   * and pending owners, the coordinator's choice); `from` is undefined when
   * the hint does not record it, and the placement picks the cluster's
   * replication factor then. Undefined: not known (no ring), the hint goes
   * to its peer. Default: every hint goes to its peer. The transport must
   * write to every node this names, this node included.
   */
  readonly placement?: (key: Uint8Array, from: number | undefined) => readonly string[] | undefined;
  readonly log?: (line: string) => void;
}

export interface HandoffStats {
  readonly rounds: number;
  /** Hints written to their peer and dropped from disk. */
  readonly delivered: number;
  readonly batches: number;
  /** Peer rounds stopped by a failed write (the batch is retried later). */
  readonly failedBatches: number;
  /** Hints dropped because their peer left the cluster. */
  readonly forgotten: number;
  /** Hints whose peer no longer held their key, handed to its current nodes instead. */
  readonly rerouted: number;
  readonly lastError: string | undefined;
}

export interface DrainResult {
  readonly delivered: number;
  /** Hints still on disk, all peers together. */
  readonly remaining: number;
}

export class HintedHandoff {
  readonly #store: HintStore;
  readonly #transport: HandoffTransport;
  readonly #intervalMs: number;
  readonly #batchEntriesMax: number;
  readonly #batchBytesMax: number;
  readonly #inFlightMax: number;
  readonly #peersConcurrentMax: number;
  readonly #writeTimeoutMs: number;
  readonly #downRetryMs: number;
  readonly #peerRoundMsMax: number;
  readonly #isMember: (peer: string) => boolean;
  readonly #placement: HintedHandoffOptions['placement'];
  readonly #log: (line: string) => void;
  /** Last time each peer was tried (ms), for the down-peer retry. */
  readonly #lastTriedMs = new Map<string, number>();
  /** Peers being delivered to: one delivery per peer at a time. */
  readonly #busy = new Set<string>();
  /**
   * Per peer, its batch being handed on (by where it starts) and the hints of it each node got
   * or keeps: a batch retried after a failure does not hand them again (each would be one more
   * hint in that node's budget, every round for as long as the failure lasts).
   */
  readonly #handedOn = new Map<string, { readonly at: string; readonly done: Set<string> }>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  /** Deliveries started by peerUp(), outside the rounds. */
  readonly #deliveries = new Set<Promise<void>>();
  /** No schedule is running. */
  #idle = true;
  /** stop() or drain() was called: rounds under way end after their current batch. */
  #stopping = false;
  #rounds = 0;
  #delivered = 0;
  #batches = 0;
  #failedBatches = 0;
  #forgotten = 0;
  #rerouted = 0;
  #lastError: string | undefined;

  constructor(options: HintedHandoffOptions) {
    this.#store = options.store;
    this.#transport = options.transport;
    this.#intervalMs = options.intervalMs ?? limits.hintHandoffIntervalMs;
    this.#batchEntriesMax = options.batchEntriesMax ?? limits.hintBatchEntriesMax;
    this.#batchBytesMax = options.batchBytesMax ?? limits.hintBatchBytesMax;
    this.#inFlightMax = options.inFlightMax ?? limits.hintInFlightMax;
    this.#peersConcurrentMax = options.peersConcurrentMax ?? limits.hintPeersConcurrentMax;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? limits.hintWriteTimeoutMs;
    this.#downRetryMs = options.downRetryMs ?? limits.hintDownRetryMs;
    this.#peerRoundMsMax = options.peerRoundMsMax ?? limits.hintPeerRoundMsMax;
    this.#isMember = options.isMember ?? (() => true);
    this.#placement = options.placement;
    this.#log = options.log ?? (() => {});
    assert(this.#intervalMs > 0, `hint handoff interval must be positive: ${this.#intervalMs}`);
    assert(
      this.#batchEntriesMax >= 1 &&
        this.#inFlightMax >= 1 &&
        this.#peersConcurrentMax >= 1 &&
        this.#peerRoundMsMax > 0,
      'bounds >= 1',
    );
  }

  /** Starts the schedule: a round every intervalMs, never two at once. */
  start(): void {
    if (!this.#idle) return;
    this.#idle = false;
    this.#stopping = false;
    this.#schedule();
  }

  /**
   * The transport found `peer` back: its hints go now rather than at the next
   * round, so that a restarted peer catches up on what it missed at once.
   */
  peerUp(peer: string): void {
    if (this.#idle || this.#stopping || this.#busy.has(peer)) return;
    if (this.#store.pending(peer).entries === 0) return;
    const delivery = this.#deliver(peer, Number.POSITIVE_INFINITY, false)
      .catch((err: unknown) => {
        this.#log(`Hint handoff to ${peer} failed: ${errorMessage(err)}`);
      })
      .finally(() => this.#deliveries.delete(delivery));
    this.#deliveries.add(delivery);
  }

  /**
   * Stops the schedule and waits for the round under way to finish its
   * current batches. A round that fails was the schedule's to report.
   */
  async stop(): Promise<void> {
    this.#idle = true;
    this.#stopping = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([this.#round, ...this.#deliveries]);
  }

  /** One round now (tests; the schedule calls it too). Resolves when it is over. */
  runOnce(): Promise<void> {
    this.#round ??= this.#runRound(Number.POSITIVE_INFINITY, false).finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  /**
   * Stops the schedule, then delivers what reachable peers take before
   * `deadlineMs` (a Date.now() time); the rest stays on disk. Rejects when
   * the store fails (a hint file that cannot be read), once no delivery is
   * under way any more.
   */
  async drain(deadlineMs: number): Promise<DrainResult> {
    await this.stop();
    const before = this.#delivered;
    if (Date.now() < deadlineMs) await this.#runRound(deadlineMs, true);
    let remaining = 0;
    for (const peer of this.#store.peers()) remaining += this.#store.pending(peer).entries;
    return { delivered: this.#delivered - before, remaining };
  }

  stats(): HandoffStats {
    return {
      rounds: this.#rounds,
      delivered: this.#delivered,
      batches: this.#batches,
      failedBatches: this.#failedBatches,
      forgotten: this.#forgotten,
      rerouted: this.#rerouted,
      lastError: this.#lastError,
    };
  }

  #schedule(): void {
    if (this.#idle) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.runOnce().then(
        () => this.#schedule(),
        (err: unknown) => {
          // Store failures (a disk error) are logged; the next round tries again.
          this.#log(`Hint handoff round failed: ${errorMessage(err)}`);
          this.#schedule();
        },
      );
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Serves the due peers, peersConcurrentMax at once. `draining`: every peer with hints, down or not. */
  async #runRound(untilMs: number, draining: boolean): Promise<void> {
    this.#rounds++;
    const now = Date.now();
    const due = this.#store.peers().filter((peer) => {
      if (this.#busy.has(peer)) return false;
      if (draining || this.#transport.isUp(peer) || !this.#isMember(peer)) return true;
      return now - (this.#lastTriedMs.get(peer) ?? 0) >= this.#downRetryMs;
    });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length) {
        const peer = due[next++]!;
        // A drain has its own deadline; a scheduled round moves on after a slice per peer.
        const sliceEndMs = draining ? Number.POSITIVE_INFINITY : Date.now() + this.#peerRoundMsMax;
        await this.#deliver(peer, untilMs, draining, sliceEndMs);
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(this.#peersConcurrentMax, due.length); i++) workers.push(worker());
    // Every worker ends before a failure is reported: the caller may close the store next.
    const failed = (await Promise.allSettled(workers)).find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /**
   * Batches to one peer until none is left, one fails, the deadline passes,
   * (unless draining) stop(), or sliceEndMs passes. The slice only stops
   * taking new batches: unlike untilMs, it never cuts a write's deadline.
   */
  async #deliver(
    peer: string,
    untilMs: number,
    draining: boolean,
    sliceEndMs = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    // One delivery per peer: a round's worker can reach a peer that peerUp() started on meanwhile.
    if (this.#busy.has(peer)) return;
    this.#busy.add(peer);
    this.#lastTriedMs.set(peer, Date.now());
    let delivered = 0;
    let rerouted = 0;
    let tooOld = 0;
    try {
      if (!this.#isMember(peer)) {
        // It left the cluster: nobody will deliver these, and they hold the store's shared budget.
        const forgotten = await this.#store.forget(peer);
        this.#forgotten += forgotten;
        this.#lastTriedMs.delete(peer);
        this.#handedOn.delete(peer);
        if (forgotten > 0)
          this.#log(`Dropped ${forgotten} hints for ${peer}: no longer a member of the cluster`);
        return;
      }
      while ((draining || !this.#stopping) && Date.now() < Math.min(untilMs, sliceEndMs)) {
        const batch = await this.#store.peek(peer, this.#batchEntriesMax, this.#batchBytesMax);
        if (batch === undefined) return;
        if (batch.entries.length === 0) {
          await this.#store.acknowledge(batch);
          tooOld += batch.tooOld;
          continue;
        }
        const deadlineMs = () => Math.min(untilMs, Date.now() + this.#writeTimeoutMs);
        const { held, moved } = this.#place(batch);
        // The peer's own first: a batch it fails is retried whole, and its moved hints are not handed on twice.
        const sent =
          (held.length === 0 || (await this.#send(peer, held, deadlineMs()))) &&
          (moved.length === 0 || (await this.#reroute(moved, deadlineMs(), this.#handedOnOf(batch))));
        if (!sent) {
          this.#failedBatches++;
          return;
        }
        this.#handedOn.delete(peer);
        await this.#store.acknowledge(batch, moved.length);
        this.#batches++;
        this.#delivered += held.length;
        delivered += held.length;
        this.#rerouted += moved.length;
        rerouted += moved.length;
        tooOld += batch.tooOld;
      }
    } finally {
      this.#busy.delete(peer);
      // One line per delivery to a peer, not per batch.
      if (delivered > 0 || rerouted > 0 || tooOld > 0) {
        const left = this.#store.pending(peer).entries;
        const parts = [];
        if (delivered > 0) parts.push(`Delivered ${delivered} hints to ${peer}`);
        if (rerouted > 0) {
          parts.push(
            `${parts.length === 0 ? 'Handed' : 'handed'} ${rerouted} hints for ${peer} to their keys' current replicas: it no longer holds those keys`,
          );
        }
        if (tooOld > 0) {
          parts.push(
            parts.length === 0
              ? `Dropped ${tooOld} hints for ${peer}: too old to deliver`
              : `dropped ${tooOld} too old to deliver`,
          );
        }
        if (left > 0) parts.push(`${left} still pending`);
        this.#log(parts.join('; '));
      }
    }
  }

  /** Splits a batch: hints its peer still holds (or whose placement is not known), and the others with their nodes now. */
  #place(batch: HintBatch): { held: Entry[]; moved: _Moved[] } {
    const held: Entry[] = [];
    const moved: _Moved[] = [];
    for (let i = 0; i < batch.entries.length; i++) {
      const entry = batch.entries[i]!;
      const from = batch.froms[i];
      const nodes = this.#placement?.(entry.key, from);
      if (nodes === undefined || nodes.length === 0 || nodes.includes(batch.peer)) held.push(entry);
      else moved.push({ entry, from, nodes });
    }
    return { held, moved };
  }

  /** What of `batch` was handed on already: nothing, unless it is the one tried last for its peer. */
  #handedOnOf(batch: HintBatch): Set<string> {
    const at = `${batch.segment}:${batch.start}`;
    const known = this.#handedOn.get(batch.peer);
    if (known?.at === at) return known.done;
    const done = new Set<string>();
    this.#handedOn.set(batch.peer, { at, done });
    return done;
  }

  /** Writes entries to `peer`, inFlightMax at once; false as soon as one failed (the others still settle). */
  #send(peer: string, entries: readonly Entry[], deadlineMs: number): Promise<boolean> {
    return this.#eachAtMost(entries, (entry) => this.#write(peer, entry, deadlineMs));
  }

  /** One write; false when it failed (lastError says why). */
  async #write(peer: string, entry: Entry, deadlineMs: number): Promise<boolean> {
    try {
      await this.#transport.write(peer, entry, deadlineMs);
      return true;
    } catch (err) {
      this.#lastError = `${peer}: ${errorMessage(err)}`;
      return false;
    }
  }

  /**
   * Hands hints to their key's current nodes: a write to each that is up,
   * a hint (with the same `from`) for each that is down or fails. False
   * when a hint could not be kept (the store failed): the batch is retried.
   * A hint the store drops (its budget is full) is counted there; anti-entropy
   * covers it, as for any dropped hint. `done`: the (node, hint) pairs handed
   * on already, skipped, and added to.
   */
  #reroute(moved: readonly _Moved[], deadlineMs: number, done: Set<string>): Promise<boolean> {
    return this.#eachAtMost(moved, async ({ entry, from, nodes }) => {
      for (const node of nodes) {
        const pair = `${node} ${entry.version} ${entry.key.toString('base64')}`;
        if (done.has(pair)) continue;
        // One that is down, or fails, gets a hint, as a coordinator's failed replica write does.
        if (!this.#transport.isUp(node) || !(await this.#write(node, entry, deadlineMs))) {
          try {
            await this.#store.add(node, entry, from);
          } catch (err) {
            this.#lastError = `${node}: ${errorMessage(err)}`;
            return false;
          }
        }
        done.add(pair);
      }
      return true;
    });
  }

  /** Runs `task` on every item, inFlightMax at once; false as soon as one returned false (the others still settle). */
  async #eachAtMost<T>(items: readonly T[], task: (item: T) => Promise<boolean>): Promise<boolean> {
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < items.length) {
        if (!(await task(items[next++]!))) failed = true;
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(this.#inFlightMax, items.length); i++) workers.push(worker());
    await Promise.all(workers);
    return !failed;
  }
}

/** A hint whose peer no longer holds its key, and the nodes that do now. */
interface _Moved {
  readonly entry: Entry;
  readonly from: number | undefined;
  readonly nodes: readonly string[];
}
