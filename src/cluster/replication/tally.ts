/**
 * Tally: counts one round's answers, for a write round or a read. Done once
 * `needed` succeeded (onDone()), or with RINGKV_NOT_ENOUGH_REPLICAS (504) at
 * the deadline or as soon as so many failed that `needed` can no longer be
 * reached: a peer marked down by the transport fails at once, so a dead node
 * costs no time per request. Answers after that are ignored here; callers
 * handle late ones themselves.
 *
 * The 504's message lists the first failures (at most three), in words a
 * client may see: a damaged file, an I/O error or an internal error is named
 * by its code and a short phrase, never by its text (which names files; the
 * coordinator logs it whole). At the deadline it lists those that came
 * before it: the transport expires the same deadline on its own timer, and
 * its timeout of a replica past the deadline ends the round as the deadline
 * does, so the message is the same whichever timer runs first.
 *
 *   const tally = new Tally({ needed: 2, total: 3, deadlineMs, timeoutMs, deadlines, onDone });
 *   tally.succeed(); tally.fail(peer, err); // onDone() runs once, then tally.done
 */

import { type DeadlineTimer, Expirable } from '../../util/deadlines.js';
import { type ErrorCode, isRingkvError, RingkvError } from '../../util/errors.js';

/** Failures listed in a 504's message at most. */
const REASONS_MAX = 3;

export class Tally extends Expirable {
  done = false;
  readonly deadlineMs: number;
  readonly #needed: number;
  /** Of `needed`, those a move's pending owners added to the client's ack (for the 504's message). */
  readonly #raised: number;
  readonly #total: number;
  readonly #timeoutMs: number;
  readonly #deadlines: DeadlineTimer;
  readonly #onDone: (err: RingkvError | undefined, conflict?: bigint) => void;
  #successes = 0;
  #failures = 0;
  #reasons: string[] = [];

  constructor(fields: {
    needed: number;
    /** Of `needed`, the pending owners' raise (coordinator.ts): the 504 tells it apart from the client's ack. */
    raised?: number;
    total: number;
    deadlineMs: number;
    /** For the 504's message only. */
    timeoutMs: number;
    deadlines: DeadlineTimer;
    onDone: (err: RingkvError | undefined, conflict?: bigint) => void;
  }) {
    super();
    this.#needed = fields.needed;
    this.#raised = fields.raised ?? 0;
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
    if (this.done) return;
    // The transport's own expiry of this deadline: the deadline's 504, whichever timer ran first.
    // Other failures count as they come: after a pause of the event loop, answers that came in
    // time are read in any order, and successes among them still make the quorum.
    if (isRingkvError(err, 'RINGKV_TIMEOUT') && this.#deadlines.nowMs() >= this.deadlineMs) {
      this.expire();
      return;
    }
    this.#failures++;
    if (this.#reasons.length < REASONS_MAX) this.#reasons.push(`${peer}: ${failureReason(err)}`);
    if (this.#total - this.#failures < this.#needed) this.#notEnough('');
  }

  expire(): void {
    this.#notEnough(` within ${this.#timeoutMs} ms`);
  }

  /** Ends the round early, e.g. on a write's conflict; later calls do nothing. */
  finish(err: RingkvError | undefined, conflict?: bigint): void {
    if (this.done) return;
    this.done = true;
    this.#deadlines.remove(this);
    this.#onDone(err, conflict);
  }

  #notEnough(within: string): void {
    const failed = this.#failures === 0 ? '' : `; ${this.#failures} failed: ${this.#reasons.join('; ')}`;
    const raised = this.#raised;
    const why =
      raised === 0
        ? ''
        : ` (ack ${this.#needed - raised}, plus ${raised} pending owner${raised === 1 ? '' : 's'}: the ring is changing)`;
    this.finish(
      new RingkvError(
        'RINGKV_NOT_ENOUGH_REPLICAS',
        `Only ${this.#successes} of ${this.#needed} required replicas answered${why}${within}${failed}`,
      ),
    );
  }
}

/** Codes whose messages are written for clients (a full disk, a peer down, a timeout...): kept whole. */
const TOLD_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'RINGKV_NO_SPACE',
  'RINGKV_UNAVAILABLE',
  'RINGKV_TIMEOUT',
  'RINGKV_CLOSED',
  'RINGKV_UNAUTHORIZED',
  'RINGKV_BAD_REQUEST',
  'RINGKV_KEY_TOO_LONG',
  'RINGKV_VALUE_TOO_LARGE',
  'RINGKV_NOT_ENOUGH_REPLICAS',
]);

/** A replica's failure as a 504 may tell it: as http/errors.ts would answer it, without paths or raw texts. */
function failureReason(err: unknown): string {
  if (!isRingkvError(err)) return 'Internal error';
  if (TOLD_CODES.has(err.code)) return err.message;
  if (err.code === 'RINGKV_CORRUPTION') return `${err.code}: a damaged file`;
  if (err.code === 'RINGKV_IO') return `${err.code}: an I/O error`;
  return `${err.code}: an internal error`;
}
