/**
 * ClusterStore: the Store of a cluster of two or more nodes. The node that
 * receives a client request coordinates it:
 *
 *   PUT/DELETE: stamp a version (hybrid logical clock), take the key's first
 *     `from` replicas on the ring, send the entry to all of them at once (the
 *     local replica is a direct call), answer once `ack` stored it.
 *   GET: ask `ack` of the key's first `from` replicas (the local one first,
 *     then peers that are up, in ring order), answer once `ack` answered,
 *     with the newest version among those answers. Any `ack` of the `from`
 *     replicas meet every `W` that stored a write when ack + W > from, so
 *     asking more would only add messages. A replica that fails is replaced
 *     by the next one at once; if the reply is still missing after
 *     `readHedgeMs`, the remaining replicas are asked too (for at most
 *     limits.readHedgeShare of reads: under overload every read is slow, and
 *     hedging them all would only add load). A read whose hedge the budget
 *     refused still asks the rest at half its deadline: a replica that hangs
 *     without failing (a stopped process) must not turn reads into 504s
 *     while enough others are up. When every replica
 *     asked has answered (late ones too), the newest entry is written back
 *     to those that answered an older one or none (read repair, in the
 *     background); anti-entropy covers the replicas not asked.
 *
 * - Nothing is cancelled: replicas that answer after the reply still apply
 *   the write; their failures are logged (rate-limited per peer) and handed
 *   to `onReplicaWriteFailed` (hinted handoff hooks in there).
 * - 504 (RINGKV_NOT_ENOUGH_REPLICAS) at the deadline (`requestTimeoutMs`
 *   after the request started), or as soon as so many replicas failed that
 *   `ack` can no longer be reached. A peer marked down by the transport fails
 *   at once, so a dead node costs no time per request.
 * - Conflicts (replica.ts explains them): a replica that already knew a
 *   version of the key at least as new answers with it; the coordinator's
 *   clock observes it, the write is re-stamped and sent again to all `from`
 *   replicas, and only answers for the new version count. At most
 *   `conflictRetriesMax` times, then 504. Conflicts that arrive after the
 *   reply are only observed: the `ack` answers already were conflict-free.
 * - Every version in an answer (reads, conflicts) advances the clock.
 * - Calls may overlap freely. Deadlines share one coarse timer.
 *
 *   const store = new ClusterStore({ selfUrl, ring, engine, clock, transport, requestTimeoutMs: 1000 });
 *   await store.put(key, value, { ack: 2, from: 3 });
 */
import { limits } from '../../config/limits.js';
import type { Engine, Entry, EntryCursor, ScanRange } from '../../storage/index.js';
import { compareVersions, newer, tombstoneEntry, valueEntry } from '../../storage/index.js';
import { assert } from '../../util/assert.js';
import { errorMessage, isRingkvError, RingkvError } from '../../util/errors.js';
import type { HybridClock } from '../clock.js';
import type { Ring } from '../ring/index.js';
import type { PutOptions, ReplicaOptions, Store } from '../store.js';
import {
  DeadlineTimer,
  type Expirable,
  type PeerStatus,
  type Transport,
  type TransportStats,
} from '../transport/index.js';
import { ClusterScanCursor } from './cluster-scan.js';
import { createReplica, type Replica } from './replica.js';

