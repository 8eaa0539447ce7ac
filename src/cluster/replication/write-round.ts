/**
 * WriteRounds: a PUT or DELETE. The entry, stamped with a version from the
 * hybrid logical clock, goes to all `from` replicas at once; the write is
 * answered once `ack` stored it.
 *
 * - Conflicts (replica.ts explains them): a replica that already knew a
 *   version of the key at least as new answers with it; the clock observes
 *   it, the write is re-stamped and sent again to all `from` replicas, and
 *   only answers for the new version count. At most `conflictRetriesMax`
 *   times, then 504. Conflicts that arrive after the reply are only
 *   observed: the `ack` answers already were conflict-free.
 * - Nothing is cancelled: replicas that answer after the reply still apply
 *   the write, and every failure (before or after the reply) is handed to
 *   `onReplicaWriteFailed`, with the request's `from` (hinted handoff hooks
 *   in there, and places the hint by it).
 * - A traced write's receipt (../receipt.ts) shows the last round: its
 *   version and the replicas' answers counted for the reply.
 *
 *   await writes.write((version) => valueEntry(key, version, value, 0), replicas, ack, deadlineMs, { from });
 */
import type { Entry } from '../../storage/index.js';
import { RingkvError } from '../../util/errors.js';
import type { Receipt } from '../receipt.js';
import type { ReplicaOptions } from '../store.js';
import { type CoordinatorContext, writeReplica } from './coordinator-context.js';
import { Tally } from './tally.js';

/** A replica write failed: the peer, the entry, why, and the `from` of the request it was part of. */
export type ReplicaWriteFailed = (peer: string, entry: Entry, err: unknown, from: number) => void;

export class WriteRounds {
  readonly #context: CoordinatorContext;
  readonly #conflictRetriesMax: number;
  readonly #onReplicaWriteFailed: ReplicaWriteFailed | undefined;

  constructor(
    context: CoordinatorContext,
    options: {
      conflictRetriesMax: number;
      onReplicaWriteFailed: ReplicaWriteFailed | undefined;
    },
  ) {
    this.#context = context;
    this.#conflictRetriesMax = options.conflictRetriesMax;
    this.#onReplicaWriteFailed = options.onReplicaWriteFailed;
  }

  /**
   * Writes the entry `make` builds for a version, re-stamped on conflicts;
   * rejects with RINGKV_NOT_ENOUGH_REPLICAS. `request`: the client's
   * `from` (failures are reported with it) and a traced request's receipt,
   * which gets the last round's version and replicas. `raised`: how much
   * of `ack` pending owners added (a 504 says so).
   */
  async write(
    make: (version: bigint) => Entry,
    replicas: readonly string[],
    ack: number,
    deadlineMs: number,
    request: Pick<ReplicaOptions, 'from' | 'receipt'>,
    raised = 0,
  ): Promise<void> {
    const clock = this.#context.clock;
    for (let attempt = 0; ; attempt++) {
      const entry = make(clock.now());
      request.receipt?.beginWrite(entry.version);
      const conflict = await this.#round(entry, replicas, ack, deadlineMs, request, raised);
      if (conflict === undefined) return;
      if (!clock.observe(conflict)) {
        throw new RingkvError(
          'RINGKV_NOT_ENOUGH_REPLICAS',
          `A replica knows version ${conflict} of the key, too far ahead of this node's clock to follow`,
        );
      }
      if (attempt >= this.#conflictRetriesMax) {
        throw new RingkvError(
          'RINGKV_NOT_ENOUGH_REPLICAS',
          `Writes of the key kept conflicting: ${attempt + 1} attempts, the last one under version ${conflict}`,
        );
      }
      this.#context.counters.conflictRetries++;
    }
  }

  /**
   * Sends one version of a write to every replica. Resolves to undefined once
   * `ack` stored it without a conflict, or to the version of the first
   * conflict answered before that; rejects with RINGKV_NOT_ENOUGH_REPLICAS.
   */
  #round(
    entry: Entry,
    replicas: readonly string[],
    ack: number,
    deadlineMs: number,
    request: Pick<ReplicaOptions, 'from' | 'receipt'>,
    raised: number,
  ): Promise<bigint | undefined> {
    const context = this.#context;
    const receipt: Receipt | undefined = request.receipt;
    return new Promise((resolve, reject) => {
      const tally = new Tally({
        needed: ack,
        raised,
        total: replicas.length,
        deadlineMs,
        deadlines: context.deadlines,
        timeoutMs: context.requestTimeoutMs,
        onDone: (err, conflict) => {
          receipt?.sealWrite(replicas);
          if (err === undefined) resolve(conflict);
          else reject(err);
        },
      });
      for (const peer of replicas) {
        void writeReplica(context, peer, entry, deadlineMs).then(
          (conflict) => {
            if (conflict === undefined) {
              if (!tally.done) receipt?.wrote(peer, 'ok');
              tally.succeed();
              return;
            }
            context.counters.conflicts++;
            // Late conflicts are observed only: the reply's `ack` answers were conflict-free.
            if (tally.done) context.clock.observe(conflict);
            else {
              receipt?.wrote(peer, 'conflict');
              tally.finish(undefined, conflict);
            }
          },
          (err: unknown) => {
            context.replicaFailed(peer, err);
            this.#onReplicaWriteFailed?.(peer, entry, err, request.from);
            if (!tally.done) receipt?.wrote(peer, 'failed');
            tally.fail(peer, err);
          },
        );
      }
    });
  }
}
