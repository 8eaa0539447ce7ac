/**
 * What both sides of an anti-entropy exchange compute from their own engine:
 * the shared key set of a pair of nodes, its bucket digests, and the key
 * summaries of chosen buckets. The requester (exchange.ts) and the responder
 * (responder.ts) call the same functions, so they agree by construction.
 *
 * A key is shared by nodes X and Y when both are among ring.replicas(key, R):
 * those are the keys anti-entropy keeps equal on X and Y.
 *
 * Work per event-loop turn is bounded: every `yieldEntries` entries examined,
 * the scan pauses (an engine's cursor may answer from memory, through
 * microtasks only, which would otherwise starve I/O). A pause also paces the
 * scan (ScanPacer): a scan of a whole store is a few hundred ms of CPU per
 * 100,000 keys, and every node runs several per round, so at full speed the
 * rounds of all nodes would land on the cores at once as a burst of latency.
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { limits as configLimits } from '../../config/limits.js';
import type { Engine, Entry, EntryCursor } from '../../storage/index.js';
import type { Ring } from '../ring/index.js';
import { bitmapHas, type KeySummary, type SummaryPage, summaryBytes } from './format.js';
import { bucketOf, LeafDigests } from './merkle.js';

/** The pair of nodes whose shared keys are compared, and how the key space is cut. */
export interface PairScope {
  readonly ring: Ring;
  readonly self: string;
  readonly peer: string;
  readonly replicationFactor: number;
  readonly leafBits: number;
}

/** True when both nodes of the pair are among the key's first R replicas. */
export function sharedBy(scope: PairScope, key: Uint8Array): boolean {
  // Every node holds every key when R covers the ring: no lookup per entry.
  if (scope.replicationFactor >= scope.ring.nodes.length) return true;
  const replicas = scope.ring.replicas(key, scope.replicationFactor);
  return replicas.includes(scope.self) && replicas.includes(scope.peer);
}

/**
 * True when `self` comes before `peer` in the key's replica list: every
 * write that reached the peer (a `from` past the peer's place) also
 * targeted `self`, since the replica set for a smaller `from` is a prefix
 * of the set for a larger one. Only for keys the pair shares.
 */
export function aheadOfPeer(scope: PairScope, key: Uint8Array): boolean {
  const replicas = scope.ring.replicas(key, scope.replicationFactor);
  return replicas.indexOf(scope.self) < replicas.indexOf(scope.peer);
}

/**
 * Keeps a scan to about `share` of the event loop's time: at each pause it
 * rests (1 / share - 1) times as long as it was busy since the last one.
 * Busy time runs from construction or enter() to leave(); a caller that
 * hands entries out between other awaits (SharedEntries) leaves while it
 * waits, so a peer's slow answer is not taken for scan work. Inside, the
 * time includes whatever else the loop ran meanwhile, so a busy node slows
 * its scans down further, which is the point.
 */
export class ScanPacer {
  readonly #share: number;
  #busyMs = 0;
  #enteredAtMs: number | undefined = performance.now();

  constructor(share: number = configLimits.antiEntropyScanShare) {
    this.#share = share;
  }

  enter(): void {
    this.#enteredAtMs ??= performance.now();
  }

  leave(): void {
    if (this.#enteredAtMs === undefined) return;
    this.#busyMs += performance.now() - this.#enteredAtMs;
    this.#enteredAtMs = undefined;
  }

  async pause(): Promise<void> {
    this.leave();
    const restMs = this.#busyMs * (1 / this.#share - 1);
    this.#busyMs = 0;
    // Unref'd: a node shutting down does not wait for a resting scan.
    if (restMs >= 1) await sleep(restMs, undefined, { ref: false });
    else await nextTurn();
    this.enter();
  }
}

/** The bucket digests of every entry of `engine` the pair shares. */
export async function buildLeaves(
  engine: Engine,
  scope: PairScope,
  yieldEntries: number,
): Promise<LeafDigests> {
  const leaves = new LeafDigests(scope.leafBits);
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  const pacer = new ScanPacer();
  let sinceYield = 0;
  try {
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      for (const entry of batch) {
        if (sharedBy(scope, entry.key)) leaves.add(entry);
      }
      sinceYield += batch.length;
      if (sinceYield >= yieldEntries) {
        sinceYield = 0;
        await pacer.pause();
      }
    }
  } finally {
    await cursor.close();
  }
  return leaves;
}

