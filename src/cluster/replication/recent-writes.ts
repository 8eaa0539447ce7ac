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
 *   during the first moments conflict once and are re-stamped above. It
 *   never rises past now + skew either (`floorMax`).
 * - record() is synchronous: the check and the update happen in one step, so
 *   two writes of one key arriving together are judged against each other.
 *
 * - The memory is flat: the write-order queue is a ring of typed arrays and
 *   each remembered key an index into typed arrays (its version, its newest
 *   record), found through one Map from the key's bytes. A write therefore
 *   leaves no object behind but the key's string when the key is new. Kept
 *   for seconds, per-write objects outlive a few young-generation
 *   collections and are promoted; under steady writes they filled the old
 *   space and brought a full collection every few seconds.
 *
 *   const recent = new RecentWrites({ windowMs: 3000, entriesMax: 1000, keyBytesMax: 1 << 20, initialFloor: 0n });
 *   recent.record(Buffer.from('k'), 10n); // undefined: nothing newer known
 *   recent.record(Buffer.from('k'), 7n);  // 10n: a conflict
 */
import { performance } from 'node:perf_hooks';
import { assert } from '../../util/assert.js';

/** Above any version (64 bits), for a memory with no floorMax. */
const UNBOUNDED = 1n << 64n;

export interface RecentWritesOptions {
  readonly windowMs: number;
  /**
   * The highest the floor may rise (default: no limit): the newest version a
   * node within the skew bound can have stamped. A forgotten write stamped
   * past it (a clock beyond the bound) would otherwise raise the floor over
   * every key's writes until real time caught up, and each would conflict;
   * its own key is still guarded by the replica's read-back of the store.
   */
  readonly floorMax?: () => bigint;
  readonly entriesMax: number;
  readonly keyBytesMax: number;
  /** Versions at or below this conflict from the start (see above). */
  readonly initialFloor: bigint;
  /** A monotonic clock in ms; tests pass a fake one. */
  readonly nowMs?: () => number;
}

/** Stale records (of keys written again since) allowed in the queue beyond twice the keys before it is compacted. */
const QUEUE_STALE_SLACK = 64;
/** First capacity of the queue and of the key table; each doubles as needed (a few copies at start). */
const CAPACITY_START = 64;

export class RecentWrites {
  readonly #windowMs: number;
  readonly #entriesMax: number;
  readonly #keyBytesMax: number;
  readonly #nowMs: () => number;
  /** Each remembered key's slot in the key table. */
  readonly #slots = new Map<string, number>();
  // The key table, by slot: the key, the newest version known for it, and
  // the sequence number of its newest record in the queue.
  #slotIds: string[] = [];
  #slotVersions = new BigUint64Array(CAPACITY_START);
  #slotSeqs = new Float64Array(CAPACITY_START);
  /** 1 until the replica read the store for the key (learnStored): the store may hold a version the memory never saw. */
  #slotUnchecked = new Uint8Array(CAPACITY_START);
  /** Which time the slot was taken (counting from 1): tells a key remembered again from its earlier self. */
  #slotBirths = new Float64Array(CAPACITY_START);
  #births = 0;
  /** Slots given back, reused before the table grows. */
  #freeSlots: number[] = [];
  /**
   * Every record in write order, as a ring: record number `seq` (counting
   * every write since the start, #head <= seq < #tail) sits at position
   * seq % capacity. A record whose key was written again since is stale
   * (its slot's newest record is a later one) and is skipped when reached.
   */
  #recordSlots = new Int32Array(CAPACITY_START);
  #recordAtMs = new Float64Array(CAPACITY_START);
  #head = 0;
  #tail = 0;
  #keyBytes = 0;
  #floor: bigint;
  readonly #floorMax: (() => bigint) | undefined;
  /** floorMax() as last read; no bound without it. */
  #floorCap: bigint;
  #lastUnchecked: number | undefined;

  constructor(options: RecentWritesOptions) {
    assert(options.windowMs >= 1, `windowMs must be positive: ${options.windowMs}`);
    assert(options.entriesMax >= 1, `entriesMax must be positive: ${options.entriesMax}`);
    this.#windowMs = options.windowMs;
    this.#entriesMax = options.entriesMax;
    this.#keyBytesMax = options.keyBytesMax;
    this.#floor = options.initialFloor;
    this.#floorMax = options.floorMax;
    this.#floorCap = options.floorMax === undefined ? UNBOUNDED : options.floorMax();
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
    let slot = this.#slots.get(id);
    let newest = this.#floor;
    let kept = version;
    if (slot !== undefined) {
      const known = this.#slotVersions[slot]!;
      if (known > newest) newest = known;
      if (known > version) kept = known;
    } else {
      slot = this.#takeSlot(id);
      this.#keyBytes += id.length;
    }
    this.#lastUnchecked = this.#slotUnchecked[slot] === 1 ? this.#slotBirths[slot] : undefined;
    this.#slotVersions[slot] = kept;
    this.#slotSeqs[slot] = this.#append(slot, nowMs);
    this.#forgetOverflow();
    return version <= newest ? newest : undefined;
  }

  /**
   * Whether the last record() met a key the memory has not checked against
   * the store: the first write of it since this process started or since the
   * memory forgot it, or a later one before the store was read for it.
   * Only the store can tell what came before (replica.ts). Undefined when
   * checked; else a token for learnStored().
   */
  get lastUnchecked(): number | undefined {
    return this.#lastUnchecked;
  }

