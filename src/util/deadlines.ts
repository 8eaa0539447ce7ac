/**
 * One coarse timer for every request deadline of a transport or of the
 * coordinator, instead of a setTimeout per request (which would cost a timer
 * insert and removal on the hot path of every replicated request).
 *
 * Items are filed in buckets of `resolutionMs` by deadline; a repeating timer
 * expires the buckets whose time has come. An item expires at most one
 * resolution after its deadline, never before it. The timer runs while items
 * exist (it stops itself on a tick that finds none, so steady traffic does
 * not restart it per request) and is unref'd: it never keeps the process
 * alive by itself.
 *
 * The buckets are a hashed timing wheel: SLOTS lists, bucket k in slot
 * k mod SLOTS, each list threaded through its items (timerPrev, timerNext).
 * Adding and removing are O(1) and allocate nothing. Why: with a Set per
 * bucket in a Map, every request added to and removed from collections that
 * live as long as their deadlines, long enough to be in the old generation,
 * where V8 allocates such a collection's rehashed tables; at a few thousand
 * requests per second that garbage brought a full collection every few
 * seconds (docs/performance.md, "In-flight collections").
 *
 * A tick that comes late (this node's event loop was blocked: a long
 * synchronous task, a GC pause) does its work one turn later, from
 * setImmediate. Timers run before the loop reads its sockets, so answers
 * that arrived during the pause are still unread on the late tick: they are
 * read first, and the requests they answer are settled rather than expired.
 * The pauses are summed (runningMs()), so that a silence measured on them
 * leaves this node's own pauses out: a peer is not judged hung for them.
 */
import { assert } from './assert.js';

/**
 * Something with a deadline: a subclass gives the deadline and what expiring
 * does; the fields here are the timer's own (its place in the wheel).
 * expireAt() makes one from a function.
 */
export abstract class Expirable {
  abstract readonly deadlineMs: number;
  /** Set by the timer: the bucket the item is filed in, or -1. */
  bucket = -1;
  /** Set by the timer: the item's neighbours in its slot's list (undefined when not filed). */
  timerPrev: Expirable | undefined = undefined;
  timerNext: Expirable | undefined = undefined;
  /** Called once, from the timer, when the deadline passed before remove(). */
  abstract expire(): void;
}

class _Call extends Expirable {
  readonly deadlineMs: number;
  readonly expire: () => void;

  constructor(deadlineMs: number, expire: () => void) {
    super();
    this.deadlineMs = deadlineMs;
    this.expire = expire;
  }
}

/** An item for DeadlineTimer.add() that calls `expire` at `deadlineMs`. */
export function expireAt(deadlineMs: number, expire: () => void): Expirable {
  return new _Call(deadlineMs, expire);
}

/** Slots of the wheel (a power of two): one revolution is SLOTS resolutions. */
const SLOTS = 1024;
/** A tick this much late or more found the event loop paused (a long task, a GC); less is a busy loop. */
const PAUSE_MIN_MS = 100;
const SLOT_MASK = SLOTS - 1;

export class DeadlineTimer {
  readonly #resolutionMs: number;
  readonly #nowMs: () => number;
  /** Called on every tick, after the expiries (e.g. to spot hung connections). */
  readonly #onTick: (() => void) | undefined;
  readonly #slots: (Expirable | undefined)[] = new Array<Expirable | undefined>(SLOTS).fill(undefined);
  /** The last bucket a tick expired; add() files into later ones only. */
  #lastDue: number;
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When the last tick ran, or the timer started. */
  #lastTickMs = 0;
  /** The time ticks found the event loop blocked, summed. */
  #pausedMs = 0;
  /** The work of a late tick, waiting for the socket reads of this turn. */
  #deferred: NodeJS.Immediate | undefined;

  constructor(options: { resolutionMs: number; nowMs?: () => number; onTick?: () => void }) {
    assert(options.resolutionMs >= 1, `resolutionMs must be at least 1: ${options.resolutionMs}`);
    this.#resolutionMs = options.resolutionMs;
    this.#nowMs = options.nowMs ?? Date.now;
    this.#onTick = options.onTick;
    this.#lastDue = Math.floor(this.#nowMs() / this.#resolutionMs);
  }

  get size(): number {
    return this.#count;
  }

  /** The time deadlines are checked against (Date.now unless given). */
  nowMs(): number {
    return this.#nowMs();
  }