export interface SummaryLimits {
  readonly entriesMax: number;
  readonly bytesMax: number;
  /** Entries examined before answering with what was found. */
  readonly examineMax: number;
  readonly yieldEntries: number;
}

/**
 * The summaries of shared keys in the chosen buckets, from `start` in key
 * order, until the page is full, `examineMax` entries were looked at, or the
 * store ends. coveredThrough is the last key examined.
 */
export async function summaryPage(
  engine: Engine,
  scope: PairScope,
  request: { readonly buckets: Uint8Array; readonly start: Buffer },
  limits: SummaryLimits,
): Promise<SummaryPage> {
  const summaries: KeySummary[] = [];
  let bytes = 0;
  let examined = 0;
  let coveredThrough = request.start;
  const cursor = engine.scan({ start: request.start });
  const pacer = new ScanPacer();
  try {
    for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
      for (const entry of batch) {
        examined++;
        coveredThrough = entry.key;
        if (bitmapHas(request.buckets, bucketOf(entry.key, scope.leafBits)) && sharedBy(scope, entry.key)) {
          const summary = { key: entry.key, version: entry.version, kind: entry.kind };
          summaries.push(summary);
          bytes += summaryBytes(summary);
        }
        if (
          summaries.length >= limits.entriesMax ||
          bytes >= limits.bytesMax ||
          examined >= limits.examineMax
        ) {
          return { summaries, more: true, coveredThrough };
        }
        if (examined % limits.yieldEntries === 0) await pacer.pause();
      }
    }
  } finally {
    await cursor.close();
  }
  return { summaries, more: false, coveredThrough };
}

/**
 * The local side of the comparison: entries of the chosen buckets the pair
 * shares, in key order, one at a time with look-ahead.
 */
export class SharedEntries {
  readonly #cursor: EntryCursor;
  readonly #scope: PairScope;
  readonly #buckets: Uint8Array;
  readonly #yieldEntries: number;
  readonly #pacer = new ScanPacer();
  #batch: Entry[] = [];
  #index = 0;
  #examined = 0;
  #done = false;

  constructor(engine: Engine, scope: PairScope, buckets: Uint8Array, yieldEntries: number) {
    this.#cursor = engine.scan({ start: Buffer.alloc(0) });
    this.#scope = scope;
    this.#buckets = buckets;
    this.#yieldEntries = yieldEntries;
    // Busy only inside peek(): the caller's waits between entries are not scan work.
    this.#pacer.leave();
  }

  /** The next shared entry without taking it; undefined at the end. */
  async peek(): Promise<Entry | undefined> {
    this.#pacer.enter();
    try {
      return await this.#peek();
    } finally {
      this.#pacer.leave();
    }
  }

  async #peek(): Promise<Entry | undefined> {
    for (;;) {
      while (this.#index < this.#batch.length) {
        const entry = this.#batch[this.#index]!;
        if (
          bitmapHas(this.#buckets, bucketOf(entry.key, this.#scope.leafBits)) &&
          sharedBy(this.#scope, entry.key)
        ) {
          return entry;
        }
        this.#index++;
        if (++this.#examined % this.#yieldEntries === 0) await this.#pacer.pause();
      }
      if (this.#done) return undefined;
      const next = await this.#cursor.next();
      if (next === undefined) {
        this.#done = true;
        return undefined;
      }
      this.#batch = next;
      this.#index = 0;
    }
  }

  /** Takes the entry peek() returned. */
  skip(): void {
    this.#index++;
  }

  close(): Promise<void> {
    return this.#cursor.close();
  }
}
