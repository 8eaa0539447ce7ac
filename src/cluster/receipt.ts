/**
 * Receipt: how one traced request (`trace=1`) was answered, filled in by the
 * Store as the request runs and read by the HTTP route when it answers:
 * which replicas answered and how, the winning version, and for a read
 * whether a read repair was started.
 *
 * A request that does not ask for a trace has no Receipt: the store's code
 * paths test `receipt !== undefined` and do nothing more, so untraced
 * requests allocate nothing for it.
 *
 * What a receipt says is fixed when the reply is decided (seal): answers
 * that come later are not in it (those replicas show as `pending`). For a
 * read, the repair is decided once every replica asked has answered; when
 * that happens in the same turn as the reply (the usual case), the receipt
 * says `started`, `skipped` or `none`, otherwise `pending`.
 *
 * Replica outcomes, in the order the replicas answered (then the pending):
 * - `ok`: stored the write; for a read, answered the winning version (or,
 *   like every other, none);
 * - `stale`: answered an older version than the winner;
 * - `missing`: answered no version while another replica had one;
 * - `conflict`: already held a newer version of the key than the write
 *   (a write round that met one is stamped again; the receipt shows the last);
 * - `failed`: an error, a timeout, a peer down, a damaged copy;
 * - `pending`: asked, and had not answered when the reply was decided.
 *
 *   const receipt = new Receipt();
 *   await store.get(key, { ack: 2, from: 3 }, receipt);
 *   receipt.version; receipt.replicas; receipt.readRepair;
 */
import type { Entry } from '../storage/index.js';
import { compareVersions } from '../storage/index.js';

export type ReplicaOutcome = 'ok' | 'stale' | 'missing' | 'conflict' | 'failed' | 'pending';

/**
 * `started`: the newest version is being written back to at least one
 * replica; `skipped`: one needed it but too many repairs were under way;
 * `none`: nothing to repair; `pending`: not decided when the reply was.
 */
export type ReadRepairOutcome = 'started' | 'skipped' | 'none' | 'pending';

export interface ReplicaReport {
  /** The replica's URL, as on the ring. */
  readonly node: string;
  outcome: ReplicaOutcome;
}

interface ReadAnswerSeen {
  readonly node: string;
  readonly entry: Entry | undefined;
  readonly failed: boolean;
}

export class Receipt {
  /** The winning version of a read (undefined: no replica had one), or the version a write was stored under. */
  version: bigint | undefined = undefined;
  /** Each replica asked, in the order it answered, then those that had not. */
  readonly replicas: ReplicaReport[] = [];
  /** For reads only; undefined for writes. */
  readRepair: ReadRepairOutcome | undefined = undefined;
  #sealed = false;
  /** A read's answers until it is sealed: outcomes depend on the winner. */
  #seen: ReadAnswerSeen[] = [];

  /** Whether the reply was decided: what the receipt says no longer changes (but a pending repair's outcome). */
  get sealed(): boolean {
    return this.#sealed;
  }

  /** A read's replica answered `entry` (undefined: none). */
  answered(node: string, entry: Entry | undefined): void {
    if (!this.#sealed) this.#seen.push({ node, entry, failed: false });
  }

  /** A read's replica failed. */
  readFailed(node: string): void {
    if (!this.#sealed) this.#seen.push({ node, entry: undefined, failed: true });
  }

  /** A read's reply is decided with `winner`; `asked` are the replicas asked so far. */
  sealRead(winner: Entry | undefined, asked: readonly string[]): void {
    if (this.#sealed) return;
    this.#sealed = true;
    this.version = winner?.version;
    for (const seen of this.#seen)
      this.replicas.push({ node: seen.node, outcome: readOutcome(seen, winner) });
    this.#seen = [];
    this.#addPending(asked);
    this.readRepair = 'pending';
  }

  /** The read's repair was decided (after sealRead). */
  repairDecided(outcome: Exclude<ReadRepairOutcome, 'pending'>): void {
    if (this.readRepair === 'pending') this.readRepair = outcome;
  }

  /** A write round begins under `version`: what an earlier round (a conflict) saw is dropped. */
  beginWrite(version: bigint): void {
    this.version = version;
    this.replicas.length = 0;
    this.#sealed = false;
  }

  /** A write's replica answered (or failed). */
  wrote(node: string, outcome: 'ok' | 'conflict' | 'failed'): void {
    if (!this.#sealed) this.replicas.push({ node, outcome });
  }

  /** A write round's outcome is decided; `replicas` are those it was sent to. */
  sealWrite(replicas: readonly string[]): void {
    if (this.#sealed) return;
    this.#sealed = true;
    this.#addPending(replicas);
  }

  #addPending(asked: readonly string[]): void {
    for (const node of asked) {
      if (!this.replicas.some((report) => report.node === node))
        this.replicas.push({ node, outcome: 'pending' });
    }
  }
}

function readOutcome(seen: ReadAnswerSeen, winner: Entry | undefined): ReplicaOutcome {
  if (seen.failed) return 'failed';
  if (seen.entry === undefined) return winner === undefined ? 'ok' : 'missing';
  return winner === undefined || compareVersions(seen.entry, winner) >= 0 ? 'ok' : 'stale';
}