  /**
   * The clock (nowMs) less the pauses of the event loop the ticks found:
   * time this node was running. Pauses are found while items wait (the timer
   * runs), the only time a silence is measured.
   */
  runningMs(): number {
    return this.#nowMs() - this.#pausedMs;
  }

  add(item: Expirable): void {
    assert(item.bucket === -1, 'item already has a deadline');
    // Bucket k holds deadlines in ((k - 1) * res, k * res]: due once k * res <= now. One
    // already due goes to the next bucket a tick visits, which expires it.
    const wanted = Math.ceil(item.deadlineMs / this.#resolutionMs);
    // (Written so that a NaN deadline also lands in the next bucket.)
    const bucket = wanted > this.#lastDue ? wanted : this.#lastDue + 1;
    const slot = bucket & SLOT_MASK;
    const head = this.#slots[slot];
    item.timerPrev = undefined;
    item.timerNext = head;
    if (head !== undefined) head.timerPrev = item;
    this.#slots[slot] = item;
    item.bucket = bucket;
    this.#count++;
    if (this.#timer === undefined) {
      this.#lastTickMs = this.#nowMs();
      this.#timer = setInterval(() => this.#tick(), this.#resolutionMs);
      this.#timer.unref();
    }
  }

  remove(item: Expirable): void {
    if (item.bucket === -1) return;
    this.#unlink(item);
    this.#count--;
  }

  /** Stops the timer; items left are dropped without expiring. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#deferred !== undefined) clearImmediate(this.#deferred);
    this.#deferred = undefined;
    // Dropped items are unfiled, so that a later remove() of one is a no-op.
    for (let slot = 0; slot < SLOTS; slot++) {
      let item = this.#slots[slot];
      while (item !== undefined) {
        const next = item.timerNext;
        item.timerPrev = undefined;
        item.timerNext = undefined;
        item.bucket = -1;
        item = next;
      }
    }
    this.#slots.fill(undefined);
    this.#count = 0;
  }

  #tick(): void {
    // A late tick's work is waiting for this turn's reads already.
    if (this.#deferred !== undefined) return;
    const now = this.#nowMs();
    // A tick runs one resolution after the last: later by more than another, the loop was blocked.
    const lateMs = now - this.#lastTickMs - this.#resolutionMs;
    this.#lastTickMs = now;
    if (lateMs <= this.#resolutionMs) {
      this.#run(now);
      return;
    }
    this.#notePause(lateMs);
    this.#deferred = setImmediate(() => {
      this.#deferred = undefined;
      const at = this.#nowMs();
      // Deferred once only (a turn is bounded); blocked again meanwhile, that pause is left out too.
      this.#notePause(at - this.#lastTickMs - this.#resolutionMs);
      this.#lastTickMs = at;
      this.#run(at);
    });
  }

  /**
   * Leaves a pause out of runningMs() when it is long enough to be one: a
   * busy loop makes every tick a few turns late, and counting those would
   * slow runningMs() far behind the clock (a hung peer then found late).
   */
  #notePause(lateMs: number): void {
    if (lateMs >= PAUSE_MIN_MS) this.#pausedMs += lateMs;
  }

  /** Expires the buckets due by `now`, then tells onTick. */
  #run(now: number): void {
    const due = Math.floor(now / this.#resolutionMs);
    const expired: Expirable[] = [];
    // The buckets since the last tick, at most one revolution: each slot once.
    for (let bucket = Math.max(this.#lastDue + 1, due - SLOT_MASK); bucket <= due; bucket++) {
      let item = this.#slots[bucket & SLOT_MASK];
      while (item !== undefined) {
        const next = item.timerNext;
        // A slot also holds buckets of later revolutions.
        if (item.bucket <= due) {
          this.#unlink(item);
          expired.push(item);
        }
        item = next;
      }
    }
    // Also backwards, when the wall clock steps back: items added from then on are filed by
    // the new time rather than after the old one (those filed before wait for it, as they must).
    this.#lastDue = due;
    this.#count -= expired.length;
    for (const item of expired) item.expire();
    this.#onTick?.();
    if (this.#count === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #unlink(item: Expirable): void {
    const { timerPrev: prev, timerNext: next } = item;
    if (prev === undefined) this.#slots[item.bucket & SLOT_MASK] = next;
    else prev.timerNext = next;
    if (next !== undefined) next.timerPrev = prev;
    item.timerPrev = undefined;
    item.timerNext = undefined;
    item.bucket = -1;
  }
}
