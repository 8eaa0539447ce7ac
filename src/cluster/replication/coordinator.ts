/**
 * ClusterStore: the Store of a cluster of two or more nodes. The node that
 * receives a client request coordinates it:
 *
 *   PUT/DELETE: stamp a version (hybrid logical clock), send the entry to
 *     the key's first `from` replicas on the ring at once (the local replica
 *     is a direct call), answer once `ack` stored it; re-stamp and send again
 *     on a conflict (write-round.ts).
 *   GET: ask `ack` of the key's first `from` replicas, more when one fails or
 *     is slow (read-round.ts), answer with the newest version among the
 *     first `ack` answers, and write it back to the replicas that answered an
 *     older one (read-repair.ts).
 *
 * This file is the facade: it checks requests and owns what the parts share
 * (the counters status() reports, the deadline timer, the failure log) and
 * the engine and transport, which it closes.
 *
 * - Nothing is cancelled: replicas that answer after the reply still apply
 *   the write; their failures are logged (rate-limited per peer) and handed
 *   to `onReplicaWriteFailed` (hinted handoff hooks in there).
 * - 504 (RINGKV_NOT_ENOUGH_REPLICAS) at the deadline (`requestTimeoutMs`
 *   after the request started), or as soon as so many replicas failed that
 *   `ack` can no longer be reached (tally.ts).
 * - While the ring changes (nodes joining or leaving), a write also goes to
 *   the key's pending owners (placement.ts); each one that is up raises the
 *   acknowledgements the write needs by one.
 * - Every version in an answer (reads, conflicts) advances the clock.
 * - Calls may overlap freely. Deadlines share one coarse timer.
 * - A traced request (options.receipt) has its receipt filled in by the
 *   round that answers it (../receipt.ts).
 *
 *   const store = new ClusterStore({ selfUrl, ring, engine, clock, transport, requestTimeoutMs: 1000 });
 *   await store.put(key, value, { ack: 2, from: 3 });
 */
import { limits } from '../../config/limits.js';
import type { Engine, Entry, EntryCursor, ScanRange } from '../../storage/index.js';
import { tombstoneEntry, valueEntry } from '../../storage/index.js';
import { assert } from '../../util/assert.js';
import { DeadlineTimer } from '../../util/deadlines.js';
import { errorMessage, isRingkvError, RingkvError } from '../../util/errors.js';
import type { HybridClock } from '../clock.js';
import type { PutOptions, ReplicaOptions, Store } from '../store.js';
import { ClusterScanCursor } from './cluster-scan.js';
import {
  type CoordinatorContext,
  type CoordinatorCounters,
  type StoreTransport,
  writeReplica,
} from './coordinator-context.js';
import type { ReplicaPlacement } from './placement.js';
import { ReadRepair } from './read-repair.js';
import { ReadRounds } from './read-round.js';
import { createReplica, type Replica } from './replica.js';
import { type ReplicaWriteFailed, WriteRounds } from './write-round.js';

export interface ClusterStoreOptions {
  /** This node's URL, exactly as in the ring. */
  readonly selfUrl: string;
  /** A Ring, or the membership's Topology, whose rings change as nodes join and leave (placement.ts). */
  readonly ring: ReplicaPlacement;
  /** The local engine; the store owns it and closes it. */
  readonly engine: Engine;
  readonly clock: HybridClock;
  /** How peers are reached; the store owns it and closes it. */
  readonly transport: StoreTransport;
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
  /** Every replica write that failed (before or after the reply), with the request's `from`, e.g. to keep a hint. */
  readonly onReplicaWriteFailed?: ReplicaWriteFailed;
  /** More facts for status(), e.g. the internode server's counters. */
  readonly statusExtras?: () => Record<string, unknown>;
  /**
   * The nodes whose links status() shows (this node left out): by default the current ring's; a
   * membership's live members, so that a joining one shows too (it gets writes before it is on the ring).
   */
  readonly statusPeers?: () => readonly string[];
}

/** How often one peer's failures are logged at most: a dead peer must not flood the log. */
const FAILURE_LOG_INTERVAL_MS = 10_000;
/** Deadlines are checked at this resolution: 504s come at most this late. */
const DEADLINE_RESOLUTION_MS = 10;

export class ClusterStore implements Store {
  readonly #selfUrl: string;
  readonly #ring: ReplicaPlacement;
  readonly #context: CoordinatorContext;
  readonly #onReplicaWriteFailed: ReplicaWriteFailed | undefined;
  readonly #engine: Engine;
  readonly #clock: HybridClock;
  readonly #transport: StoreTransport;
  readonly #replica: Replica;
  readonly #requestTimeoutMs: number;
  readonly #scanPageEntries: number;
  readonly #log: (line: string) => void;
  readonly #statusExtras: (() => Record<string, unknown>) | undefined;
  readonly #statusPeers: (() => readonly string[]) | undefined;
  readonly #deadlines = new DeadlineTimer({ resolutionMs: DEADLINE_RESOLUTION_MS });
  readonly #failureLog = new Map<string, { lastMs: number; suppressed: number }>();
  readonly #counters: CoordinatorCounters = {
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
  readonly #writes: WriteRounds;
  readonly #reads: ReadRounds;
  readonly #readRepair: ReadRepair;
  #closed = false;