export interface ClusterStoreOptions {
  /** This node's URL, exactly as in the ring. */
  readonly selfUrl: string;
  readonly ring: Ring;
  /** The local engine; the store owns it and closes it. */
  readonly engine: Engine;
  readonly clock: HybridClock;
  /** How peers are reached; the store owns it and closes it. */
  readonly transport: _StoreTransport;
  /** Replicas that have not answered by then count as failed. */
  readonly requestTimeoutMs: number;
  /** The local replica, shared with the node's InternodeServer; built with default limits when left out. */
  readonly replica?: Replica;
  /** For the default replica's recent-writes window (limits.clockSkewMaxMs when left out). */
  readonly clockSkewMaxMs?: number;
  readonly conflictRetriesMax?: number;
  readonly readRepairsInFlightMax?: number;
  /** After this long without `ack` answers, a read asks every `from` replica (limits.readHedgeMs). */
  readonly readHedgeMs?: number;
  readonly scanPageEntries?: number;
  /** One line per event worth an operator's attention. */
  readonly log?: (line: string) => void;
  /** Every replica write that failed (before or after the reply), e.g. to keep a hint. */
  readonly onReplicaWriteFailed?: (peer: string, entry: Entry, err: unknown) => void;
  /** More facts for status(), e.g. the internode server's counters. */
  readonly statusExtras?: () => Record<string, unknown>;
}

type _StoreTransport = Transport & { stats?(): TransportStats; peerStatus?(peer: string): PeerStatus };

/** How often one peer's failures are logged at most: a dead peer must not flood the log. */
const FAILURE_LOG_INTERVAL_MS = 10_000;
/** Deadlines are checked at this resolution: 504s come at most this late. */
const DEADLINE_RESOLUTION_MS = 10;

interface _Counters {
  gets: number;
  puts: number;
  deletes: number;
  /** Requests answered 504 (deadline, failures, or conflicts to the last retry). */
  notEnoughReplicas: number;
  /** Conflict answers received (before or after the reply). */
  conflicts: number;
  /** Writes re-stamped and sent again after a conflict. */
  conflictRetries: number;
  /** Replica requests that failed (errors, timeouts, peers down). */
  replicaFailures: number;
  /** Background writes of the newest entry to replicas that answered an older one. */
  readRepairs: number;
  readRepairFailures: number;
  /** Repairs not made because `readRepairsInFlightMax` were under way. */
  readRepairsSkipped: number;
  /** Reads that asked the rest of their replicas after `readHedgeMs`. */
  readHedges: number;
  /** Reads still unanswered after `readHedgeMs` that did not, the hedge budget being spent. */
  readHedgesSkipped: number;
  /** Of those, reads that asked the rest at half their deadline. */
  readHedgesLate: number;
}

