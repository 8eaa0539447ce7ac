/**
 * ReadRepair: once every replica a read asked has answered (late ones too),
 * the newest entry is written back, in the background, to those that
 * answered an older one or none; anti-entropy covers the replicas not asked.
 *
 * - At most `inFlightMax` repairs are under way: beyond that they are
 *   skipped (counted), so that a burst of stale reads cannot queue
 *   unbounded background writes; anti-entropy catches up later.
 * - A repair's conflict answer needs nothing: the replica keeps the newest
 *   version either way. Failures are counted and logged.
 *
 *   repair.repair(key, [{ peer: a, entry: newest }, { peer: b, entry: undefined }]); // writes newest to b
 */
import type { Entry } from '../../storage/index.js';
import { compareVersions, newer } from '../../storage/index.js';
import { type CoordinatorContext, writeReplica } from './coordinator-context.js';

/**
 * What repair() did: `started` writes to at least one replica, `skipped`
 * every write it needed (too many under way), or `none` was needed.
 */
export type RepairOutcome = 'started' | 'skipped' | 'none';

/** One replica's answer to a read; `entry` undefined for none, or for a copy it could not read. */
export interface ReadAnswer {
  readonly peer: string;
  readonly entry: Entry | undefined;
}

export class ReadRepair {
  readonly #context: CoordinatorContext;
  readonly #inFlightMax: number;
  /** Nothing is repaired once the store closed. */
  readonly #isClosed: () => boolean;
  #inFlight = 0;

  constructor(context: CoordinatorContext, options: { inFlightMax: number; isClosed: () => boolean }) {
    this.#context = context;
    this.#inFlightMax = options.inFlightMax;
    this.#isClosed = options.isClosed;
  }

  /** Repairs under way now, for status(). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Writes the newest answer back to the replicas that answered an older version or none. */
  repair(key: Buffer, answers: readonly ReadAnswer[]): RepairOutcome {
    const context = this.#context;
    let newest: Entry | undefined;
    for (const answer of answers) newest = newer(newest, answer.entry);
    if (newest === undefined || this.#isClosed()) return 'none';
    let outcome: RepairOutcome = 'none';
    for (const answer of answers) {
      if (answer.entry !== undefined && compareVersions(answer.entry, newest) >= 0) continue;
      if (this.#inFlight >= this.#inFlightMax) {
        context.counters.readRepairsSkipped++;
        if (outcome === 'none') outcome = 'skipped';
        continue;
      }
      outcome = 'started';
      this.#inFlight++;
      context.counters.readRepairs++;
      const peer = answer.peer;
      void writeReplica(context, peer, newest, Date.now() + context.requestTimeoutMs).then(
        () => {
          this.#inFlight--;
        },
        (err: unknown) => {
          this.#inFlight--;
          context.counters.readRepairFailures++;
          context.replicaFailed(peer, err, `Read repair of key ${_keyText(key)}`);
        },
      );
    }
    return outcome;
  }
}

/** A key for a log line: printable as is, else hex; cut to a sane length. */
function _keyText(key: Buffer): string {
  const text = /^[\x20-\x7e]*$/.test(key.toString('latin1'))
    ? key.toString('latin1')
    : `0x${key.toString('hex')}`;
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}