  constructor(options: ClusterStoreOptions) {
    // A node joining the cluster coordinates requests before it is on the current ring.
    assert(
      options.ring.pendingReplicas !== undefined || options.ring.nodes.includes(options.selfUrl),
      `${options.selfUrl} is not on the ring`,
    );
    assert(options.requestTimeoutMs >= 1, `requestTimeoutMs must be positive: ${options.requestTimeoutMs}`);
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
    this.#scanPageEntries = options.scanPageEntries ?? limits.clusterScanPageEntries;
    this.#log = options.log ?? (() => undefined);
    this.#statusExtras = options.statusExtras;
    this.#statusPeers = options.statusPeers;
    const context: CoordinatorContext = {
      selfUrl: this.#selfUrl,
      replica: this.#replica,
      transport: this.#transport,
      clock: this.#clock,
      deadlines: this.#deadlines,
      requestTimeoutMs: this.#requestTimeoutMs,
      counters: this.#counters,
      replicaFailed: (peer, err, what) => this.#replicaFailed(peer, err, what),
    };
    this.#context = context;
    this.#onReplicaWriteFailed = options.onReplicaWriteFailed;
    this.#writes = new WriteRounds(context, {
      conflictRetriesMax: options.conflictRetriesMax ?? limits.writeConflictRetriesMax,
      onReplicaWriteFailed: options.onReplicaWriteFailed,
    });
    this.#readRepair = new ReadRepair(context, {
      inFlightMax: options.readRepairsInFlightMax ?? limits.readRepairsInFlightMax,
      isClosed: () => this.#closed,
    });
    this.#reads = new ReadRounds(context, {
      hedgeMs: options.readHedgeMs ?? limits.readHedgeMs,
      repair: (key, answers) => this.#readRepair.repair(key, answers),
    });
  }

  /** Nodes on the current ring: it changes as nodes join and leave. */
  get clusterSize(): number {
    return this.#ring.nodes.length;
  }

  /** The local replica: what the node's InternodeServer serves peers with. */
  get replica(): Replica {
    return this.#replica;
  }

  async get(key: Buffer, options: ReplicaOptions): Promise<Entry | undefined> {
    this.#check(options);
    this.#counters.gets++;
    const replicas = this.#ring.replicas(key, options.from);
    const deadlineMs = Date.now() + this.#requestTimeoutMs;
    return this.#counted(this.#reads.read(key, replicas, options.ack, deadlineMs, options.receipt));
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
      batchBytesMax: limits.scanBatchBytesMax,
    });
  }

  status(): Record<string, unknown> {
    const peers: Record<string, 'up' | 'down' | 'leaving'> = {};
    for (const node of this.#statusPeers?.() ?? this.#ring.nodes) {
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
      coordinator: { ...this.#counters, readRepairsInFlight: this.#readRepair.inFlight },
      replica: this.#replica.stats(),
      transport: this.#transport.stats?.(),
      ...this.#statusExtras?.(),
      engine: this.#engine.stats(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      // Peers' requests in flight reject now; local engine calls finish within engine.close().
      await this.#transport.close();
      // Rejects if the engine could not close cleanly (a log's close record or fsync failed).
      await this.#engine.close();
    } finally {
      this.#deadlines.close();
    }
  }

  #check(options: ReplicaOptions): void {
    if (this.#closed) throw new RingkvError('RINGKV_CLOSED', 'Store is closed');
    assert(
      options.ack >= 1 && options.ack <= options.from,
      `ack/from out of range: ${options.ack}/${options.from}`,
    );
    // The route checked `from` against the cluster's size, which a move may have shrunk since.
    if (options.from > this.clusterSize) {
      throw new RingkvError(
        'RINGKV_BAD_REQUEST',
        `Bad from: larger than the cluster (${this.clusterSize} nodes)`,
      );
    }
  }

  #write(key: Buffer, options: ReplicaOptions, make: (version: bigint) => Entry): Promise<void> {
    const replicas = this.#ring.replicas(key, options.from);
    const deadlineMs = Date.now() + this.#requestTimeoutMs;
    const pending = this.#ring.pendingReplicas?.(key, options.from);
    if (pending === undefined || pending.length === 0) {
      return this.#writes.write(make, replicas, options.ack, deadlineMs, options);
    }
    // Pending owners (placement.ts): those up are counted and raise `ack` by one each; the others get it aside.
    const counted = pending.filter((peer) => peer === this.#selfUrl || this.#transport.isUp(peer));
    const aside = pending.filter((peer) => !counted.includes(peer));
    const stamp =
      aside.length === 0
        ? make
        : (version: bigint): Entry => {
            const entry = make(version);
            for (const peer of aside) this.#writeAside(peer, entry, deadlineMs, options.from);
            return entry;
          };
    const targets = [...replicas, ...counted];
    return this.#writes.write(
      stamp,
      targets,
      options.ack + counted.length,
      deadlineMs,
      options,
      counted.length,
    );
  }

  /** A write no answer waits for: its failure is counted and hinted like a late replica's. */
  #writeAside(peer: string, entry: Entry, deadlineMs: number, from: number): void {
    writeReplica(this.#context, peer, entry, deadlineMs).catch((err: unknown) => {
      this.#replicaFailed(peer, err);
      this.#onReplicaWriteFailed?.(peer, entry, err, from);
    });
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
