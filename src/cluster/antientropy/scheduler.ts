/**
 * AntiEntropy: the periodic comparison of this node's data with each peer's
 * (exchange.ts does one peer), so that replicas converge even when hints
 * were dropped or a node lost its disk.
 *
 * Which keys: those whose first R replicas on the ring (ring.replicas(key,
 * R)) include both this node and the peer. R, the replication factor, is
 * the cluster size capped at limits.antiEntropyReplicationFactorMax (3)
 * unless given; every node must use the same R. A key both hold converges
 * to the newer version, tombstones included (a delete is a version). A key
 * one side lacks is copied to it only when a write of the key targeted it:
 * when it comes before the holder in the key's replica list (replica sets
 * are prefixes of that list), or when the key is older than the lacking
 * node's birth version (its data directory was empty then). So anti-entropy
 * never stores a key on more nodes than a write of it was sent to (API.md);
 * docs/design/anti-entropy.md explains the rule and what it leaves to hints
 * and read repair.
 *
 * Schedule: a round about every intervalMs (jittered by +-25%; 0: never), one round at a time; a
 * round visits the peers one after another, skipping those the transport
 * reports down. Each exchange is bounded (exchange.ts), and stop() ends the
 * round under way at its next step.
 *
 * Example:
 *   const ae = new AntiEntropy({ selfUrl, ring, engine, transport, intervalMs: 60_000, clock });
 *   ae.start();
 *   await ae.stop(); // on shutdown, before the engine closes
 */
import { limits } from '../../config/limits.js';
import { assert } from '../../util/assert.js';
import { errorMessage } from '../../util/errors.js';
import type { HybridClock } from '../clock.js';
import type { Ring } from '../ring/index.js';
import { type AntiEntropyTransport, type ExchangeResult, exchange } from './exchange.js';
import type { IndexedEngine, TreeStats } from './indexed-engine.js';

export interface AntiEntropyOptions {
  readonly selfUrl: string;
  /**
   * The ring compared over: fixed, or read at the start of each round (the
   * membership's current ring, which changes as nodes join and leave; a
   * round is skipped while this node is not on it).
   */
  readonly ring: Ring | (() => Ring | undefined);
  /** The node's engine with its hash index and digests (indexed-engine.ts). */
  readonly engine: IndexedEngine;
  readonly transport: AntiEntropyTransport;
  /** Between the end of one round and the start of the next; 0: start() does nothing. */
  readonly intervalMs?: number;
  /** Default: min(cluster size, limits.antiEntropyReplicationFactorMax). */
  readonly replicationFactor?: number;
  readonly leafBits?: number;
  readonly summaryEntriesMax?: number;
  readonly repairsPerRoundMax?: number;
  readonly repairsInFlightMax?: number;
  readonly requestTimeoutMs?: number;
  readonly repairTimeoutMs?: number;
  readonly yieldEntries?: number;
  /**
   * The clock version at which this node started on an empty data directory
   * (birth.ts); keys older than that which only a peer holds are pulled
   * wherever they sit in the replica list. Default 0n: none.
   */
  readonly birthVersion?: bigint;
  /** Observes the version of every entry pulled, so the node's clock stays ahead of what it stores. */
  readonly clock?: Pick<HybridClock, 'observe'>;
  /** Told of every entry pulled and stored (the replica's recent-writes memory learns it: replica.ts). */
  readonly onStored?: (key: Buffer, version: bigint) => void;
  readonly log?: (line: string) => void;
}

export interface AntiEntropyStats {
  readonly replicationFactor: number;
  /** 0 = off. */
  readonly intervalMs: number;
  /** As a decimal string (JSON has no 64-bit integers); "0": none. */
  readonly birthVersion: string;
  readonly rounds: number;
  readonly exchanges: number;
  /** Exchanges whose roots were equal: only digests travelled. */
  readonly equalExchanges: number;
  /** Exchanges skipped because this node's or the peer's tree was not ready (being built, or rings differ). */
  readonly notReadyExchanges: number;
  readonly differingBuckets: number;
  /** Local keys in the compared trees, over every exchange (counted from digests: none is read). */
  readonly keysDigested: number;
  /** Local index and stored entries read by this node's exchanges. */
  readonly entriesRead: number;
  /** Peers' key summaries compared one by one with the local keys (in differing buckets only). */
  readonly summariesReceived: number;
  readonly pulled: number;
  readonly pushed: number;
  /** Keys on one side only that were not copied: no write of them targeted the other side. */
  readonly leftAlone: number;
  readonly skippedDown: number;
  readonly failedExchanges: number;
  /** Request and answer bodies, and keys and values copied (ExchangeResult). */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly lastError: string | undefined;
  /** The hash tree: state (ready, building, digesting, waiting), entries, rebuilds, entries read on both sides. */
  readonly tree: TreeStats;
}

