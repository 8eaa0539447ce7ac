/**
 * Tally: counts one round's answers, for a write round or a read. Done once
 * `needed` succeeded (onDone()), or with RINGKV_NOT_ENOUGH_REPLICAS (504) at
 * the deadline or as soon as so many failed that `needed` can no longer be
 * reached: a peer marked down by the transport fails at once, so a dead node
 * costs no time per request. Answers after that are ignored here; callers
 * handle late ones themselves.
 *
 *   const tally = new Tally({ needed: 2, total: 3, deadlineMs, timeoutMs, deadlines, onDone });
 *   tally.succeed(); tally.fail(peer, err); // onDone() runs once, then tally.done
 */

import { type DeadlineTimer, Expirable } from '../../util/deadlines.js';
import { errorMessage, RingkvError } from '../../util/errors.js';

export class Tally extends Expirable {
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
    /** For the 504's message only. */
    timeoutMs: number;
    deadlines: DeadlineTimer;
    onDone: (err: RingkvError | undefined, conflict?: bigint) => void;
  }) {
    super();
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

  /** Ends the round early, e.g. on a write's conflict; later calls do nothing. */
  finish(err: RingkvError | undefined, conflict?: bigint): void {
    if (this.done) return;
    this.done = true;
    this.#deadlines.remove(this);
    this.#onDone(err, conflict);
  }
}
