/**
 * The smallest correct Engine: a Map, sorted on scan. It is the oracle the
 * model-based tests compare the LSM engine against, and a stand-in for tests
 * of layers above storage.
 */
import { RingkvError } from '../util/errors.js';
import type { Engine, EngineStats, EntryCursor, ScanRange } from './engine.js';
import { type Entry, newer } from './entry/entry.js';
import { type PurgeFilter, type PurgeOptions, purged } from './purge.js';
import type { SnapshotInfo } from './snapshot.js';

const SCAN_BATCH = 64;

export class MemoryEngine implements Engine {
  // latin1 maps each byte to one UTF-16 unit, so string order equals byte order.
  readonly #entries = new Map<string, Entry>();
  #closed = false;
  #writes = 0;
  #reads = 0;

  async write(entry: Entry): Promise<void> {
    this.#checkOpen();
    this.#writes++;
    const id = entry.key.toString('latin1');
    this.#entries.set(id, newer(this.#entries.get(id), entry)!);
  }

  async get(key: Buffer): Promise<Entry | undefined> {
    this.#checkOpen();
    this.#reads++;
    return this.#entries.get(key.toString('latin1'));
  }

  scan(range: ScanRange): EntryCursor {
    this.#checkOpen();
    const start = range.start.toString('latin1');
    const end = range.end?.toString('latin1');
    const ids = [...this.#entries.keys()]
      .filter((id) => id >= start && (end === undefined || id < end))
      .sort();
    let index = 0;
    const entries = this.#entries;
    return {
      async next() {
        if (index >= ids.length) return undefined;
        const batch: Entry[] = [];
        while (index < ids.length && batch.length < SCAN_BATCH) {
          const entry = entries.get(ids[index++]!);
          if (entry) batch.push(entry);
        }
        return batch.length > 0 ? batch : undefined;
      },
      async close() {
        index = ids.length;
      },
    };
  }

  async flush(): Promise<void> {}
  async compact(): Promise<void> {}

  async snapshot(): Promise<SnapshotInfo> {
    throw new RingkvError('RINGKV_BAD_REQUEST', 'The in-memory engine keeps nothing on disk to snapshot');
  }

  async purge(filter: PurgeFilter, options: PurgeOptions = {}): Promise<void> {
    this.#checkOpen();
    options.signal?.throwIfAborted();
    for (const [id, entry] of this.#entries) {
      if (purged(filter, entry.key, 0, entry.key.length, entry.version)) this.#entries.delete(id);
    }
  }

  maxVersion(): bigint {
    let max = 0n;
    for (const entry of this.#entries.values()) if (entry.version > max) max = entry.version;
    return max;
  }

  stats(): EngineStats {
    return {
      writes: this.#writes,
      reads: this.#reads,
      walSyncs: 0,
      walWrites: 0,
      memtableBytes: 0,
      immutableMemtables: 0,
      flushes: 0,
      compactions: 0,
      flushFailures: 0,
      compactionFailures: 0,
      tablesPerLevel: [],
      tableBytes: 0,
      blockCacheHits: 0,
      blockCacheMisses: 0,
      writeStalls: 0,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #checkOpen(): void {
    if (this.#closed) throw new RingkvError('RINGKV_CLOSED', 'Engine is closed');
  }
}
