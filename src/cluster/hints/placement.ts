/**
 * Where a hint goes at delivery: the nodes a write of its key goes to now,
 * as the coordinator picks them (the key's first `from` replicas on the
 * current ring, and its pending owners while the ring changes). The ring
 * may have changed since the hint was kept, so its peer may no longer be
 * one of them (handoff.ts reroutes the hint then).
 *
 * `from` is the hint's own (hint files record it since format version 2),
 * cut to the ring's size; a hint that does not record it (version 1) is
 * placed by the replication factor moves and anti-entropy keep, R =
 * min(size, 3).
 *
 *   new HintedHandoff({ ..., placement: hintPlacement(topology) });
 */
import { replicationFactor } from '../membership/index.js';
import type { ReplicaPlacement } from '../replication/index.js';

/** The placement function for `ring`; it answers undefined while the ring has no node. */
export function hintPlacement(
  ring: ReplicaPlacement,
): (key: Uint8Array, from: number | undefined) => readonly string[] | undefined {
  return (key, from) => {
    const size = ring.nodes.length;
    if (size === 0) return undefined;
    const count = Math.min(from ?? replicationFactor(size), size);
    const replicas = ring.replicas(key, count);
    const pending = ring.pendingReplicas?.(key, count) ?? [];
    return pending.length === 0 ? replicas : [...replicas, ...pending];
  };
}
