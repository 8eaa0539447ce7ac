/**
 * What the simulation's clients did and saw, and the check that every read
 * saw a value it was allowed to see.
 *
 * Time here is a sequence number taken at each invocation and each
 * completion, in the order they happened in the one process: exact real-time
 * order, with no ties.
 *
 * A write (PUT, or DELETE: value undefined) is acknowledged once its store
 * call resolved (201/202). One that failed (504) or whose coordinator lost
 * power before answering is indeterminate: it may have reached replicas, and
 * anti-entropy, hints and read repair may spread it at any later time, with
 * a version that may even beat later writes (their quorum need not meet the
 * replica it reached). So its acknowledgement time is taken as infinite.
 *
 * The rule, for a read of a key invoked at r0 and answered at r1: it may
 * return the value of a write w (or absent, for a delete or for the key's
 * initial state, a pseudo-write acknowledged at time 0) when
 *
 *   - w was invoked before r1, and
 *   - no write w2 acknowledged before r0 was invoked after w was
 *     acknowledged (w2 would supersede w).
 *
 * That is: the last write acknowledged before the read began, or any write
 * concurrent with it, with the read, or indeterminate. Reading anything else
 * (an older value, a value never written, one not yet written) breaks
 * API.md's promise for ack + ack > from: a quorum read returns the last
 * acknowledged write. Values are unique per write, so a value names its write.
 *
 * With M(r) = the latest invocation among writes acknowledged before r0,
 * w2 supersedes w iff M(r) > w.ack: one pass over the key's writes per read.
 */

/** A write as the history keeps it. `ackSeq` stays undefined unless it was acknowledged. */
export interface WriteRecord {
  readonly key: string;
  /** undefined: a DELETE. */
  readonly value: string | undefined;
  readonly invokeSeq: number;
  ackSeq: number | undefined;
  outcome: 'pending' | 'ok' | 'failed' | 'lost-coordinator';
}

export interface ReadRecord {
  readonly key: string;
  readonly invokeSeq: number;
  readonly completeSeq: number;
  /** undefined: absent (404). */
  readonly value: string | undefined;
  readonly coordinator: string;
}

export interface ReadViolation {
  readonly read: ReadRecord;
  /** Values the read could have returned (`<absent>` for none). */
  readonly allowed: readonly string[];
  /** Why the value it returned is not one of them. */
  readonly reason: string;
}

export const ABSENT = '<absent>';

export class History {
  #seq = 0;
  readonly #writes = new Map<string, WriteRecord[]>();
  readonly #byValue = new Map<string, WriteRecord>();
  readonly reads: ReadRecord[] = [];

  /** A new point in time. */
  tick(): number {
    return ++this.#seq;
  }

  invokeWrite(key: string, value: string | undefined): WriteRecord {
    const record: WriteRecord = { key, value, invokeSeq: this.tick(), ackSeq: undefined, outcome: 'pending' };
    if (value !== undefined) {
      if (this.#byValue.has(value)) throw new Error(`Value written twice: ${value}`);
      this.#byValue.set(value, record);
    }
    const list = this.#writes.get(key) ?? [];
    list.push(record);
    this.#writes.set(key, list);
    return record;
  }

  acknowledge(write: WriteRecord): void {
    if (write.outcome !== 'pending') return;
    write.ackSeq = this.tick();
    write.outcome = 'ok';
  }

  /** The write failed (504), or its coordinator lost power: indeterminate from now on. */
  abandon(write: WriteRecord, outcome: 'failed' | 'lost-coordinator'): void {
    if (write.outcome === 'pending') write.outcome = outcome;
  }

  keys(): string[] {
    return [...this.#writes.keys()].sort();
  }

  writesOf(key: string): readonly WriteRecord[] {
    return this.#writes.get(key) ?? [];
  }

  get writes(): WriteRecord[] {
    return [...this.#writes.values()].flat();
  }

  /** Records a read that answered; returns its violation, if it read what it may not. */
  completeRead(
    key: string,
    invokeSeq: number,
    value: string | undefined,
    coordinator: string,
  ): ReadViolation | undefined {
    const read: ReadRecord = { key, invokeSeq, completeSeq: this.tick(), value, coordinator };
    this.reads.push(read);
    return this.check(read);
  }

  /** Whether `read` returned a value the rule above allows. */
  check(read: ReadRecord): ReadViolation | undefined {
    const writes = this.writesOf(read.key);
    let supersededBelow = 0;
    for (const w of writes) {
      if (w.ackSeq !== undefined && w.ackSeq < read.invokeSeq && w.invokeSeq > supersededBelow) {
        supersededBelow = w.invokeSeq;
      }
    }
    const allowedWrite = (w: WriteRecord): boolean =>
      w.invokeSeq < read.completeSeq && (w.ackSeq ?? Number.POSITIVE_INFINITY) >= supersededBelow;
    const initialAllowed = supersededBelow === 0;
    const allowed = writes.filter(allowedWrite).map((w) => w.value ?? ABSENT);
    if (initialAllowed) allowed.push(ABSENT);
    const unique = [...new Set(allowed)];
    if (read.value === undefined) {
      if (unique.includes(ABSENT)) return undefined;
      return {
        read,
        allowed: unique,
        reason: 'absent, though an acknowledged write of the key precedes the read',
      };
    }
    const written = this.#byValue.get(read.value);
    if (written === undefined || written.key !== read.key) {
      return { read, allowed: unique, reason: 'a value never written to this key' };
    }
    if (allowedWrite(written)) return undefined;
    if (written.invokeSeq >= read.completeSeq) {
      return { read, allowed: unique, reason: 'a value written only after the read answered' };
    }
    return {
      read,
      allowed: unique,
      reason: 'a value that a write acknowledged before the read had superseded',
    };
  }
}

/** One line about a violation, for the report. */
export function describeViolation(
  v: ReadViolation,
  show: (value: string) => string = (value) => value,
): string {
  const seen = v.read.value === undefined ? ABSENT : show(v.read.value);
  const shown = v.allowed.map((value) => (value === ABSENT ? value : show(value)));
  const allowed = shown.length > 6 ? ['...', ...shown.slice(-6)] : shown;
  return `key ${v.read.key}: read [${v.read.invokeSeq}, ${v.read.completeSeq}] through ${v.read.coordinator} returned ${seen}: ${v.reason}; allowed: ${allowed.join(', ')}`;
}