export function defaultReplicationFactor(clusterSize: number): number {
  return Math.min(clusterSize, limits.antiEntropyReplicationFactorMax);
}

export class AntiEntropy {
  readonly #selfUrl: string;
  readonly #ring: () => Ring | undefined;
  readonly #engine: IndexedEngine;
  readonly #transport: AntiEntropyTransport;
  readonly #intervalMs: number;
  /** Fixed by the options, or undefined: the default for the ring of each round. */
  readonly #replicationFactor: number | undefined;
  readonly #leafBits: number;
  readonly #settings: {
    summaryEntriesMax: number;
    repairsPerRoundMax: number;
    repairsInFlightMax: number;
    requestTimeoutMs: number;
    repairTimeoutMs: number;
    yieldEntries: number;
    birthVersion: bigint;
    observe: (version: bigint, key: Buffer) => void;
  };
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<ExchangeResult[]> | undefined;
  #running = false;
  #stopping = false;
  #rounds = 0;
  #exchanges = 0;
  #equalExchanges = 0;
  #notReadyExchanges = 0;
  #differingBuckets = 0;
  #keysDigested = 0;
  #entriesRead = 0;
  #summariesReceived = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #pulled = 0;
  #pushed = 0;
  #leftAlone = 0;
  #skippedDown = 0;
  #failedExchanges = 0;
  #lastError: string | undefined;

  constructor(options: AntiEntropyOptions) {
    this.#selfUrl = options.selfUrl;
    const ring = options.ring;
    this.#ring = typeof ring === 'function' ? ring : () => ring;
    this.#engine = options.engine;
    this.#transport = options.transport;
    this.#intervalMs = options.intervalMs ?? limits.antiEntropyIntervalMs;
    this.#replicationFactor = options.replicationFactor;
    this.#leafBits = options.leafBits ?? limits.antiEntropyLeafBits;
    this.#settings = {
      summaryEntriesMax: options.summaryEntriesMax ?? limits.antiEntropySummaryEntriesMax,
      repairsPerRoundMax: options.repairsPerRoundMax ?? limits.antiEntropyRepairsPerRoundMax,
      repairsInFlightMax: options.repairsInFlightMax ?? limits.antiEntropyRepairsInFlightMax,
      requestTimeoutMs: options.requestTimeoutMs ?? limits.antiEntropyRequestTimeoutMs,
      repairTimeoutMs: options.repairTimeoutMs ?? limits.requestTimeoutMs,
      yieldEntries: options.yieldEntries ?? limits.antiEntropyYieldEntries,
      birthVersion: options.birthVersion ?? 0n,
      observe: _observer(options.clock, options.onStored),
    };
    this.#log = options.log ?? (() => {});
    if (typeof ring !== 'function') {
      assert(ring.nodes.includes(this.#selfUrl), `${this.#selfUrl} is not in the ring`);
      const factor = this.#factor(ring.nodes.length);
      assert(
        Number.isInteger(factor) && factor >= 1 && factor <= ring.nodes.length,
        `replication factor out of range: ${factor}`,
      );
    }
    assert(this.#intervalMs >= 0, `anti-entropy interval must not be negative: ${this.#intervalMs}`);
  }

  /** Starts the schedule (nothing when intervalMs is 0). */
  start(): void {
    if (this.#running || this.#intervalMs === 0) return;
    this.#running = true;
    this.#stopping = false;
    this.#schedule();
  }

  /** Stops the schedule and ends the round under way at its next step. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#round?.catch(() => undefined);
  }

  /**
   * One round now: an exchange with `peer`, or with every peer in ring
   * order. Waits for a round under way first. Resolves to each exchange's
   * result (a peer reported down gets none).
   */
  async runOnce(peer?: string): Promise<ExchangeResult[]> {
    assert(peer !== this.#selfUrl, `not a peer: ${peer}`);
    while (this.#round !== undefined) await this.#round.catch(() => undefined);
    const ring = this.#ring();
    // Off the current ring (a node joining, or one removed): nothing of it to compare yet.
    if (ring === undefined || !ring.nodes.includes(this.#selfUrl)) return [];
    if (peer !== undefined && !ring.nodes.includes(peer)) return [];
    const round = this.#runRound(
      ring,
      peer === undefined ? ring.nodes.filter((n) => n !== this.#selfUrl) : [peer],
    );
    this.#round = round;
    try {
      return await round;
    } finally {
      this.#round = undefined;
    }
  }

  stats(): AntiEntropyStats {
    return {
      replicationFactor: this.#factor(this.#ring()?.nodes.length ?? 0),
      intervalMs: this.#intervalMs,
      birthVersion: String(this.#settings.birthVersion),
      rounds: this.#rounds,
      exchanges: this.#exchanges,
      equalExchanges: this.#equalExchanges,
      notReadyExchanges: this.#notReadyExchanges,
      differingBuckets: this.#differingBuckets,
      keysDigested: this.#keysDigested,
      entriesRead: this.#entriesRead,
      summariesReceived: this.#summariesReceived,
      pulled: this.#pulled,
      pushed: this.#pushed,
      leftAlone: this.#leftAlone,
      skippedDown: this.#skippedDown,
      failedExchanges: this.#failedExchanges,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      lastError: this.#lastError,
      tree: this.#engine.treeStats(),
    };
  }

  #schedule(): void {
    if (!this.#running) return;
    // Jittered by +-25%: nodes started together would otherwise scan their stores in step.
    const delayMs = Math.round(this.#intervalMs * (0.75 + 0.5 * Math.random()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.runOnce().then(
        () => this.#schedule(),
        (err: unknown) => {
          this.#log(`Anti-entropy round failed: ${errorMessage(err)}`);
          this.#schedule();
        },
      );
    }, delayMs);
    this.#timer.unref();
  }

  /** The replication factor for rounds over a ring of `size` nodes. */
  #factor(size: number): number {
    return this.#replicationFactor ?? defaultReplicationFactor(size);
  }

  async #runRound(ring: Ring, peers: readonly string[]): Promise<ExchangeResult[]> {
    this.#rounds++;
    const results: ExchangeResult[] = [];
    for (const peer of peers) {
      if (this.#stopping) break;
      if (!this.#transport.isUp(peer)) {
        this.#skippedDown++;
        continue;
      }
      const result = await exchange(
        {
          ring,
          self: this.#selfUrl,
          peer,
          replicationFactor: this.#factor(ring.nodes.length),
          leafBits: this.#leafBits,
        },
        {
          engine: this.#engine,
          transport: this.#transport,
          ...this.#settings,
          stopping: () => this.#stopping,
        },
      );
      this.#record(result);
      results.push(result);
    }
    return results;
  }

  #record(result: ExchangeResult): void {
    this.#exchanges++;
    if (result.equal) this.#equalExchanges++;
    if (result.notReady) this.#notReadyExchanges++;
    this.#differingBuckets += result.differingBuckets;
    this.#keysDigested += result.localEntries;
    this.#entriesRead += result.entriesRead;
    this.#summariesReceived += result.summariesReceived;
    this.#bytesSent += result.bytesSent;
    this.#bytesReceived += result.bytesReceived;
    this.#pulled += result.pulled;
    this.#pushed += result.pushed;
    this.#leftAlone += result.leftAlone;
    if (result.pulled + result.pushed > 0) {
      this.#log(
        `Anti-entropy with ${result.peer} repaired ${result.pulled + result.pushed} keys (${result.pulled} pulled, ${result.pushed} pushed; ${result.differingBuckets} differing buckets)`,
      );
    }
    if (result.error !== undefined) {
      this.#failedExchanges++;
      this.#lastError = `${result.peer}: ${result.error}`;
      this.#log(`Anti-entropy with ${result.peer} failed: ${result.error}`);
    }
  }
}

function _observer(
  clock: Pick<HybridClock, 'observe'> | undefined,
  onStored: ((key: Buffer, version: bigint) => void) | undefined,
): (version: bigint, key: Buffer) => void {
  return (version, key) => {
    clock?.observe(version);
    onStored?.(key, version);
  };
}
