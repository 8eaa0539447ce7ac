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
 *
 * The clock starts at the newest stored version only within its drift bound
 * (node.ts seedClock): restarted with its wall clock set back further, it
 * stamps below what the old run stored. Until it passes that version (and
 * any stamped above it since) each write reads its key first and is stamped
 * above the version held there, so a write answered now is never hidden by
 * an older one. The clock itself is not dragged ahead: the stored version
 * may come from a wrong clock.
 */
import type { Engine, Entry, EntryCursor, ScanRange } from '../storage/index.js';
import { tombstoneEntry, VERSION_MAX, valueEntry } from '../storage/index.js';
import { assert } from '../util/assert.js';
import { RingkvError } from '../util/errors.js';
import type { HybridClock } from './clock.js';
import type { Receipt } from './receipt.js';
import type { PutOptions, ReplicaOptions, Store } from './store.js';

export class LocalStore implements Store {
  readonly clusterSize = 1;
  readonly #engine: Engine;
  readonly #clock: HybridClock;
  readonly #selfUrl: string;
  /**
   * The newest version stored when the store opened, or stamped above it since: writes the clock
   * stamps at or below it check their key.
   */
  #storedMax: bigint;

  /** `selfUrl`: this node's URL, for receipts ('local' when left out). */
  constructor(engine: Engine, clock: HybridClock, options: { readonly selfUrl?: string } = {}) {
    this.#engine = engine;
    this.#clock = clock;
    this.#selfUrl = options.selfUrl ?? 'local';
    this.#storedMax = engine.maxVersion?.() ?? 0n;
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
    const version = await this.#stamp(key);
    const expiresAtMs = options.ttlMs === undefined ? 0 : this.#clock.wallMs() + options.ttlMs;
    await this.#engine.write(valueEntry(key, version, value, expiresAtMs));
    if (options.receipt !== undefined) this.#wrote(options.receipt, version);
  }

  async delete(key: Buffer, options: ReplicaOptions): Promise<void> {
    assert(options.from === 1, 'A one-node store has one replica');
    const version = await this.#stamp(key);
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

  /** A version for a write of `key`, above the clock's last and above what the key holds. */
  async #stamp(key: Buffer): Promise<bigint> {
    const version = this.#clock.now();
    if (version > this.#storedMax) return version;
    const held = await this.#engine.get(key);
    if (held === undefined || held.version < version) return version;
    if (this.#clock.observe(held.version)) return this.#clock.now();
    // As a cluster answers a version it cannot stamp above (write-round.ts): 504.
    if (held.version >= VERSION_MAX) {
      throw new RingkvError(
        'RINGKV_NOT_ENOUGH_REPLICAS',
        `The key holds version ${held.version}, the largest there is`,
      );
    }
    const stamped = held.version + 1n;
    // Above what the store opened with, perhaps: the clock may reach it before this key's version.
    if (stamped > this.#storedMax) this.#storedMax = stamped;
    return stamped;
  }

  #wrote(receipt: Receipt, version: bigint): void {
    receipt.beginWrite(version);
    receipt.wrote(this.#selfUrl, 'ok');
    receipt.sealWrite([this.#selfUrl]);
  }
}
