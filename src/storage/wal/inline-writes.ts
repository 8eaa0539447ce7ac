/**
 * When the log writes a batch on the event loop instead of in the thread pool.
 *
 * A thread-pool write costs a trip: a pool thread is woken, and when the write
 * is done it wakes the event loop through an eventfd (a write() and a read()
 * more). On a virtual machine each wake-up is a few tens of µs of CPU, about
 * as much as the synced write itself. Written on the event loop, a batch is
 * one system call, but the loop waits for the device: fine while a synced
 * write takes a fraction of a millisecond (SSDs, most virtual disks), not
 * when it takes several (spinning disks, a saturated device), since every
 * request on the node would wait with it.
 *
 * So a batch is written inline when it is small and the device has been
 * fast: the policy keeps a moving average of inline write times, and once it
 * passes `slowMs` (one very slow write is enough), writes go through the pool
 * for `backoffMs`, after which inline writes are tried again.
 */
import { limits } from '../../config/limits.js';

/** Weight of the newest write in the moving average. */
const AVERAGE_WEIGHT = 1 / 8;

export interface InlineWriteSettings {
  /** Largest batch written inline; 0: never inline. */
  readonly bytesMax: number;
  /** Moving average of inline write times above which writes go through the pool. */
  readonly slowMs: number;
  /** How long they then stay in the pool. */
  readonly backoffMs: number;
}

export const defaultInlineWriteSettings: InlineWriteSettings = {
  bytesMax: limits.walInlineWriteBytesMax,
  slowMs: limits.walInlineWriteSlowMs,
  backoffMs: limits.walInlineWriteBackoffMs,
};

export class InlineWritePolicy {
  readonly #settings: InlineWriteSettings;
  #averageMs = 0;
  /** Until this time (ms, the caller's clock) writes go through the pool. */
  #poolUntilMs = Number.NEGATIVE_INFINITY;

  constructor(settings: InlineWriteSettings = defaultInlineWriteSettings) {
    this.#settings = settings;
  }

  /** Whether a batch of `bytes` is written inline at time `nowMs`. */
  inline(bytes: number, nowMs: number): boolean {
    return bytes <= this.#settings.bytesMax && nowMs >= this.#poolUntilMs;
  }

  /** Records how long an inline write took; may send the next writes to the pool. */
  record(durationMs: number, nowMs: number): void {
    this.#averageMs += (durationMs - this.#averageMs) * AVERAGE_WEIGHT;
    if (this.#averageMs > this.#settings.slowMs) {
      this.#poolUntilMs = nowMs + this.#settings.backoffMs;
      this.#averageMs = 0;
    }
  }
}
