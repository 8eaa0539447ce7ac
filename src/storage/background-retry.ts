/**
 * BackgroundRetry: what the engine keeps of one kind of background job
 * (flush, compaction) that can fail: the failures counted, the last error,
 * and the retry after a backoff that doubles with each failure in a row, from
 * `minMs` up to `maxMs`. A failing job never stops background work for good:
 * it is logged and tried again, once its cause (a damaged table, a full disk)
 * may be gone.
 *
 *   const flushes = new BackgroundRetry('Flush', { minMs: 1000, maxMs: 60_000, log });
 *   job().then(() => flushes.succeeded(), (err) => flushes.failed(err, () => schedule()));
 */
import { errorMessage } from '../util/errors.js';

export class BackgroundRetry {
  readonly #what: string;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #log: (line: string) => void;
  #failures = 0;
  #inRow = 0;
  #error: string | undefined;
  #cause: unknown;
  #timer: NodeJS.Timeout | undefined;

  constructor(what: string, options: { minMs: number; maxMs: number; log: (line: string) => void }) {
    this.#what = what;
    this.#minMs = options.minMs;
    this.#maxMs = options.maxMs;
    this.#log = options.log;
  }

  /** Failures since the engine opened. */
  get failures(): number {
    return this.#failures;
  }

  /** The last failure's message while the job has not succeeded since. */
  get error(): string | undefined {
    return this.#error;
  }

  /** The last failure itself while the job has not succeeded since (a full disk is told apart by it). */
  get cause(): unknown {
    return this.#cause;
  }

  /** A retry is waiting out its backoff: the job is not to be started meanwhile. */
  get waiting(): boolean {
    return this.#timer !== undefined;
  }

  succeeded(): void {
    this.#error = undefined;
    this.#cause = undefined;
    this.#inRow = 0;
  }

  /** Counts and logs the failure, then calls `retry` after the backoff. */
  failed(err: unknown, retry: () => void): void {
    this.#failures++;
    this.#inRow++;
    this.#error = errorMessage(err);
    this.#cause = err;
    const delayMs = Math.min(this.#maxMs, this.#minMs * 2 ** Math.min(this.#inRow - 1, 30));
    this.#log(`${this.#what} failed (${this.#inRow} in a row), retrying in ${delayMs} ms: ${this.#error}`);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      retry();
    }, delayMs);
    this.#timer.unref();
  }

  /** Drops the retry waiting out its backoff (the caller runs the job now, or closes). */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
