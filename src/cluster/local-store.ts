/**
 * LocalStore: the Store of a one-node cluster. Every request is answered by
 * the local engine alone, so `ack` and `from` are always 1 (the routes refuse
 * more, since the cluster has one node).
 *
 * Versions come from a hybrid logical clock, so two writes of one key are
 * ordered by when they were made even within one millisecond. TTLs are turned
 * into an absolute expiry with the same clock's wall time, which is what
 * isLive() is later compared against.
 *
 * A traced request's receipt names this node (`selfUrl`) as its one replica.
 */
import type { Engine, Entry, EntryCursor, ScanRange } from '../storage/index.js';
import { tombstoneEntry, valueEntry } from '../storage/index.js';
import { assert } from '../util/assert.js';
import type { HybridClock } from './clock.js';
import type { Receipt } from './receipt.js';
import type { PutOptions, ReplicaOptions, Store } from './store.js';

export class LocalStore implements Store {
  readonly clusterSize = 1;
  readonly #engine: Engine;
  readonly #clock: HybridClock;
  readonly #selfUrl: string;

  /** `selfUrl`: this node's URL, for receipts ('local' when left out). */
  constructor(engine: Engine, clock: HybridClock, options: { readonly selfUrl?: string } = {}) {
    this.#engine = engine;
    this.#clock = clock;
    this.#selfUrl = options.selfUrl ?? 'local';
  }

  async get(key: Buffer, options: ReplicaOptions): Promise<Entry | undefined> {
    assert(options.from === 1, 'A one-node store has one replica');
    const entry = await this.#engine.get(key);
    // After a restart the clock starts from wall time; seeing stored versions
    // keeps it from stamping below them should the wall clock have gone back.
    if (entry !== undefined) this.#clock.observe(entry.version);
    const receipt = options.receipt;
    if (receipt !== undefined) {
      receipt.answered(this.#selfUrl, entry);
      receipt.sealRead(entry, [this.#selfUrl]);
      receipt.repairDecided('none');
    }
    return entry;
  }

  async put(key: Buffer, value: Buffer, options: PutOptions): Promise<void> {
    assert(options.from === 1, 'A one-node store has one replica');
    const version = this.#clock.now();
    const expiresAtMs = options.ttlMs === undefined ? 0 : this.#clock.wallMs() + options.ttlMs;
    await this.#engine.write(valueEntry(key, version, value, expiresAtMs));
    if (options.receipt !== undefined) this.#wrote(options.receipt, version);
  }

  async delete(key: Buffer, options: ReplicaOptions): Promise<void> {
    assert(options.from === 1, 'A one-node store has one replica');
    const version = this.#clock.now();
    await this.#engine.write(tombstoneEntry(key, version));
    if (options.receipt !== undefined) this.#wrote(options.receipt, version);
  }

  scanLocal(range: ScanRange): EntryCursor {
    return this.#engine.scan(range);
  }

  status(): Record<string, unknown> {
    return { kind: 'local', engine: this.#engine.stats() };
  }

  close(): Promise<void> {
    return this.#engine.close();
  }

  #wrote(receipt: Receipt, version: bigint): void {
    receipt.beginWrite(version);
    receipt.wrote(this.#selfUrl, 'ok');
    receipt.sealWrite([this.#selfUrl]);
  }
}