export class ClusterStore implements Store {
  readonly clusterSize: number;
  readonly #selfUrl: string;
  readonly #ring: Ring;
  readonly #engine: Engine;
  readonly #clock: HybridClock;
  readonly #transport: _StoreTransport;
  readonly #replica: Replica;
  readonly #requestTimeoutMs: number;
  readonly #conflictRetriesMax: number;
  readonly #readRepairsInFlightMax: number;
  readonly #readHedgeMs: number;
  readonly #scanPageEntries: number;
  readonly #log: (line: string) => void;
  readonly #onReplicaWriteFailed: ((peer: string, entry: Entry, err: unknown) => void) | undefined;
  readonly #statusExtras: (() => Record<string, unknown>) | undefined;
  readonly #deadlines = new DeadlineTimer({ resolutionMs: DEADLINE_RESOLUTION_MS });
  readonly #failureLog = new Map<string, { lastMs: number; suppressed: number }>();
  readonly #counters: _Counters = {
    gets: 0,
    puts: 0,
    deletes: 0,
    notEnoughReplicas: 0,
    conflicts: 0,
    conflictRetries: 0,
    replicaFailures: 0,
    readRepairs: 0,
    readRepairFailures: 0,
    readRepairsSkipped: 0,
    readHedges: 0,
    readHedgesSkipped: 0,
    readHedgesLate: 0,
  };
  /** Hedges that may be made now: refilled by limits.readHedgeShare per read, up to limits.readHedgeBurst. */
  #hedgeBudget: number = limits.readHedgeBurst;
  #readRepairsInFlight = 0;
  #closed = false;

  constructor(options: ClusterStoreOptions) {
    assert(options.ring.nodes.includes(options.selfUrl), `${options.selfUrl} is not on the ring`);
    assert(options.requestTimeoutMs >= 1, `requestTimeoutMs must be positive: ${options.requestTimeoutMs}`);
    this.clusterSize = options.ring.nodes.length;
    this.#selfUrl = options.selfUrl;
    this.#ring = options.ring;
    this.#engine = options.engine;
    this.#clock = options.clock;
    this.#transport = options.transport;
    this.#replica =
      options.replica ??
      createReplica(options.engine, options.clock, {
        clockSkewMaxMs: options.clockSkewMaxMs ?? limits.clockSkewMaxMs,
      });
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#conflictRetriesMax = options.conflictRetriesMax ?? limits.writeConflictRetriesMax;
    this.#readRepairsInFlightMax = options.readRepairsInFlightMax ?? limits.readRepairsInFlightMax;
    this.#readHedgeMs = options.readHedgeMs ?? limits.readHedgeMs;
    this.#scanPageEntries = options.scanPageEntries ?? limits.clusterScanPageEntries;
    this.#log = options.log ?? (() => undefined);
    this.#onReplicaWriteFailed = options.onReplicaWriteFailed;
    this.#statusExtras = options.statusExtras;
  }

  /** The local replica: what the node's InternodeServer serves peers with. */
  get replica(): Replica {
    return this.#replica;
  }

  async get(key: Buffer, options: ReplicaOptions): Promise<Entry | undefined> {
    this.#check(options);
    this.#counters.gets++;
    const replicas = this.#ring.replicas(key, options.from);
    return this.#counted(this.#read(key, replicas, options.ack, Date.now() + this.#requestTimeoutMs));
  }

  async put(key: Buffer, value: Buffer, options: PutOptions): Promise<void> {
    this.#check(options);
    this.#counters.puts++;
    // One expiry for every attempt: a retry re-stamps the version, not the TTL.
    const expiresAtMs = options.ttlMs === undefined ? 0 : this.#clock.wallMs() + options.ttlMs;
    return this.#counted(
      this.#write(key, options, (version) => valueEntry(key, version, value, expiresAtMs)),
    );
  }

  async delete(key: Buffer, options: ReplicaOptions): Promise<void> {
    this.#check(options);
    this.#counters.deletes++;
    return this.#counted(this.#write(key, options, (version) => tombstoneEntry(key, version)));
  }

  scanLocal(range: ScanRange): EntryCursor {
    return this.#engine.scan(range);
  }

  scanCluster(range: ScanRange): EntryCursor {
    if (this.#closed) throw new RingkvError('RINGKV_CLOSED', 'Store is closed');
    return new ClusterScanCursor({
      range,
      selfUrl: this.#selfUrl,
      nodes: this.#ring.nodes,
      openLocal: (localRange) => this.#engine.scan(localRange),
      transport: this.#transport,
      pageEntries: this.#scanPageEntries,
      timeoutMs: this.#requestTimeoutMs,
      batchEntriesMax: limits.scanBatchEntriesMax,
    });
  }

  status(): Record<string, unknown> {
    const peers: Record<string, 'up' | 'down' | 'leaving'> = {};
    for (const node of this.#ring.nodes) {
      if (node === this.#selfUrl) continue;
      peers[node] = this.#transport.peerStatus?.(node).state ?? (this.#transport.isUp(node) ? 'up' : 'down');
    }
    return {
      kind: 'cluster',
      self: this.#selfUrl,
      ring: { nodes: this.#ring.nodes },
      peers,
      peersUp: Object.values(peers).filter((state) => state === 'up').length,
      peersDown: Object.values(peers).filter((state) => state !== 'up').length,
      requestTimeoutMs: this.#requestTimeoutMs,
      coordinator: { ...this.#counters, readRepairsInFlight: this.#readRepairsInFlight },
      replica: this.#replica.stats(),
      transport: this.#transport.stats?.(),
      ...this.#statusExtras?.(),
      engine: this.#engine.stats(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Peers' requests in flight reject now; local engine calls finish within engine.close().
    await this.#transport.close();
    await this.#engine.close();
    this.#deadlines.close();
  }

  #check(options: ReplicaOptions): void {
    if (this.#closed) throw new RingkvError('RINGKV_CLOSED', 'Store is closed');
    assert(
      options.ack >= 1 && options.ack <= options.from && options.from <= this.clusterSize,
      `ack/from out of range: ${options.ack}/${options.from}`,
    );
  }

  /** Counts 504s on their way to the route. */
  async #counted<T>(request: Promise<T>): Promise<T> {
    try {
      return await request;
    } catch (err) {
      if (isRingkvError(err, 'RINGKV_NOT_ENOUGH_REPLICAS')) this.#counters.notEnoughReplicas++;
      throw err;
    }
  }

  async #write(key: Buffer, options: ReplicaOptions, make: (version: bigint) => Entry): Promise<void> {
    const replicas = this.#ring.replicas(key, options.from);
    const deadlineMs = Date.now() + this.#requestTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const conflict = await this.#writeRound(make(this.#clock.now()), replicas, options.ack, deadlineMs);
      if (conflict === undefined) return;
      if (!this.#clock.observe(conflict)) {
        throw new RingkvError(
          'RINGKV_NOT_ENOUGH_REPLICAS',
          `A replica knows version ${conflict} of the key, too far ahead of this node's clock to follow`,
        );
      }
      if (attempt >= this.#conflictRetriesMax) {
        throw new RingkvError(
          'RINGKV_NOT_ENOUGH_REPLICAS',
          `Writes of the key kept conflicting: ${attempt + 1} attempts, the last one under version ${conflict}`,
        );
      }
      this.#counters.conflictRetries++;
    }
  }

  /**
   * Sends one version of a write to every replica. Resolves to undefined once
   * `ack` stored it without a conflict, or to the version of the first
   * conflict answered before that; rejects with RINGKV_NOT_ENOUGH_REPLICAS.
   */
  #writeRound(
    entry: Entry,
    replicas: readonly string[],
    ack: number,
    deadlineMs: number,
  ): Promise<bigint | undefined> {
    return new Promise((resolve, reject) => {
      const tally = new _Tally({
        needed: ack,
        total: replicas.length,
        deadlineMs,
        deadlines: this.#deadlines,
        timeoutMs: this.#requestTimeoutMs,
        onDone: (err, conflict) => (err === undefined ? resolve(conflict) : reject(err)),
      });
      for (const peer of replicas) {
        const sent =
          peer === this.#selfUrl
            ? this.#replica.write(entry)
            : this.#transport.write(peer, entry, deadlineMs);
        void sent.then(
          (conflict) => {
            if (conflict === undefined) {
              tally.succeed();
              return;
            }
            this.#counters.conflicts++;
            // Late conflicts are observed only: the reply's `ack` answers were conflict-free.
            if (tally.done) this.#clock.observe(conflict);
            else tally.finish(undefined, conflict);
          },
          (err: unknown) => {
            this.#replicaFailed(peer, err);
            this.#onReplicaWriteFailed?.(peer, entry, err);
            tally.fail(peer, err);
          },
        );
      }
    });
  }

  #read(
    key: Buffer,
    replicas: readonly string[],
    ack: number,
    deadlineMs: number,
  ): Promise<Entry | undefined> {
    const candidates = this.#readOrder(replicas);
    this.#hedgeBudget = Math.min(limits.readHedgeBurst, this.#hedgeBudget + limits.readHedgeShare);
    return new Promise((resolve, reject) => {
      const answers: _ReadAnswer[] = [];
      let newest: Entry | undefined;
      let asked = 0;
      let settled = 0;
      const tally = new _Tally({
        needed: ack,
        total: candidates.length,
        deadlineMs,
        deadlines: this.#deadlines,
        timeoutMs: this.#requestTimeoutMs,
        onDone: (err) => {
          this.#deadlines.remove(hedge);
          this.#deadlines.remove(lateHedge);
          if (err === undefined) resolve(newest);
          else reject(err);
        },
      });
      const settle = (): void => {
        // Nobody more is asked once the tally is done, so this is the last answer.
        if (++settled === asked && tally.done) this.#repair(key, answers);
      };
      const ask = (peer: string): void => {
        asked++;
        const read =
          peer === this.#selfUrl ? this.#replica.read(key) : this.#transport.read(peer, key, deadlineMs);
        void read.then(
          (entry) => {
            if (entry !== undefined) this.#clock.observe(entry.version);
            answers.push({ peer, entry });
            // INVARIANT: `newest` covers the answers counted so far, so the reply is the newest of the first `ack`.
            if (!tally.done) newest = newer(newest, entry);
            tally.succeed();
            settle();
          },
          (err: unknown) => {
            this.#replicaFailed(peer, err);
            // A replica that cannot read its copy (a damaged block) gets the newest one written back.
            if (isRingkvError(err, 'RINGKV_CORRUPTION')) answers.push({ peer, entry: undefined });
            tally.fail(peer, err);
            // A replacement for the failed replica, while the reply still needs one.
            if (!tally.done && asked < candidates.length) ask(candidates[asked]!);
            settle();
          },
        );
      };
      const askRest = (): void => {
        while (!tally.done && asked < candidates.length) ask(candidates[asked]!);
      };
      const startMs = Date.now();
      const lateHedge: Expirable = {
        bucket: -1,
        deadlineMs: startMs + Math.max(this.#readHedgeMs, (deadlineMs - startMs) / 2),
        expire: () => {
          if (tally.done) return;
          this.#counters.readHedgesLate++;
          askRest();
        },
      };
      const hedge: Expirable = {
        bucket: -1,
        deadlineMs: startMs + this.#readHedgeMs,
        expire: () => {
          if (tally.done) return;
          if (this.#hedgeBudget < 1) {
            this.#counters.readHedgesSkipped++;
            this.#deadlines.add(lateHedge);
            return;
          }
          this.#hedgeBudget--;
          this.#counters.readHedges++;
          askRest();
        },
      };
      while (asked < ack) ask(candidates[asked]!);
      if (!tally.done && asked < candidates.length) this.#deadlines.add(hedge);
    });
  }

  /** The order a read asks replicas in: itself (no message), then peers that are up, then the rest. */
  #readOrder(replicas: readonly string[]): string[] {
    const order: string[] = [];
    if (replicas.includes(this.#selfUrl)) order.push(this.#selfUrl);
    for (const peer of replicas) if (peer !== this.#selfUrl && this.#transport.isUp(peer)) order.push(peer);
    for (const peer of replicas) if (peer !== this.#selfUrl && !this.#transport.isUp(peer)) order.push(peer);
    return order;
  }

  /** Writes the newest answer back to the replicas that answered an older version or none. */
  #repair(key: Buffer, answers: readonly _ReadAnswer[]): void {
    let newest: Entry | undefined;
    for (const answer of answers) newest = newer(newest, answer.entry);
    if (newest === undefined || this.#closed) return;
    for (const answer of answers) {
      if (answer.entry !== undefined && compareVersions(answer.entry, newest) >= 0) continue;
      if (this.#readRepairsInFlight >= this.#readRepairsInFlightMax) {
        this.#counters.readRepairsSkipped++;
        continue;
      }
      this.#readRepairsInFlight++;
      this.#counters.readRepairs++;
      const peer = answer.peer;
      const written =
        peer === this.#selfUrl
          ? this.#replica.write(newest)
          : this.#transport.write(peer, newest, Date.now() + this.#requestTimeoutMs);
      // A repair's conflict answer needs nothing: the replica keeps the newest version either way.
      void written.then(
        () => {
          this.#readRepairsInFlight--;
        },
        (err: unknown) => {
          this.#readRepairsInFlight--;
          this.#counters.readRepairFailures++;
          this.#replicaFailed(peer, err, `Read repair of key ${_keyText(key)}`);
        },
      );
    }
  }

  /** Counts a failed replica request and logs it, at most once per interval per peer. */
  #replicaFailed(peer: string, err: unknown, what = 'Replica request'): void {
    this.#counters.replicaFailures++;
    // Requests that end because this node shuts down are expected.
    if (this.#closed || isRingkvError(err, 'RINGKV_CLOSED')) return;
    const nowMs = Date.now();
    const state = this.#failureLog.get(peer);
    if (state !== undefined && nowMs - state.lastMs < FAILURE_LOG_INTERVAL_MS) {
      state.suppressed++;
      return;
    }
    const more =
      state !== undefined && state.suppressed > 0 ? ` (${state.suppressed} more since the last report)` : '';
    this.#failureLog.set(peer, { lastMs: nowMs, suppressed: 0 });
    this.#log(`${what} to ${peer} failed: ${errorMessage(err)}${more}`);
  }
}

interface _ReadAnswer {
  readonly peer: string;
  readonly entry: Entry | undefined;
}

/**
 * Counts one round's answers: done once `needed` succeeded (onDone()), or
 * with RINGKV_NOT_ENOUGH_REPLICAS once too many failed or at the deadline.
 * Answers after that are ignored here; callers handle late ones themselves.
 */
class _Tally implements Expirable {
  bucket = -1;
  done = false;
  readonly deadlineMs: number;
  readonly #needed: number;
  readonly #total: number;
  readonly #timeoutMs: number;
  readonly #deadlines: DeadlineTimer;
  readonly #onDone: (err: RingkvError | undefined, conflict?: bigint) => void;
  #successes = 0;
  #failures = 0;
  #reasons: string[] = [];

  constructor(fields: {
    needed: number;
    total: number;
    deadlineMs: number;
    timeoutMs: number;
    deadlines: DeadlineTimer;
    onDone: (err: RingkvError | undefined, conflict?: bigint) => void;
  }) {
    this.#needed = fields.needed;
    this.#total = fields.total;
    this.deadlineMs = fields.deadlineMs;
    this.#timeoutMs = fields.timeoutMs;
    this.#deadlines = fields.deadlines;
    this.#onDone = fields.onDone;
    this.#deadlines.add(this);
  }

  succeed(): void {
    this.#successes++;
    if (this.#successes === this.#needed) this.finish(undefined);
  }

  fail(peer: string, err: unknown): void {
    this.#failures++;
    if (this.#reasons.length < 3) this.#reasons.push(`${peer}: ${errorMessage(err)}`);
    if (this.#total - this.#failures < this.#needed) {
      this.finish(
        new RingkvError(
          'RINGKV_NOT_ENOUGH_REPLICAS',
          `Only ${this.#successes} of ${this.#needed} required replicas answered; ${this.#failures} failed: ${this.#reasons.join('; ')}`,
        ),
      );
    }
  }

  expire(): void {
    this.finish(
      new RingkvError(
        'RINGKV_NOT_ENOUGH_REPLICAS',
        `Only ${this.#successes} of ${this.#needed} required replicas answered within ${this.#timeoutMs} ms`,
      ),
    );
  }

  finish(err: RingkvError | undefined, conflict?: bigint): void {
    if (this.done) return;
    this.done = true;
    this.#deadlines.remove(this);
    this.#onDone(err, conflict);
  }
}

/** A key for a log line: printable as is, else hex; cut to a sane length. */
function _keyText(key: Buffer): string {
  const text = /^[\x20-\x7e]*$/.test(key.toString('latin1'))
    ? key.toString('latin1')
    : `0x${key.toString('hex')}`;
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}
