/**
 * Hybrid logical clock: stamps every write with a version (see
 * storage/entry/version.ts for the 48-bit ms + 16-bit counter layout).
 *
 * Versions from one clock strictly increase, and a clock that observes a
 * version (from a peer's write or read answer) never stamps one below it.
 * That alone orders two writes of one key only when one clock saw both. Two
 * writes through two nodes, the second sent after the first was answered,
 * are ordered by the replicas instead (replica.ts): when their `ack` sets
 * must share a replica (ack1 + ack2 > from), that replica knows the first
 * version and answers the second with a conflict, and the coordinator stamps
 * it again above. Writes whose ack sets may be disjoint have only their
 * coordinators' clocks, so skew can order them wrongly (docs/api.md says so).
 *
 * Not safe against a peer whose clock runs far ahead: its versions drag
 * every node's clock forward. observe() refuses versions more than
 * `maxDriftMs` ahead of local wall time rather than follow them. Within the
 * skew bound versions come up to twice the skew ahead: a replica started
 * lately answers conflicts at its wall clock plus the skew (its recent-writes
 * floor, replica.ts), and that wall clock may itself be the skew ahead.
 */
import { LOGICAL_MAX, makeVersion, versionLogical, versionPhysicalMs } from '../storage/index.js';

export interface HybridClockOptions {
  /** Wall clock in ms; tests fake skew through it. */
  readonly wallMs?: () => number;
  /** observe() ignores versions further ahead of the wall clock than this (default: see DRIFT_MAX_MS). */
  readonly maxDriftMs?: number;
  /** The cluster's --max-clock-skew: the default drift bound is at least twice it (see above). */
  readonly clockSkewMaxMs?: number;
}

/** The least drift followed by default; also how far ahead a restarted node's stored versions are followed. */
const DRIFT_MAX_MS = 60_000;

export class HybridClock {
  readonly #wallMs: () => number;
  readonly #maxDriftMs: number;
  #physicalMs = 0;
  #logical = 0;

  constructor(options: HybridClockOptions = {}) {
    this.#wallMs = options.wallMs ?? Date.now;
    this.#maxDriftMs = options.maxDriftMs ?? Math.max(DRIFT_MAX_MS, 2 * (options.clockSkewMaxMs ?? 0));
  }

  /** A new version, larger than every version this clock stamped or observed. */
  now(): bigint {
    const wall = this.#wallMs();
    if (wall > this.#physicalMs) {
      this.#physicalMs = wall;
      this.#logical = 0;
    } else if (this.#logical < LOGICAL_MAX) {
      this.#logical++;
    } else {
      // 65,536 versions in one millisecond: borrow the next millisecond.
      this.#physicalMs++;
      this.#logical = 0;
    }
    return makeVersion(this.#physicalMs, this.#logical);
  }

  /** Advances past a version seen elsewhere; returns false when it was refused as too far ahead. */
  observe(version: bigint): boolean {
    const physical = versionPhysicalMs(version);
    if (physical > this.#wallMs() + this.#maxDriftMs) return false;
    const logical = versionLogical(version);
    if (physical > this.#physicalMs || (physical === this.#physicalMs && logical > this.#logical)) {
      this.#physicalMs = physical;
      this.#logical = logical;
    }
    return true;
  }

  /** The wall clock this clock reads, for TTL arithmetic that must agree with it. */
  wallMs(): number {
    return this.#wallMs();
  }
}
