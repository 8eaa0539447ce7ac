/**
 * ReplicaPlacement: where the coordinator sends a key's requests. A plain
 * Ring is one (a cluster whose membership never changes); the membership's
 * Topology (cluster/membership/topology.ts) is the other, whose rings change
 * as nodes join and leave.
 *
 * - replicas(key, from): the key's first `from` replicas on the current
 *   ring. Reads ask them; a write counts `ack` among them.
 * - pendingReplicas(key, from), while the ring is changing: nodes that get
 *   the write too (future owners during a move, former ones just after it).
 *   Each of them that is up raises the acknowledgements the write needs by
 *   one, so its answer never stands in for a current replica's: the write
 *   then reaches `ack` replicas of the current ring and `ack` of the future
 *   one, and quorum reads see it on either side of the flip (Cassandra's
 *   pending ranges). One that is down gets the write on the side (a hint if
 *   it fails) and raises nothing, so a dead new owner costs no availability.
 */
export interface ReplicaPlacement {
  /** The nodes of the current ring: the cluster's size, the default and largest `from`. */
  readonly nodes: readonly string[];
  replicas(key: Uint8Array, from: number): readonly string[];
  pendingReplicas?(key: Uint8Array, from: number): readonly string[];
}
