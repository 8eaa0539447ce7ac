/**
 * AntiEntropy: the periodic comparison of this node's data with each peer's
 * (exchange.ts does one peer), so that replicas converge even when hints
 * were dropped or a node lost its disk.
 *
 * Which keys: those whose first R replicas on the ring (ring.replicas(key,
 * R)) include both this node and the peer. R, the replication factor, is
 * the cluster size capped at limits.antiEntropyReplicationFactorMax (3)
 * unless given; every node must use the same R. After a round with every
 * peer, each node in ring.replicas(key, R) holds the newest version any of
 * them held, tombstones included (a delete is a version). A key written with
 * `from` below R is therefore copied to R nodes at the next round: see
 * docs/design/anti-entropy.md for why, and replicationFactor to change it.
 *
 * Schedule: a round every intervalMs (0: never), one round at a time; a
 * round visits the peers one after another, skipping those the transport
 * reports down. Each exchange is bounded (exchange.ts), and stop() ends the
 * round under way at its next step.
 *
 * Example:
 *   const ae = new AntiEntropy({ selfUrl, ring, engine, transport, intervalMs: 60_000 });
 *   ae.start();
 *   await ae.stop(); // on shutdown, before the engine closes
 */
import { limits } from '../../config/limits.js';
import type { Engine } from '../../storage/index.js';
import { assert } from '../../util/assert.js';
import { errorMessage } from '../../util/errors.js';
import type { Ring } from '../ring/index.js';
import { type AntiEntropyTransport, type ExchangeResult, exchange } from './exchange.js';

export interface AntiEntropyOptions {
  readonly selfUrl: string;
  readonly ring: Ring;
  readonly engine: Engine;
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
  readonly log?: (line: string) => void;
}

export interface AntiEntropyStats {
  readonly replicationFactor: number;
  readonly rounds: number;
  readonly exchanges: number;
  /** Exchanges whose roots were equal: only digests travelled. */
  readonly equalExchanges: number;
  readonly differingBuckets: number;
  readonly summariesReceived: number;
  readonly pulled: number;
  readonly pushed: number;
  readonly skippedDown: number;
  readonly failedExchanges: number;
  readonly lastError: string | undefined;
}

export function defaultReplicationFactor(clusterSize: number): number {
  return Math.min(clusterSize, limits.antiEntropyReplicationFactorMax);
}

export class AntiEntropy {
  readonly #selfUrl: string;
  readonly #ring: Ring;
  readonly #engine: Engine;
  readonly #transport: AntiEntropyTransport;
  readonly #intervalMs: number;
  readonly #replicationFactor: number;
  readonly #leafBits: number;
  readonly #settings: {
    summaryEntriesMax: number;
    repairsPerRoundMax: number;
    repairsInFlightMax: number;
    requestTimeoutMs: number;
    repairTimeoutMs: number;
    yieldEntries: number;
  };
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<ExchangeResult[]> | undefined;
  #running = false;
  #stopping = false;
  #rounds = 0;
  #exchanges = 0;
  #equalExchanges = 0;
  #differingBuckets = 0;
  #summariesReceived = 0;
  #pulled = 0;
  #pushed = 0;
  #skippedDown = 0;
  #failedExchanges = 0;
  #lastError: string | undefined;

  constructor(options: AntiEntropyOptions) {
    this.#selfUrl = options.selfUrl;
    this.#ring = options.ring;
    this.#engine = options.engine;
    this.#transport = options.transport;
    this.#intervalMs = options.intervalMs ?? limits.antiEntropyIntervalMs;
    this.#replicationFactor =
      options.replicationFactor ?? defaultReplicationFactor(options.ring.nodes.length);
    this.#leafBits = options.leafBits ?? limits.antiEntropyLeafBits;
    this.#settings = {
      summaryEntriesMax: options.summaryEntriesMax ?? limits.antiEntropySummaryEntriesMax,
      repairsPerRoundMax: options.repairsPerRoundMax ?? limits.antiEntropyRepairsPerRoundMax,
      repairsInFlightMax: options.repairsInFlightMax ?? limits.antiEntropyRepairsInFlightMax,
      requestTimeoutMs: options.requestTimeoutMs ?? limits.antiEntropyRequestTimeoutMs,
      repairTimeoutMs: options.repairTimeoutMs ?? limits.requestTimeoutMs,
      yieldEntries: options.yieldEntries ?? limits.antiEntropyYieldEntries,
    };
    this.#log = options.log ?? (() => {});
    assert(this.#ring.nodes.includes(this.#selfUrl), `${this.#selfUrl} is not in the ring`);
    assert(
      Number.isInteger(this.#replicationFactor) &&
        this.#replicationFactor >= 1 &&
        this.#replicationFactor <= this.#ring.nodes.length,
      `replication factor out of range: ${this.#replicationFactor}`,
    );
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
    assert(
      peer === undefined || (peer !== this.#selfUrl && this.#ring.nodes.includes(peer)),
      `not a peer: ${peer}`,
    );
    while (this.#round !== undefined) await this.#round.catch(() => undefined);
    const round = this.#runRound(
      peer === undefined ? this.#ring.nodes.filter((n) => n !== this.#selfUrl) : [peer],
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
      replicationFactor: this.#replicationFactor,
      rounds: this.#rounds,
      exchanges: this.#exchanges,
      equalExchanges: this.#equalExchanges,
      differingBuckets: this.#differingBuckets,
      summariesReceived: this.#summariesReceived,
      pulled: this.#pulled,
      pushed: this.#pushed,
      skippedDown: this.#skippedDown,
      failedExchanges: this.#failedExchanges,
      lastError: this.#lastError,
    };
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.runOnce().then(
        () => this.#schedule(),
        (err: unknown) => {
          this.#log(`Anti-entropy round failed: ${errorMessage(err)}`);
          this.#schedule();
        },
      );
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async #runRound(peers: readonly string[]): Promise<ExchangeResult[]> {
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
          ring: this.#ring,
          self: this.#selfUrl,
          peer,
          replicationFactor: this.#replicationFactor,
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
    this.#differingBuckets += result.differingBuckets;
    this.#summariesReceived += result.summariesReceived;
    this.#pulled += result.pulled;
    this.#pushed += result.pushed;
    if (result.error !== undefined) {
      this.#failedExchanges++;
      this.#lastError = `${result.peer}: ${result.error}`;
      this.#log(`Anti-entropy with ${result.peer} failed: ${result.error}`);
    }
  }
}
