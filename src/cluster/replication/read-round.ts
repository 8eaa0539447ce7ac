/**
 * ReadRounds: a GET. It asks `ack` of the key's first `from` replicas (the
 * local one first, then peers that are up, in ring order) and answers once
 * `ack` answered, with the newest version among those answers. Any `ack` of
 * the `from` replicas meet every `W` that stored a write when
 * ack + W > from, so asking more would only add messages.
 *
 * - A replica that fails is replaced by the next one at once.
 * - Hedging: if the reply is still missing after `hedgeMs`, the remaining
 *   replicas are asked too, for at most limits.readHedgeShare of reads:
 *   under overload every read is slow, and hedging them all would only add
 *   load. A read whose hedge the budget refused still asks the rest at half
 *   its deadline: a replica that hangs without failing (a stopped process)
 *   must not turn reads into 504s while enough others are up.
 * - When every replica asked has answered (late ones too), the answers go
 *   to `repair` (read-repair.ts). A replica that could not read its copy (a
 *   damaged block) counts there as one that answered none.
 * - A read whose only replica is this node, and whose copy it cannot read,
 *   fails with that damage itself (503, as on a node on its own: the client
 *   is told no more, the node's log names the file), not with a 504, and
 *   with no receipt: no other replica could have answered.
 * - A traced read's receipt records the answers counted for the reply, is
 *   sealed with the reply, and learns the repair's outcome when it is made.
 *
 *   const entry = await reads.read(key, replicas, ack, deadlineMs, receipt); // receipt: undefined untraced
 */
import { limits } from '../../config/limits.js';
import type { Entry } from '../../storage/index.js';
import { newer } from '../../storage/index.js';
import { expireAt } from '../../util/deadlines.js';
import { isRingkvError, type RingkvError } from '../../util/errors.js';
import type { Receipt } from '../receipt.js';
import { type CoordinatorContext, readReplica } from './coordinator-context.js';
import type { ReadAnswer, RepairOutcome } from './read-repair.js';
import { Tally } from './tally.js';

export class ReadRounds {
  readonly #context: CoordinatorContext;
  readonly #hedgeMs: number;
  readonly #repair: (key: Buffer, answers: readonly ReadAnswer[]) => RepairOutcome;
  /** Hedges that may be made now: refilled by limits.readHedgeShare per read, up to limits.readHedgeBurst. */
  #hedgeBudget: number = limits.readHedgeBurst;

  constructor(
    context: CoordinatorContext,
    options: { hedgeMs: number; repair: (key: Buffer, answers: readonly ReadAnswer[]) => RepairOutcome },
  ) {
    this.#context = context;
    this.#hedgeMs = options.hedgeMs;
    this.#repair = options.repair;
  }

  /**
   * Resolves to the newest of the first `ack` answers; rejects with
   * RINGKV_NOT_ENOUGH_REPLICAS. A `receipt` is filled in before it settles.
   */
  read(
    key: Buffer,
    replicas: readonly string[],
    ack: number,
    deadlineMs: number,
    receipt: Receipt | undefined,
  ): Promise<Entry | undefined> {
    const context = this.#context;
    const { counters, deadlines } = context;
    const candidates = this.#order(replicas);
    this.#hedgeBudget = Math.min(limits.readHedgeBurst, this.#hedgeBudget + limits.readHedgeShare);
    return new Promise((resolve, reject) => {
      const answers: ReadAnswer[] = [];
      let newest: Entry | undefined;
      let asked = 0;
      let settled = 0;
      /** This node's copy could not be read (a damaged file). */
      let ownDamage: RingkvError | undefined;
      const tally = new Tally({
        needed: ack,
        total: candidates.length,
        deadlineMs,
        deadlines,
        timeoutMs: context.requestTimeoutMs,
        onDone: (err) => {
          deadlines.remove(hedge);
          deadlines.remove(lateHedge);
          if (err !== undefined && ownDamage !== undefined && candidates.length === 1) {
            reject(ownDamage);
            return;
          }
          if (receipt !== undefined) receipt.sealRead(newest, candidates.slice(0, asked));
          if (err === undefined) resolve(newest);
          else reject(err);
        },
      });
      const settle = (): void => {
        // Nobody more is asked once the tally is done, so this is the last answer.
        if (++settled === asked && tally.done) {
          const repaired = this.#repair(key, answers);
          receipt?.repairDecided(repaired);
        }
      };
      const ask = (peer: string): void => {
        asked++;
        void readReplica(context, peer, key, deadlineMs).then(
          (entry) => {
            if (entry !== undefined) context.clock.observe(entry.version);
            answers.push({ peer, entry });
            // INVARIANT: `newest` covers the answers counted so far, so the reply is the newest of the first `ack`.
            if (!tally.done) {
              newest = newer(newest, entry);
              receipt?.answered(peer, entry);
            }
            tally.succeed();
            settle();
          },
          (err: unknown) => {
            context.replicaFailed(peer, err);
            // A replica that cannot read its copy (a damaged block) gets the newest one written back.
            if (isRingkvError(err, 'RINGKV_CORRUPTION')) {
              answers.push({ peer, entry: undefined });
              if (peer === context.selfUrl) ownDamage = err;
            }
            if (!tally.done) receipt?.readFailed(peer);
            tally.fail(peer, err);
            // A replacement for the failed replica, while the reply still needs one.
            if (!tally.done && asked < candidates.length) ask(candidates[asked]!);
            settle();
          },
        );
      };
      const askRest = (): void => {
        while (!tally.done && asked < candidates.length) ask(candidates[asked]!);
      };
      const startMs = Date.now();
      const lateHedge = expireAt(startMs + Math.max(this.#hedgeMs, (deadlineMs - startMs) / 2), () => {
        if (tally.done) return;
        counters.readHedgesLate++;
        askRest();
      });
      const hedge = expireAt(startMs + this.#hedgeMs, () => {
        if (tally.done) return;
        if (this.#hedgeBudget < 1) {
          counters.readHedgesSkipped++;
          deadlines.add(lateHedge);
          return;
        }
        this.#hedgeBudget--;
        counters.readHedges++;
        askRest();
      });
      while (asked < ack) ask(candidates[asked]!);
      if (!tally.done && asked < candidates.length) deadlines.add(hedge);
    });
  }

  /** The order a read asks replicas in: itself (no message), then peers that are up, then the rest. */
  #order(replicas: readonly string[]): string[] {
    const { selfUrl, transport } = this.#context;
    const order: string[] = [];
    if (replicas.includes(selfUrl)) order.push(selfUrl);
    for (const peer of replicas) if (peer !== selfUrl && transport.isUp(peer)) order.push(peer);
    for (const peer of replicas) if (peer !== selfUrl && !transport.isUp(peer)) order.push(peer);
    return order;
  }
}
