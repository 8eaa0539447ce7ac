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
import { MinHeap } from './heap.js';

/** A sorted source of records: next() moves `record` on, false at the end. */
export interface RecordSource {
  readonly record: RecordView;
  next(): boolean;
}

export class RecordMerge {
  readonly #sources: readonly RecordSource[];
  /** Indexes of sources with a current record, by key (then index). */
  readonly #heap: MinHeap<number>;
  /** Sources whose current record the last next() consumed. */
  readonly #consumed: number[] = [];

  constructor(sources: readonly RecordSource[]) {
    this.#sources = sources;
    this.#heap = new MinHeap((a, b) => {
      const c = sources[a]!.record.compareKey(sources[b]!.record);
      return c < 0 || (c === 0 && a < b);
    });
    for (let i = 0; i < sources.length; i++) this.#consumed.push(i);
  }

  /** The newest record of the next key, or undefined when every source is done. */
  next(): RecordView | undefined {
    const sources = this.#sources;
    const heap = this.#heap;
    for (const i of this.#consumed) if (sources[i]!.next()) heap.push(i);
    this.#consumed.length = 0;
    if (heap.items.length === 0) return undefined;
    const first = heap.items[0]!;
    heap.popTop();
    this.#consumed.push(first);
    let best = sources[first]!.record;
    while (heap.items.length > 0 && sources[heap.items[0]!]!.record.compareKey(best) === 0) {
      const i = heap.items[0]!;
      heap.popTop();
      this.#consumed.push(i);
      const candidate = sources[i]!.record;
      if (candidate.compareVersion(best) > 0) best = candidate;
    }
    return best;
  }
}
