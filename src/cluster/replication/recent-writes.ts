/**
 * RecentWrites: what a replica remembers of the writes it stored lately, for
 * the conflict check that orders writes under clock skew (replica.ts).
 *
 * For each key written in the last `windowMs` it keeps the newest version
 * seen; below all of them sits a floor, a version that every forgotten write
 * is at or under. A key's known version is max(its entry, floor), and a write
 * at or below it is a conflict: record() returns the known version.
 *
 * - Entries are forgotten by age (older than `windowMs`, by a monotonic
 *   clock), by count (`entriesMax`) and by key bytes (`keyBytesMax`), oldest
 *   first; each forgotten version raises the floor. Forgetting therefore never
 *   hides a conflict, it can only report one that a precise memory would not
 *   (a write of another key below the floor): a spurious retry, not a
 *   misordering.
 * - The floor starts at `initialFloor`: after a restart the memory is empty
 *   while the engine holds writes stamped up to the largest clock in the
 *   cluster, which is at most the maximum skew ahead of this node's clock.
 *   So the floor starts at now + skew (serve.ts), and writes stamped below it
 *   during the first moments conflict once and are re-stamped above.
 * - record() is synchronous: the check and the update happen in one step, so
 *   two writes of one key arriving together are judged against each other.
 *
 *   const recent = new RecentWrites({ windowMs: 3000, entriesMax: 1000, keyBytesMax: 1 << 20, initialFloor: 0n });
 *   recent.record(Buffer.from('k'), 10n); // undefined: nothing newer known
 *   recent.record(Buffer.from('k'), 7n);  // 10n: a conflict
 */
import { performance } from 'node:perf_hooks';
import { assert } from '../../util/assert.js';

export interface RecentWritesOptions {
  readonly windowMs: number;
  readonly entriesMax: number;
  readonly keyBytesMax: number;
  /** Versions at or below this conflict from the start (see above). */
  readonly initialFloor: bigint;
  /** A monotonic clock in ms; tests pass a fake one. */
  readonly nowMs?: () => number;
}

interface _Recent {
  readonly id: string;
  readonly version: bigint;
  readonly atMs: number;
}

/** Spent slots at the front of the write-order queue before it is cut down. */
const QUEUE_HEAD_SLACK = 64;

export class RecentWrites {
  readonly #windowMs: number;
  readonly #entriesMax: number;
  readonly #keyBytesMax: number;
  readonly #nowMs: () => number;
  /** The newest record of each key remembered. */
  readonly #entries = new Map<string, _Recent>();
  /**
   * Every record in write order, oldest first from #head on. A record that a
   * later write of its key replaced is stale: it is skipped when reached.
   * (Walking the Map itself from its start, as deletions pile up at its
   * front, costs a scan over the deleted slots on every write.)
   */
  #order: (_Recent | undefined)[] = [];
  #head = 0;
  #keyBytes = 0;
  #floor: bigint;
  #lastWasNew = false;

  constructor(options: RecentWritesOptions) {
    assert(options.windowMs >= 1, `windowMs must be positive: ${options.windowMs}`);
    assert(options.entriesMax >= 1, `entriesMax must be positive: ${options.entriesMax}`);
    this.#windowMs = options.windowMs;
    this.#entriesMax = options.entriesMax;
    this.#keyBytesMax = options.keyBytesMax;
    this.#floor = options.initialFloor;
    this.#nowMs = options.nowMs ?? (() => performance.now());
  }

  /**
   * Remembers a write of `key` at `version`. Returns undefined when nothing
   * at or above `version` was known for the key, or else the newest version
   * known (a conflict).
   */
  record(key: Buffer, version: bigint): bigint | undefined {
    const nowMs = this.#nowMs();
    this.#forgetOlderThan(nowMs - this.#windowMs);
    // latin1 maps each byte to one character: a compact, exact key for the map.
    const id = key.toString('latin1');
    const known = this.#entries.get(id);
    this.#lastWasNew = known === undefined;
    let newest = this.#floor;
    if (known !== undefined) {
      if (known.version > newest) newest = known.version;
    } else {
      this.#keyBytes += id.length;
    }
    const kept = known !== undefined && known.version > version ? known.version : version;
    const record: _Recent = { id, version: kept, atMs: nowMs };
    this.#entries.set(id, record);
    this.#order.push(record);
    this.#forgetOverflow();
    if (this.#order.length - this.#head > 2 * this.#entries.size + QUEUE_HEAD_SLACK) this.#dropStale();
    return version <= newest ? newest : undefined;
  }

  /**
   * Whether the last record() met a key the memory did not hold: the first
   * write of it since this process started or since the memory forgot it,
   * so only the store can tell what came before (replica.ts).
   */
  get lastWasNew(): boolean {
    return this.#lastWasNew;
  }

  /** The version a write of `key` must exceed not to conflict. */
  known(key: Buffer): bigint {
    const entry = this.#entries.get(key.toString('latin1'));
    return entry !== undefined && entry.version > this.#floor ? entry.version : this.#floor;
  }

  get size(): number {
    return this.#entries.size;
  }

  get floor(): bigint {
    return this.#floor;
  }

  #forgetOlderThan(cutoffMs: number): void {
    while (this.#head < this.#order.length && this.#order[this.#head]!.atMs <= cutoffMs) {
      this.#forgetOldest();
    }
  }

  #forgetOverflow(): void {
    while (this.#entries.size > this.#entriesMax || this.#keyBytes > this.#keyBytesMax) this.#forgetOldest();
  }

  /** Takes the oldest record off the queue and, unless a later write replaced it, forgets its key. */
  #forgetOldest(): void {
    const record = this.#order[this.#head]!;
    this.#order[this.#head++] = undefined;
    if (this.#head > QUEUE_HEAD_SLACK && 2 * this.#head > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
    // A stale record's version is at most its key's newer record's: the floor need not see it.
    if (this.#entries.get(record.id) !== record) return;
    this.#entries.delete(record.id);
    this.#keyBytes -= record.id.length;
    if (record.version > this.#floor) this.#floor = record.version;
  }

  /** Rebuilds the queue without stale records (a few keys rewritten often pile them up). */
  #dropStale(): void {
    const live: (_Recent | undefined)[] = [];
    for (let i = this.#head; i < this.#order.length; i++) {
      const record = this.#order[i]!;
      if (this.#entries.get(record.id) === record) live.push(record);
    }
    this.#order = live;
    this.#head = 0;
  }
}
