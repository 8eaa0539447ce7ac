/**
 * The unit the whole store moves around: one version of one key.
 *
 * A delete is a version too (a tombstone), so that "newest version wins" can
 * be decided by comparing versions alone, on every replica, in every
 * component, with the same result. Versions are unsigned 64-bit values,
 * ordered as numbers; the cluster stamps them with a hybrid logical clock
 * (see version.ts for the layout).
 */
import { compareBytes } from '../../util/bytes.js';

/** On-disk values: never renumber. */
export const EntryKind = {
  Value: 1,
  Tombstone: 2,
} as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export interface Entry {
  readonly key: Buffer;
  /** Unsigned 64-bit; larger is newer. */
  readonly version: bigint;
  readonly kind: EntryKind;
  /** Wall-clock ms after which a Value reads as absent; 0 = never expires. Always 0 for tombstones. */
  readonly expiresAtMs: number;
  /** The value bytes; empty for tombstones. */
  readonly value: Buffer;
}

export const EMPTY = Buffer.alloc(0);

export function valueEntry(key: Buffer, version: bigint, value: Buffer, expiresAtMs = 0): Entry {
  return { key, version, kind: EntryKind.Value, expiresAtMs, value };
}

export function tombstoneEntry(key: Buffer, version: bigint): Entry {
  return { key, version, kind: EntryKind.Tombstone, expiresAtMs: 0, value: EMPTY };
}

/**
 * Orders two versions of the same key: >0 when `a` is newer. Ties on the
 * version number (two coordinators stamping the same value) are broken the
 * same way on every replica so that they converge: a tombstone beats a value,
 * then the larger value bytes win, then the later expiry (compareExpiries).
 * Only identical entries compare 0.
 */
export function compareVersions(a: Entry, b: Entry): number {
  if (a.version !== b.version) return a.version > b.version ? 1 : -1;
  if (a.kind !== b.kind) return a.kind === EntryKind.Tombstone ? 1 : -1;
  const byValue = compareBytes(a.value, b.value);
  return byValue !== 0 ? byValue : compareExpiries(a.expiresAtMs, b.expiresAtMs);
}

/**
 * The tie-break of one version and value written with two expiries (with a
 * TTL and without, say): >0 when `a` expires later, 0 (never) latest of
 * all. Any fixed rule converges; the later expiry wins because (1) a write's
 * value then never vanishes before that write asked, and (2) the winner
 * outlives the loser on every replica, so the outcome does not hang on
 * anti-entropy coming before compactions drop expired values: were the
 * earlier expiry to win, a replica still holding the other would copy it
 * back, live, to the replicas that had dropped the expired winner.
 */
export function compareExpiries(a: number, b: number): number {
  if (a === b) return 0;
  if (a === 0) return 1;
  if (b === 0) return -1;
  return a > b ? 1 : -1;
}

/** The newer of two versions of one key (either may be missing). */
export function newer(a: Entry | undefined, b: Entry | undefined): Entry | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareVersions(a, b) >= 0 ? a : b;
}

export function isExpired(entry: Entry, nowMs: number): boolean {
  return entry.expiresAtMs !== 0 && entry.expiresAtMs <= nowMs;
}

/**
 * When an entry's grace period starts, after which a compaction at the bottom
 * of the tree may drop it (compaction/jobs.ts, isObsolete): when it took
 * effect as a delete. A tombstone's version time; a value's expiry, or its
 * version time if later (a value written already expired, by a retry that
 * re-stamped its version or a clock ahead, deletes from its version on, and
 * replicas exchange a write within the grace of its version); -1 for a value
 * that never expires.
 */
export function droppableFromMs(kind: number, versionPhysicalMs: number, expiresAtMs: number): number {
  if (kind === EntryKind.Tombstone) return versionPhysicalMs;
  return expiresAtMs === 0 ? -1 : Math.max(expiresAtMs, versionPhysicalMs);
}

/** A value that has not expired: what a read returns as present. */
export function isLive(entry: Entry, nowMs: number): boolean {
  return entry.kind === EntryKind.Value && !isExpired(entry, nowMs);
}

/** Approximate memory cost, for memtable accounting: bytes plus object overhead. */
export function entryBytes(entry: Entry): number {
  return entry.key.length + entry.value.length + 64;
}
