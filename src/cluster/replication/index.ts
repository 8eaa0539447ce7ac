/**
 * The replication package: the cluster's Store (coordinator.ts), the replica
 * side peers call (replica.ts) and the cluster range (cluster-scan.ts).
 */
export { ClusterScanCursor, type ClusterScanOptions } from './cluster-scan.js';
export { ClusterStore, type ClusterStoreOptions } from './coordinator.js';
export type { ReplicaPlacement } from './placement.js';
export { RecentWrites, type RecentWritesOptions } from './recent-writes.js';
export { createReplica, Replica, type ReplicaOptions, type ReplicaStats } from './replica.js';
