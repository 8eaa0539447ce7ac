/**
 * What the coordinator's parts (write-round.ts, read-round.ts,
 * read-repair.ts) are handed by the ClusterStore that owns it: how replicas
 * are reached, the one deadline timer, the counters status() reports and the
 * failure log. A separate file so that the parts need not import the facade.
 */
import type { Entry } from '../../storage/index.js';
import type { DeadlineTimer } from '../../util/deadlines.js';
import type { HybridClock } from '../clock.js';
import type { PeerStatus, Transport, TransportStats } from '../transport/index.js';
import type { Replica } from './replica.js';

/** The transport, with the optional facts status() reports. */
export type StoreTransport = Transport & { stats?(): TransportStats; peerStatus?(peer: string): PeerStatus };

/** status().coordinator, in this order; the facade and each part count their own. */
export interface CoordinatorCounters {
  gets: number;
  puts: number;
  deletes: number;
  /** Requests answered 504 (deadline, failures, or conflicts to the last retry). */
  notEnoughReplicas: number;
  /** Conflict answers received (before or after the reply). */
  conflicts: number;
  /** Writes re-stamped and sent again after a conflict. */
  conflictRetries: number;
  /** Replica requests that failed (errors, timeouts, peers down). */
  replicaFailures: number;
  /** Background writes of the newest entry to replicas that answered an older one. */
  readRepairs: number;
  readRepairFailures: number;
  /** Repairs not made because `readRepairsInFlightMax` were under way. */
  readRepairsSkipped: number;
  /** Reads that asked the rest of their replicas after `readHedgeMs`. */
  readHedges: number;
  /** Reads still unanswered after `readHedgeMs` that did not, the hedge budget being spent. */
  readHedgesSkipped: number;
  /** Of those, reads that asked the rest at half their deadline. */
  readHedgesLate: number;
}

export interface CoordinatorContext {
  readonly selfUrl: string;
  readonly replica: Replica;
  readonly transport: StoreTransport;
  readonly clock: HybridClock;
  readonly deadlines: DeadlineTimer;
  readonly requestTimeoutMs: number;
  readonly counters: CoordinatorCounters;
  /** Counts a failed replica request and logs it, rate-limited per peer. */
  readonly replicaFailed: (peer: string, err: unknown, what?: string) => void;
}

/** Sends a write to one replica; the local one is a direct call, no message. */
export function writeReplica(
  context: CoordinatorContext,
  peer: string,
  entry: Entry,
  deadlineMs: number,
): Promise<bigint | undefined> {
  return peer === context.selfUrl
    ? context.replica.write(entry)
    : context.transport.write(peer, entry, deadlineMs);
}

/** Reads a key from one replica; the local one is a direct call, no message. */
export function readReplica(
  context: CoordinatorContext,
  peer: string,
  key: Buffer,
  deadlineMs: number,
): Promise<Entry | undefined> {
  return peer === context.selfUrl ? context.replica.read(key) : context.transport.read(peer, key, deadlineMs);
}
