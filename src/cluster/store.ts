/**
 * Store: what the HTTP routes call to read and write keys. A single node uses
 * LocalStore (local-store.ts); the cluster supplies one that replicates each
 * request to `from` nodes and answers after `ack` of them.
 *
 * Contract, for every implementation:
 * - get() resolves to the newest version among the replicas that answered,
 *   tombstones and expired values included; the route decides 200 or 404.
 * - put() and delete() resolve once `ack` replicas stored the write.
 * - Fewer than `ack` answers before the deadline reject with
 *   RingkvError('RINGKV_NOT_ENOUGH_REPLICAS'), which the server maps to 504.
 * - The routes have validated the options: 1 <= ack <= from <= clusterSize.
 * - Calls may overlap; calls after close() reject with RINGKV_CLOSED.
 * - get(), put() and delete() given a Receipt (options.receipt, receipt.ts)
 *   fill it in before they settle: the replicas and their outcomes, the version, the read
 *   repair. Without one they do no tracing work at all.
 */
import type { Entry, EntryCursor, ScanRange } from '../storage/index.js';
import type { Receipt } from './receipt.js';

export interface ReplicaOptions {
  /** Replicas that must answer before the request succeeds. */
  readonly ack: number;
  /** Replicas the request goes to: a prefix of the key's replica list. */
  readonly from: number;
  /** A traced request's receipt, filled in by the store; absent for the others. */
  readonly receipt?: Receipt | undefined;
}

export interface PutOptions extends ReplicaOptions {
  /** The value reads as absent this many ms after the write; absent: never expires. */
  readonly ttlMs?: number | undefined;
}

export interface Store {
  /** Nodes in the cluster: the default and the maximum of `from`. */
  readonly clusterSize: number;
  /** The newest version of `key` (tombstone or expired included), or undefined when no replica has one. */
  get(key: Buffer, options: ReplicaOptions): Promise<Entry | undefined>;
  put(key: Buffer, value: Buffer, options: PutOptions): Promise<void>;
  /** Writes a tombstone; deleting an absent key succeeds too. */
  delete(key: Buffer, options: ReplicaOptions): Promise<void>;
  /** This node's entries in [start, end), key order, tombstones and expired included; must be closed. */
  scanLocal(range: ScanRange): EntryCursor;
  /**
   * The whole cluster's entries in [start, end): each key once, its newest
   * version across replicas. Left out by stores for which that equals
   * scanLocal (a node on its own).
   */
  scanCluster?(range: ScanRange): EntryCursor;
  /** JSON-ready facts for /v0/status. */
  status(): Record<string, unknown>;
  /** Finishes in-flight work and makes every acknowledged write durable. */
  close(): Promise<void>;
}
