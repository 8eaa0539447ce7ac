/**
 * A data directory a single node used (no --cluster, no --join) is not
 * taken into a cluster by `--cluster` or `--join`: refused, one line, exit 2, before
 * any file of a cluster's is written, so the node starts alone again as it was.
 *
 * Why refuse rather than warn and go on: its keys were written to this node
 * alone. In the new cluster the other replicas of each key would not hold
 * it: a quorum read could answer 404 for a stored key until anti-entropy
 * copied it, and a key whose first replicas (limits.antiEntropyReplicationFactorMax)
 * leave this node out would never be copied and would be dropped by the
 * cleanup after the next move (a joining node's too: the cleanup after its
 * join drops what falls outside its new ranges). Refusing loses nothing; `ringkv export` on
 * the node alone and `ringkv import` into the cluster place every key on its
 * replicas. It is also what docs/api.md says of --cluster: used once, on an
 * empty data directory.
 *
 * Signs, read before the cluster writes its own files: no MEMBERSHIP (a
 * member has one), no BIRTH (written by every node that ran in a cluster,
 * and by `ringkv restore`, whose directory is meant for --cluster), and at
 * least one entry in the engine (a single node that stored nothing has
 * nothing to lose).
 */
import { BIRTH_FILE } from '../cluster/antientropy/index.js';
import { MEMBERSHIP_FILE } from '../cluster/membership/index.js';
import type { Engine, Vfs } from '../storage/index.js';
import { RingkvError } from '../util/errors.js';

export async function refuseSingleNodeData(
  dataDir: string,
  context: { engine: Engine; vfs: Vfs },
): Promise<void> {
  const names = await context.vfs.list(dataDir);
  if (names.includes(MEMBERSHIP_FILE) || names.includes(BIRTH_FILE)) return;
  if (await isEmpty(context.engine)) return;
  throw new RingkvError(
    'RINGKV_CONFIG',
    `Data directory ${dataDir} holds a single node's keys (it ran without --cluster or --join): a node starts a cluster (--cluster) or joins one (--join) on an empty directory only, since the other nodes would not hold these keys; to bring them into a cluster, export them from this node alone (ringkv export) and import them into the cluster (ringkv import)`,
  );
}

async function isEmpty(engine: Engine): Promise<boolean> {
  const cursor = engine.scan({ start: Buffer.alloc(0) });
  try {
    // The first batch is never empty (EntryCursor): one call answers.
    return (await cursor.next()) === undefined;
  } finally {
    await cursor.close();
  }
}
