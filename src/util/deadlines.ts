/**
 * One coarse timer for every request deadline of a transport or of the
 * coordinator, instead of a setTimeout per request (which would cost a timer
 * insert and removal on the hot path of every replicated request).
 *
 * Items are filed in buckets of `resolutionMs` by deadline; a repeating timer
 * expires the buckets whose time has come. An item expires at most one
 * resolution after its deadline, never before it. Adding and removing are
 * O(1). The timer runs while items exist (it stops itself on a tick that
 * finds none, so steady traffic does not restart it per request) and is
 * unref'd: it never keeps the process alive by itself.
 */
import { assert } from './assert.js';

export interface Expirable {
  readonly deadlineMs: number;
  /** Set by the timer: the bucket the item is filed in, or -1. */
  bucket: number;
  /** Called once, from the timer, when the deadline passed before remove(). */
  expire(): void;
}

export class DeadlineTimer {
  readonly #resolutionMs: number;
  readonly #nowMs: () => number;
  /** Called on every tick with the current time (e.g. to spot hung connections). */
  readonly #onTick: ((nowMs: number) => void) | undefined;
  readonly #buckets = new Map<number, Set<Expirable>>();
  #count = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { resolutionMs: number; nowMs?: () => number; onTick?: (nowMs: number) => void }) {
    assert(options.resolutionMs >= 1, `resolutionMs must be at least 1: ${options.resolutionMs}`);
    this.#resolutionMs = options.resolutionMs;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#onTick = options.onTick;
  }

  get size(): number {
    return this.#count;
  }

  add(item: Expirable): void {
    assert(item.bucket === -1, 'item already has a deadline');
    // Bucket k holds deadlines in ((k - 1) * res, k * res]: due once k * res <= now.
    const bucket = Math.ceil(item.deadlineMs / this.#resolutionMs);
    let set = this.#buckets.get(bucket);
    if (set === undefined) {
      set = new Set();
      this.#buckets.set(bucket, set);
    }
    set.add(item);
    item.bucket = bucket;
    this.#count++;
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#resolutionMs);
      this.#timer.unref();
    }
  }

  remove(item: Expirable): void {
    if (item.bucket === -1) return;
    const set = this.#buckets.get(item.bucket);
    if (set?.delete(item)) {
      this.#count--;
      if (set.size === 0) this.#buckets.delete(item.bucket);
    }
    item.bucket = -1;
  }

  /** Stops the timer; items left are dropped without expiring. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#buckets.clear();
    this.#count = 0;
  }

  #tick(): void {
    const now = this.#nowMs();
    const due = Math.floor(now / this.#resolutionMs);
    const expired: Expirable[] = [];
    for (const [bucket, set] of this.#buckets) {
      if (bucket > due) continue;
      this.#buckets.delete(bucket);
      for (const item of set) {
        item.bucket = -1;
        expired.push(item);
      }
      this.#count -= set.size;
    }
    for (const item of expired) item.expire();
    this.#onTick?.(now);
    if (this.#count === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
