/**
 * What the load did to each key, with times: every write (the value it
 * carried, when it was sent, when and how it ended), so that the end can
 * tell a lost write from one that was never acknowledged, and a stale read
 * from wrong data. Fed by the load client's onResult (test/support/load-client.ts),
 * which already judges each GET against the values its key may hold.
 *
 * Terms, as on the card:
 * - acknowledged: a PUT answered 201 or a DELETE answered 202;
 * - stale read: a GET (200 or 404) that returned neither the last write
 *   acknowledged before it was sent nor one sent since without an answer:
 *   an older value, or absent where a value was acknowledged;
 * - wrong data: a value that no request ever wrote to that key.
 */
import type { LoadResult } from '../support/load-client.js';

export interface WriteRecord {
  /** The PUT's value; null for a DELETE. */
  readonly value: string | null;
  readonly sentAtMs: number;
  readonly doneAtMs: number;
  readonly acknowledged: boolean;
  /** The status, or the failure kind when no answer came. */
  readonly outcome: string;
  readonly node: string;
}

export interface BadRead {
  readonly key: string;
  readonly read: string | null;
  readonly sentAtMs: number;
  readonly node: string;
  readonly kind: 'stale' | 'wrong';
  /** The last acknowledged write before the read was sent. */
  readonly expected: WriteRecord | undefined;
  /** What the run was doing (the abuse under way). */
  readonly phase: string;
}

export interface Totals {
  requests: number;
  byMethod: Record<string, number>;
  answered: number;
  acknowledgedWrites: number;
  /** Failures by status code ('504') or kind ('timeout', 'no-answer', 'unavailable'); bad reads are counted apart. */
  failed: Record<string, number>;
}

export class History {
  readonly #writes = new Map<string, WriteRecord[]>();
  readonly #written = new Map<string, Set<string>>();
  readonly badReads: BadRead[] = [];
  readonly totals: Totals = { requests: 0, byMethod: {}, answered: 0, acknowledgedWrites: 0, failed: {} };
  readonly #phase: () => string;

  constructor(phase: () => string) {
    this.#phase = phase;
  }

  /** LoadOptions.onResult. */
  readonly record = (result: LoadResult): void => {
    const totals = this.totals;
    totals.requests++;
    totals.byMethod[result.method] = (totals.byMethod[result.method] ?? 0) + 1;
    if (result.outcome === 'answered') totals.answered++;
    if (result.method === 'GET') {
      if (result.kind === 'value') this.#badRead(result);
      else if (result.outcome === 'failed') this.#fail(result);
      return;
    }
    if (result.value !== null) this.#valuesOf(result.key).add(result.value);
    const acknowledged = result.outcome === 'answered';
    if (acknowledged) totals.acknowledgedWrites++;
    else this.#fail(result);
    this.#writesOf(result.key).push({
      value: result.value,
      sentAtMs: result.sentAtMs,
      doneAtMs: result.doneAtMs,
      acknowledged,
      outcome: result.status === undefined ? (result.kind ?? 'failed') : String(result.status),
      node: result.node,
    });
  };

  /** Every write of `key`, in the order they were sent. */
  writes(key: string): readonly WriteRecord[] {
    return this.#writes.get(key) ?? [];
  }

  /** The last write of `key` acknowledged before `atMs` (undefined: none). */
  lastAcknowledged(key: string, atMs = Number.POSITIVE_INFINITY): WriteRecord | undefined {
    const writes = this.writes(key);
    for (let i = writes.length - 1; i >= 0; i--) {
      const write = writes[i]!;
      if (write.acknowledged && write.doneAtMs <= atMs) return write;
    }
    return undefined;
  }

  /** Whether any request ever wrote `value` to `key`. */
  wasWritten(key: string, value: string): boolean {
    return this.#valuesOf(key).has(value);
  }

  #badRead(result: LoadResult): void {
    const read = result.read ?? null;
    const kind = read !== null && !this.wasWritten(result.key, read) ? 'wrong' : 'stale';
    this.badReads.push({
      key: result.key,
      read,
      sentAtMs: result.sentAtMs,
      node: result.node,
      kind,
      expected: this.lastAcknowledged(result.key, result.sentAtMs),
      phase: this.#phase(),
    });
  }

  #fail(result: LoadResult): void {
    const reason = result.status === undefined ? (result.kind ?? 'failed') : String(result.status);
    this.totals.failed[reason] = (this.totals.failed[reason] ?? 0) + 1;
  }

  #writesOf(key: string): WriteRecord[] {
    let writes = this.#writes.get(key);
    if (writes === undefined) {
      writes = [];
      this.#writes.set(key, writes);
    }
    return writes;
  }

  #valuesOf(key: string): Set<string> {
    let values = this.#written.get(key);
    if (values === undefined) {
      values = new Set();
      this.#written.set(key, values);
    }
    return values;
  }
}