  /**
   * The store was read for `key` after a write of it, whose record() gave
   * `token`: `version` (undefined: nothing stored) is the newest it held.
   * The memory knows it from now on, and with it everything the store held
   * before the key was remembered. A key forgotten since (and perhaps
   * remembered again) is left alone: the read may predate what it forgot.
   */
  learnStored(key: Buffer, version: bigint | undefined, token: number): void {
    const slot = this.#slots.get(key.toString('latin1'));
    if (slot === undefined || this.#slotBirths[slot] !== token) return;
    if (version !== undefined && version > this.#slotVersions[slot]!) this.#slotVersions[slot] = version;
    this.#slotUnchecked[slot] = 0;
  }

  /** The version a write of `key` must exceed not to conflict. */
  known(key: Buffer): bigint {
    const slot = this.#slots.get(key.toString('latin1'));
    if (slot === undefined) return this.#floor;
    const version = this.#slotVersions[slot]!;
    if (version > this.#floor) return version;
    return this.#floor;
  }

  get size(): number {
    return this.#slots.size;
  }

  get floor(): bigint {
    return this.#floor;
  }

  #takeSlot(id: string): number {
    let slot = this.#freeSlots.pop();
    if (slot === undefined) {
      slot = this.#slotIds.length;
      if (slot === this.#slotVersions.length) {
        this.#slotVersions = doubled(this.#slotVersions, (n) => new BigUint64Array(n));
        this.#slotSeqs = doubled(this.#slotSeqs, (n) => new Float64Array(n));
        this.#slotUnchecked = doubled(this.#slotUnchecked, (n) => new Uint8Array(n));
        this.#slotBirths = doubled(this.#slotBirths, (n) => new Float64Array(n));
      }
      this.#slotIds.push(id);
    } else {
      this.#slotIds[slot] = id;
    }
    // No record is its newest yet (a reused slot's old records are stale).
    this.#slotSeqs[slot] = -1;
    this.#slotUnchecked[slot] = 1;
    this.#slotBirths[slot] = ++this.#births;
    this.#slots.set(id, slot);
    return slot;
  }

  /** Appends a record of `slot` at `atMs`; returns its sequence number. */
  #append(slot: number, atMs: number): number {
    const capacity = this.#recordSlots.length;
    if (this.#tail - this.#head === capacity) {
      // Full: drop the stale records if they are most of it, else grow.
      if (capacity > 2 * this.#slots.size + QUEUE_STALE_SLACK) this.#dropStale();
      else this.#resize(2 * capacity);
    }
    const seq = this.#tail++;
    const at = seq % this.#recordSlots.length;
    this.#recordSlots[at] = slot;
    this.#recordAtMs[at] = atMs;
    return seq;
  }

  #forgetOlderThan(cutoffMs: number): void {
    const capacity = this.#recordAtMs.length;
    while (this.#head < this.#tail && this.#recordAtMs[this.#head % capacity]! <= cutoffMs) {
      this.#forgetOldest();
    }
  }

  #forgetOverflow(): void {
    while (this.#slots.size > this.#entriesMax || this.#keyBytes > this.#keyBytesMax) this.#forgetOldest();
  }

  /** Takes the oldest record off the queue and, unless a later write replaced it, forgets its key. */
  #forgetOldest(): void {
    const seq = this.#head++;
    const slot = this.#recordSlots[seq % this.#recordSlots.length]!;
    // A stale record's version is at most its key's newer record's: the floor need not see it.
    if (this.#slotSeqs[slot] !== seq) return;
    const id = this.#slotIds[slot]!;
    this.#slots.delete(id);
    this.#keyBytes -= id.length;
    const version = this.#slotVersions[slot]!;
    if (version > this.#floor) {
      // The bound is read again only when a version passes the last reading (it only grows):
      // about once per skew interval in steady writes, not once per write.
      if (version > this.#floorCap && this.#floorMax !== undefined) this.#floorCap = this.#floorMax();
      if (version <= this.#floorCap) this.#floor = version;
      else if (this.#floorCap > this.#floor) this.#floor = this.#floorCap;
    }
    this.#slotIds[slot] = '';
    this.#slotSeqs[slot] = -1;
    this.#freeSlots.push(slot);
  }

  /** Copies the queue into a ring of `capacity`, each record at its sequence number's new position. */
  #resize(capacity: number): void {
    const slots = new Int32Array(capacity);
    const atMs = new Float64Array(capacity);
    const old = this.#recordSlots.length;
    for (let seq = this.#head; seq < this.#tail; seq++) {
      slots[seq % capacity] = this.#recordSlots[seq % old]!;
      atMs[seq % capacity] = this.#recordAtMs[seq % old]!;
    }
    this.#recordSlots = slots;
    this.#recordAtMs = atMs;
  }

  /**
   * Rebuilds the queue without stale records (a few keys rewritten often
   * pile them up): the live ones keep their order and get new sequence
   * numbers from #head on.
   */
  #dropStale(): void {
    const capacity = this.#recordSlots.length;
    const slots = new Int32Array(capacity);
    const atMs = new Float64Array(capacity);
    let next = this.#head;
    for (let seq = this.#head; seq < this.#tail; seq++) {
      const slot = this.#recordSlots[seq % capacity]!;
      if (this.#slotSeqs[slot] !== seq) continue;
      // INVARIANT: next <= seq, so a renumbered record never meets a later one's old number.
      slots[next % capacity] = slot;
      atMs[next % capacity] = this.#recordAtMs[seq % capacity]!;
      this.#slotSeqs[slot] = next++;
    }
    this.#recordSlots = slots;
    this.#recordAtMs = atMs;
    this.#tail = next;
  }
}

/** A typed array of twice the length holding `old` at its start (the slot table grows by doubling). */
function doubled<T extends { readonly length: number; set(source: T): void }>(
  old: T,
  make: (length: number) => T,
): T {
  const next = make(2 * old.length);
  next.set(old);
  return next;
}
