/**
 * The shape of a node's /v0/status as its readers rely on it, checked in one
 * place: the client's status() and the dashboard's view of each member take
 * an answer as a node's status by the same rule.
 */

/** /v0/status as the node sends it; the fields named here are the ones readers use. */
export interface NodeStatus {
  readonly node: string;
  readonly ready: boolean;
  readonly cluster: readonly string[];
  readonly clusterSize: number;
  readonly [field: string]: unknown;
}

/** Whether a parsed /v0/status has the fields NodeStatus promises. */
export function isNodeStatus(value: unknown): value is NodeStatus {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const status = value as Record<string, unknown>;
  return (
    typeof status.node === 'string' &&
    typeof status.ready === 'boolean' &&
    Array.isArray(status.cluster) &&
    status.cluster.every((url) => typeof url === 'string') &&
    typeof status.clusterSize === 'number'
  );
}
