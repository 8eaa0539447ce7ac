/**
 * Merges sorted entry cursors into one: key order, and for a key present in
 * several sources only its newest version (compareVersions). Used by range
 * scans on the event loop; the compaction worker merges records in place
 * instead (record-merge.ts).
 *
 * Sources hand out batches; the merge keeps one batch per source and awaits
 * a refill only when a source's batch runs out, so the per-entry work is
 * synchronous heap steps with no promise per entry.
 */
import { compareBytes } from '../../util/bytes.js';
import type { EntryCursor } from '../engine.js';
import { compareVersions, type Entry } from '../entry/entry.js';
import { MinHeap } from './heap.js';

interface Head {
  entry: Entry;
  /** Index among the sources: the tie-break that keeps the heap's order total. */
  readonly rank: number;
}

/** Heads by key, then by rank. */
function headBefore(a: Head, b: Head): boolean {
  const c = compareBytes(a.entry.key, b.entry.key);
  return c < 0 || (c === 0 && a.rank < b.rank);
}

interface AsyncHead extends Head {
  readonly cursor: EntryCursor;
  batch: Entry[];
  index: number;
}

export interface MergeOptions {
  /** Entries per batch handed out (bounds the work of one call). */
  readonly batchMax: number;
  /** A batch closes once its keys and values pass this many bytes (bounds the memory of one call). */
  readonly batchBytesMax: number;
  /** Called with the merged newest version; return false to leave it out (e.g. tombstones). */
  readonly keep?: (entry: Entry) => boolean;
  /** Called once when the merged cursor is exhausted or closed. */
  readonly onClose?: () => void;
}

export function mergeCursors(cursors: readonly EntryCursor[], options: MergeOptions): EntryCursor {
  const heap = new MinHeap<AsyncHead>(headBefore);
  let started = false;
  let closed = false;

  async function advance(head: AsyncHead): Promise<boolean> {
    head.index++;
    if (head.index < head.batch.length) {
      head.entry = head.batch[head.index]!;
      return true;
    }
    const batch = await head.cursor.next();
    if (batch === undefined) return false;
    head.batch = batch;
    head.index = 0;
    head.entry = batch[0]!;
    return true;
  }

  async function start(): Promise<void> {
    started = true;
    const batches = await Promise.all(cursors.map((c) => c.next()));
    batches.forEach((batch, rank) => {
      if (batch !== undefined) heap.push({ entry: batch[0]!, rank, cursor: cursors[rank]!, batch, index: 0 });
    });
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    heap.items.length = 0;
    await Promise.all(cursors.map((c) => c.close()));
    options.onClose?.();
  }

  return {
    async next() {
      if (closed) return undefined;
      if (!started) await start();
      const out: Entry[] = [];
      let bytes = 0;
      while (out.length < options.batchMax && bytes < options.batchBytesMax && heap.items.length > 0) {
        const top = heap.items[0]!;
        let best = top.entry;
        // Step every source past this key, keeping the newest version.
        for (;;) {
          const head = heap.items[0];
          if (head === undefined || compareBytes(head.entry.key, best.key) !== 0) break;
          if (head !== top && compareVersions(head.entry, best) > 0) best = head.entry;
          if (await advance(head)) heap.siftTop();
          else heap.popTop();
        }
        if (options.keep === undefined || options.keep(best)) {
          out.push(best);
          bytes += best.key.length + best.value.length;
        }
      }
      if (out.length === 0) {
        await close();
        return undefined;
      }
      return out;
    },
    close,
  };
}
