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
 *   2. write its entries with transport.write, at most inFlightMax at once
 *      (none for a batch of hints all too old: it is acknowledged at once,
 *      so that they go even while their peer is down);
 *   3. all succeeded: acknowledge the batch (the store drops it, and deletes a
 *      fully delivered file), go on with the next; any failed: stop this
 *      peer's round and retry the whole batch later. Writes are idempotent
 *      (the newest version wins), so entries delivered twice are harmless.
 * At most peersConcurrentMax peers are served at once, one round at a time.
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
  /** Whether a peer is still a member of the cluster: the hints of one that is not are dropped (default: every peer is). */
  readonly isMember?: (peer: string) => boolean;
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
  readonly #isMember: (peer: string) => boolean;
  readonly #log: (line: string) => void;
  /** Last time each peer was tried (ms), for the down-peer retry. */
  readonly #lastTriedMs = new Map<string, number>();
  /** Peers being delivered to: one delivery per peer at a time. */
  readonly #busy = new Set<string>();
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
    this.#isMember = options.isMember ?? (() => true);
    this.#log = options.log ?? (() => {});
    assert(this.#intervalMs > 0, `hint handoff interval must be positive: ${this.#intervalMs}`);
    assert(
      this.#batchEntriesMax >= 1 && this.#inFlightMax >= 1 && this.#peersConcurrentMax >= 1,
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
        await this.#deliver(peer, untilMs, draining);
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(this.#peersConcurrentMax, due.length); i++) workers.push(worker());
    // Every worker ends before a failure is reported: the caller may close the store next.
    const failed = (await Promise.allSettled(workers)).find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** Batches to one peer until none is left, one fails, the deadline passes, or (unless draining) stop(). */
  async #deliver(peer: string, untilMs: number, draining: boolean): Promise<void> {
    // One delivery per peer: a round's worker can reach a peer that peerUp() started on meanwhile.
    if (this.#busy.has(peer)) return;
    this.#busy.add(peer);
    this.#lastTriedMs.set(peer, Date.now());
    let delivered = 0;
    let tooOld = 0;
    try {
      if (!this.#isMember(peer)) {
        // It left the cluster: nobody will deliver these, and they hold the store's shared budget.
        const forgotten = await this.#store.forget(peer);
        this.#forgotten += forgotten;
        this.#lastTriedMs.delete(peer);
        if (forgotten > 0)
          this.#log(`Dropped ${forgotten} hints for ${peer}: no longer a member of the cluster`);
        return;
      }
      while ((draining || !this.#stopping) && Date.now() < untilMs) {
        const batch = await this.#store.peek(peer, this.#batchEntriesMax, this.#batchBytesMax);
        if (batch === undefined) return;
        if (batch.entries.length === 0) {
          await this.#store.acknowledge(batch);
          tooOld += batch.tooOld;
          continue;
        }
        const deadlineMs = Math.min(untilMs, Date.now() + this.#writeTimeoutMs);
        if (!(await this.#send(batch, deadlineMs))) {
          this.#failedBatches++;
          return;
        }
        await this.#store.acknowledge(batch);
        this.#batches++;
        this.#delivered += batch.entries.length;
        delivered += batch.entries.length;
        tooOld += batch.tooOld;
      }
    } finally {
      this.#busy.delete(peer);
      // One line per delivery to a peer, not per batch.
      if (delivered > 0 || tooOld > 0) {
        const left = this.#store.pending(peer).entries;
        const done =
          delivered === 0
            ? `Dropped ${tooOld} hints for ${peer}: too old to deliver`
            : `Delivered ${delivered} hints to ${peer}${tooOld > 0 ? `; dropped ${tooOld} too old to deliver` : ''}`;
        this.#log(`${done}${left > 0 ? `; ${left} still pending` : ''}`);
      }
    }
  }

  /** Writes a batch's entries, inFlightMax at once; false as soon as one failed (the others still settle). */
  async #send(batch: HintBatch, deadlineMs: number): Promise<boolean> {
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < batch.entries.length) {
        const entry = batch.entries[next++]!;
        try {
          await this.#transport.write(batch.peer, entry, deadlineMs);
        } catch (err) {
          failed = true;
          this.#lastError = `${batch.peer}: ${errorMessage(err)}`;
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(this.#inFlightMax, batch.entries.length); i++) workers.push(worker());
    await Promise.all(workers);
    return !failed;
  }
}
