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
  version: bigint;
  atMs: number;
}

export class RecentWrites {
  readonly #windowMs: number;
  readonly #entriesMax: number;
  readonly #keyBytesMax: number;
  readonly #nowMs: () => number;
  /** In order of last write (a rewritten key moves to the end), so the oldest is first. */
  readonly #entries = new Map<string, _Recent>();
  #keyBytes = 0;
  #floor: bigint;

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
    let newest = this.#floor;
    if (known !== undefined) {
      if (known.version > newest) newest = known.version;
      this.#entries.delete(id);
    } else {
      this.#keyBytes += id.length;
    }
    const kept = known !== undefined && known.version > version ? known.version : version;
    this.#entries.set(id, { version: kept, atMs: nowMs });
    this.#forgetOverflow();
    return version <= newest ? newest : undefined;
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
    for (const [id, entry] of this.#entries) {
      if (entry.atMs > cutoffMs) return;
      this.#forget(id, entry);
    }
  }

  #forgetOverflow(): void {
    for (const [id, entry] of this.#entries) {
      if (this.#entries.size <= this.#entriesMax && this.#keyBytes <= this.#keyBytesMax) return;
      this.#forget(id, entry);
    }
  }

  #forget(id: string, entry: _Recent): void {
    this.#entries.delete(id);
    this.#keyBytes -= id.length;
    if (entry.version > this.#floor) this.#floor = entry.version;
  }
}
