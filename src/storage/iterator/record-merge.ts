/**
 * RecordMerge: the compaction worker's merge of sorted tables, record by
 * record in place (entry/record.ts): key order, and for a key present in
 * several sources only its newest version, ordered as compareVersions
 * orders entries. Nothing is allocated per record.
 *
 * The record next() returns lives in its source's buffer, so the sources it
 * came from advance at the start of the following next(), not before: the
 * caller copies the record (TableWriter.addRecord) in between.
 *
 *   const merge = new RecordMerge(paths.map((p) => new TableRecordScan(p)));
 *   for (let r = merge.next(); r !== undefined; r = merge.next()) writer.addRecord(r);
 */
import type { RecordView } from '../entry/record.js';

/** A sorted source of records: next() moves `record` on, false at the end. */
export interface RecordSource {
  readonly record: RecordView;
  next(): boolean;
}

export class RecordMerge {
  readonly #sources: readonly RecordSource[];
  /** Indexes of sources with a current record, a binary min-heap by key (then index). */
  readonly #heap: number[] = [];
  /** Sources whose current record the last next() consumed. */
  readonly #consumed: number[] = [];

  constructor(sources: readonly RecordSource[]) {
    this.#sources = sources;
    for (let i = 0; i < sources.length; i++) this.#consumed.push(i);
  }

  /** The newest record of the next key, or undefined when every source is done. */
  next(): RecordView | undefined {
    const sources = this.#sources;
    for (const i of this.#consumed) if (sources[i]!.next()) this.#push(i);
    this.#consumed.length = 0;
    if (this.#heap.length === 0) return undefined;
    const first = this.#pop();
    this.#consumed.push(first);
    let best = sources[first]!.record;
    while (this.#heap.length > 0 && sources[this.#heap[0]!]!.record.compareKey(best) === 0) {
      const i = this.#pop();
      this.#consumed.push(i);
      const candidate = sources[i]!.record;
      if (candidate.compareVersion(best) > 0) best = candidate;
    }
    return best;
  }

  #less(a: number, b: number): boolean {
    const c = this.#sources[a]!.record.compareKey(this.#sources[b]!.record);
    return c < 0 || (c === 0 && a < b);
  }

  #push(source: number): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(source);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#less(heap[parent]!, source)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = source;
  }

  #pop(): number {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    const n = heap.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= n) break;
        const right = left + 1;
        const child = right < n && this.#less(heap[right]!, heap[left]!) ? right : left;
        if (this.#less(last, heap[child]!)) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
