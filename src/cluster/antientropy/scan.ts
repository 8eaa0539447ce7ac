/**
 * What both sides of an anti-entropy exchange read from their own hash index
 * (indexed-engine.ts): the key summaries of chosen hash ranges (the arcs
 * whose digests differ, arc-digests.ts), in index order, hash then key. The
 * requester (exchange.ts) and the responder (responder.ts) call the same
 * functions over the same ranges, so they agree by construction.
 *
 * A key is shared by nodes X and Y when both are among ring.replicas(key, R):
 * those are the keys anti-entropy keeps equal on X and Y. Whole arcs are
 * shared or not, so the ranges of shared arcs hold exactly shared keys.
 *
 * Work per event-loop turn is bounded: every `yieldEntries` entries read,
 * the reader pauses (an engine's cursor may answer from memory, through
 * microtasks only, which would otherwise starve I/O), paced by ScanPacer.
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { limits as configLimits } from '../../config/limits.js';
import type { Engine, Entry, EntryCursor } from '../../storage/index.js';
import { compareBytes } from '../../util/bytes.js';
import type { Ring } from '../ring/index.js';
import type { KeySummary, SummaryPage } from './format.js';
import { summaryBytes } from './format.js';

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

/** The index range [start, end) of hash range i of a flattened list (end undefined: to the last key). */
function _bounds(ranges: readonly number[], i: number): { start: Buffer; end: Buffer | undefined } {
  const start = Buffer.allocUnsafe(4);
  start.writeUInt32BE(ranges[2 * i]!, 0);
  const endHash = ranges[2 * i + 1]!;
  if (endHash >= 2 ** 32) return { start, end: undefined };
  const end = Buffer.allocUnsafe(4);
  end.writeUInt32BE(endHash, 0);
  return { start, end };
}

/**
 * Index entries of the hash ranges (flattened, sorted), from index position
 * `from` on (inclusive; empty: the beginning), in index order, one at a time
 * with look-ahead. Counts what it read.
 */
export class RangeEntries {
  readonly #index: Pick<Engine, 'scan'>;
  readonly #ranges: readonly number[];
  readonly #from: Buffer;
  readonly #yieldEntries: number;
  readonly #pacer = new ScanPacer();
  #range = -1;
  #cursor: EntryCursor | undefined;
  #batch: Entry[] = [];
  #at = 0;
  #done = false;
  /** Index entries read. */
  read = 0;

  constructor(index: Pick<Engine, 'scan'>, ranges: readonly number[], from: Buffer, yieldEntries: number) {
    this.#index = index;
    this.#ranges = ranges;
    this.#from = from;
    this.#yieldEntries = yieldEntries;
    // Busy only inside peek(): the caller's waits between entries are not scan work.
    this.#pacer.leave();
  }

  /** The next entry without taking it; undefined at the end. */
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
      if (this.#at < this.#batch.length) return this.#batch[this.#at]!;
      if (this.#done) return undefined;
      const next = this.#cursor === undefined ? undefined : await this.#cursor.next();
      if (next !== undefined) {
        this.#batch = next;
        this.#at = 0;
        this.read += next.length;
        if (this.read % this.#yieldEntries < next.length) await this.#pacer.pause();
        continue;
      }
      await this.#cursor?.close();
      this.#cursor = undefined;
      if (!this.#openNext()) {
        this.#done = true;
        return undefined;
      }
    }
  }

  /** Opens the next range that ends after `from`; false when none is left. */
  #openNext(): boolean {
    for (this.#range++; 2 * this.#range < this.#ranges.length; this.#range++) {
      const { start, end } = _bounds(this.#ranges, this.#range);
      if (end !== undefined && this.#from.length > 0 && compareBytes(end, this.#from) <= 0) continue;
      const begin = compareBytes(start, this.#from) >= 0 ? start : this.#from;
      this.#cursor = this.#index.scan({ start: begin, end });
      return true;
    }
    return false;
  }

  /** Takes the entry peek() returned. */
  skip(): void {
    this.#at++;
  }

  async close(): Promise<void> {
    this.#done = true;
    await this.#cursor?.close();
    this.#cursor = undefined;
  }
}

export interface SummaryLimits {
  readonly entriesMax: number;
  readonly bytesMax: number;
  readonly yieldEntries: number;
}

/**
 * The value of an index entry: u8 generation, then the value hash (valueHash,
 * merkle.ts) as u32 big-endian. The index engine, like any engine, keeps the
 * larger value bytes of two entries at one version and kind; the generation
 * goes first so that the hash of the store's value can replace a larger one
 * (indexed-engine.ts counts it up for that), which the hash alone could not.
 */
export function indexValue(generation: number, valueHash: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out[0] = generation;
  out.writeUInt32BE(valueHash >>> 0, 1);
  return out;
}

/** The value hash an index entry holds. */
export function indexedValueHash(indexEntry: Entry): number {
  return indexEntry.value.readUInt32BE(1);
}

/** A summary of an index entry: the key without its hash. */
export function summaryOf(indexEntry: Entry): KeySummary {
  return {
    key: indexEntry.key.subarray(4),
    version: indexEntry.version,
    kind: indexEntry.kind,
    valueHash: indexedValueHash(indexEntry),
  };
}

/**
 * The summaries of the index entries in the hash ranges from index position
 * `start`, until the page is full or the ranges end. coveredThrough is the
 * index position of the last entry listed. Resolves with the entries read.
 */
export async function summaryPage(
  index: Pick<Engine, 'scan'>,
  ranges: readonly number[],
  start: Buffer,
  limits: SummaryLimits,
): Promise<{ page: SummaryPage; read: number }> {
  const summaries: KeySummary[] = [];
  let bytes = 0;
  let coveredThrough = start;
  const entries = new RangeEntries(index, ranges, start, limits.yieldEntries);
  try {
    for (let entry = await entries.peek(); entry !== undefined; entry = await entries.peek()) {
      entries.skip();
      const summary = summaryOf(entry);
      summaries.push(summary);
      bytes += summaryBytes(summary);
      coveredThrough = entry.key;
      if (summaries.length >= limits.entriesMax || bytes >= limits.bytesMax) {
        // More only if anything is left: a page that ends with the ranges says so.
        const more = (await entries.peek()) !== undefined;
        return { page: { summaries, more, coveredThrough }, read: entries.read };
      }
    }
  } finally {
    await entries.close();
  }
  return { page: { summaries, more: false, coveredThrough }, read: entries.read };
}
