/**
 * IndexedEngine: the node's engine, with anti-entropy's hash tree kept
 * current on every write (in the manner of Riak's active anti-entropy), so
 * that an exchange between agreeing replicas compares digests and reads no
 * entry, and one between disagreeing replicas reads only differing buckets.
 *
 * It wraps the node's engine (an Engine decorator), so every write of the
 * node goes through it: replica writes, hint deliveries, anti-entropy pulls,
 * streamed moves, imports. Beside the store it keeps:
 *
 * - the index: a second engine, keyed by hash32(key) (u32 big-endian) then
 *   the key, holding each key's newest (version, kind) and, as its value, a
 *   hash of the value the store holds (indexValue, scan.ts).
 *   Ordered by hash, a ring arc or a bucket is one contiguous range of it.
 *   It never ages anything out (no tombstone grace), and its writes are
 *   not logged: it is rebuilt from the store whenever it may be behind.
 * - arc digests (arc-digests.ts): (count, h1, h2) per ring arc, in memory.
 *
 * A write: the store first; then, serialized per key, old = index.get; if
 * the new entry is newer (version, then a tombstone over a value), the index
 * takes it and its arc's digest loses old's hashes and gains the new ones.
 * At old's version and kind with another value hash, the store kept the
 * winner of the two (compareVersions: the larger value, then the later
 * expiry; valueHash covers both), which may be either: the index
 * takes the hash of the store's entry if it is not the one held. The index
 * part never fails the write: a failure there is logged and rebuilds the
 * index.
 *
 * States (stats().state):
 *   building   the index is copied from the store (paced); writes go to the
 *              new index as they come; no digests
 *   digesting  arc digests computed from the index, hash range by hash
 *              range: the range being read holds back writes of its keys
 *              for that moment, ranges done take writes' changes as they come
 *   waiting    the index is current, the ring not known yet
 *   ready      digests match the current ring; exchanges may use them
 * Exchanges with a node that is not ready are skipped ("not ready").
 *
 * Persistence: at a clean close (writes under way finished, the index
 * flushed and closed, then the store closed) the digests, the ring they were
 * computed for and the index's slot go to aae/TREE (tree-file.ts, crc32).
 * Nothing is written when the tree may have missed a write (an index update
 * failed or a rebuild is owed) or either engine failed to close. At start a
 * valid TREE whose ring matches is adopted and deleted (a crash after that
 * leaves none; a node claims it before it opens the store: tree-file.ts's
 * claimTree), unless writes came before the ring did (the saved digests
 * lack them: they are computed again from the index); otherwise (no TREE, a
 * damaged one, or an index of it that is damaged and does not open) the
 * index is rebuilt from the store, with one log line naming the file and why. A
 * rebuild also runs when a read of the index (an exchange's, a responder's, a
 * digest computation's) finds it damaged (RINGKV_CORRUPTION, naming the file
 * and offset: a warning), once for that index, and every verifyIntervalMs, so
 * that drift (a bug, a file damaged under it) does not last; one that fails
 * is tried again after rebuildRetryMs, and until one succeeds the half-built
 * index is never digested.
 *
 * Purge (cleanup after a move): the store's purge, the same ranges purged
 * from the index, then the digests recomputed from the index. It waits its
 * turn behind the maintenance under way; from its start until it ends,
 * writes it would drop wait for it. Its caller may abandon it (its
 * AbortSignal: a membership change, whose new move may stream those ranges
 * back in) while it waits its turn or while the store's part runs: it
 * rejects, nothing dropped; once the store's part is done, the index's
 * follows so that the two agree (if that part fails, the index is rebuilt
 * from the store). Close does not
 * wait for one (a full compaction of the store, as long as rewriting it): it
 * is abandoned, rejected with RINGKV_CLOSED (a move's cleanup is redone at
 * the next start), and no tree is saved, the digests being out of date.
 *
 * Example:
 *   const engine = await IndexedEngine.open({ main, indexes: lsmIndexes(dataDir), treeFile, log });
 *   engine.watchRing(() => topology.current);
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { limits } from '../../config/limits.js';
import {
  EMPTY,
  type Engine,
  type EngineStats,
  type Entry,
  type EntryCursor,
  EntryKind,
  hashInRanges,
  type PurgeFilter,
  type PurgeOptions,
  type ScanRange,
  type SnapshotInfo,
} from '../../storage/index.js';
import { errorMessage, isRingkvError, RingkvError } from '../../util/errors.js';
import { InFlight } from '../../util/in-flight.js';
import { hash32, type Ring } from '../ring/index.js';
import { ArcDigests } from './arc-digests.js';
import { countedEntries, valueHash } from './merkle.js';
import { indexedValueHash, indexValue, ScanPacer } from './scan.js';
import { decodeTree, encodeTree, type TreeFileStore } from './tree-file.js';

/** Where the index lives: two slots, so a rebuild fills one while the other still serves. */
export interface IndexStore {
  open(slot: 0 | 1): Promise<Engine>;
  /** Removes every file of a slot (the engine on it is closed). */
  clear(slot: 0 | 1): Promise<void>;
}

export type TreeState = 'building' | 'digesting' | 'waiting' | 'ready';

export interface TreeStats {
  readonly state: TreeState;
  /** Entries in the digests (every key of the store, tombstones included), when ready. */
  readonly entries: number | undefined;
  readonly rebuilds: number;
  readonly lastRebuildReason: string | undefined;
  /** Duration of the last full rebuild (index from the store, then digests). */
  readonly lastRebuildMs: number | undefined;
  readonly digestComputations: number;
  /** Index entries and store entries read for exchanges (both sides). */
  readonly entriesRead: number;
}

export interface IndexedEngineOptions {
  readonly main: Engine;
  readonly indexes: IndexStore;
  /** Where the digests persist; none: every open rebuilds. */
  readonly treeFile?: TreeFileStore;
  readonly log?: (line: string) => void;
  /** Full rebuild from the store this often (default limits.antiEntropyVerifyIntervalMs); 0: never. */
  readonly verifyIntervalMs?: number;
  /** Share of the event loop the rebuild's scans take (default limits.antiEntropyScanShare). */
  readonly scanShare?: number;
  /** A rebuild that failed is tried again after this long (default limits.antiEntropyRebuildRetryMs). */
  readonly rebuildRetryMs?: number;
}

/** The index key of a key: its ring hash (u32 BE), then the key. */
export function indexKey(hash: number, key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + key.length);
  out.writeUInt32BE(hash, 0);
  out.set(key, 4);
  return out;
}

/** Start of the index range of hash `hash` (undefined for 2^32: to the end). */
export function hashBound(hash: number): Buffer | undefined {
  if (hash >= 2 ** 32) return undefined;
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(hash, 0);
  return out;
}

/** True when (version, kind) `a` is newer than `b`: larger version, then a tombstone over a value. */
export function newerSummary(
  a: { readonly version: bigint; readonly kind: number },
  b: { readonly version: bigint; readonly kind: number },
): boolean {
  if (a.version !== b.version) return a.version > b.version;
  return a.kind === EntryKind.Tombstone && b.kind !== EntryKind.Tombstone;
}

const RING_SPAN = 2 ** 32;
/** Slots of key hashes that index updates are chained by (a power of two). */
const CHAIN_SLOTS = 4096;

interface _PurgeJob {
  readonly filter: PurgeFilter;
  /** The caller's: abandons the purge while it waits its turn or while the store's part runs. */
  readonly signal: AbortSignal | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class IndexedEngine implements Engine {
  readonly #main: Engine;
  readonly #indexes: IndexStore;
  readonly #treeFile: TreeFileStore | undefined;
  readonly #log: (line: string) => void;
  readonly #scanShare: number;
  readonly #rebuildRetryMs: number;
  #index!: Engine;
  #indexOpen = false;
  #slot: 0 | 1 = 0;
  #state: TreeState = 'waiting';
  /** Ready: the digests of #digests.ring. */
  #digests: ArcDigests | undefined;
  /** Digesting: the digests being computed, complete for hashes below #doneThrough. */
  #fresh: ArcDigests | undefined;
  #doneThrough = 0;
  /** Digesting: the hash range being read; writes of its keys wait. */
  #lock: { start: number; end: number; released: Promise<void> } | undefined;
  /** From TREE at start: adopted if the ring matches. */
  #loaded: { fingerprint: number; words: Uint32Array } | undefined;
  /**
   * The last index update under way per slot of key hashes, so that the next
   * update of a key waits for the one under way (keys that share a slot wait
   * for each other too: rare, and harmless). An array rather than a Map by
   * key: no allocation per write (util/in-flight.ts says why that matters).
   */
  readonly #chainTails = new Array<Promise<void> | undefined>(CHAIN_SLOTS).fill(undefined);
  /** Updates chained per slot and not yet done: the slot's tail is dropped when the last ends. */
  readonly #chained = new Int32Array(CHAIN_SLOTS);
  /** Index updates past the lock check, with their key's hash. */
  readonly #active = new InFlight();
  #ringOf: () => Ring | undefined = () => undefined;
  /** Set by watchRing(): maintenance runs and lines are logged from then on (held before). */
  #armed = false;
  readonly #held: string[] = [];
  #maintaining: Promise<void> | undefined;
  #rebuildReason: string | undefined;
  /** The index whose damage a read found: a rebuild is asked for, and replaces it. */
  #damaged: Engine | undefined;
  #digestAgain = false;
  readonly #purges: _PurgeJob[] = [];
  /** The purge under way: writes it would drop wait for it. */
  #purging: { filter: PurgeFilter; done: Promise<void> } | undefined;
  /** Aborted at close: abandons the purge under way. */
  readonly #stopping = new AbortController();
  /** Writes under way (store and index parts), with their key's hash. */
  readonly #writing = new InFlight();
  #closing = false;
  /** An index update failed or was cut short since the last rebuild: the tree may lack a write, so it is not saved. */
  #drifted = false;
  #verifyTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #rebuilds = 0;
  #lastRebuildReason: string | undefined;
  #lastRebuildMs: number | undefined;
  #digestComputations = 0;
  #entriesRead = 0;
  #driftLogged = false;

  private constructor(options: IndexedEngineOptions) {
    this.#main = options.main;
    this.#indexes = options.indexes;
    this.#treeFile = options.treeFile;
    this.#log = options.log ?? (() => {});
    this.#scanShare = options.scanShare ?? limits.antiEntropyScanShare;
    this.#rebuildRetryMs = options.rebuildRetryMs ?? limits.antiEntropyRebuildRetryMs;
    const verifyMs = options.verifyIntervalMs ?? limits.antiEntropyVerifyIntervalMs;
    if (verifyMs > 0) {
      this.#verifyTimer = setInterval(() => this.rebuild('periodic verification'), verifyMs);
      this.#verifyTimer.unref();
    }
  }

  /** Opens the index beside `main`: adopts the persisted tree, or starts a rebuild (module comment). */
  static async open(options: IndexedEngineOptions): Promise<IndexedEngine> {
    const engine = new IndexedEngine(options);
    try {
      await engine.#start();
    } catch (err) {
      engine.#stopTimer();
      if (engine.#indexOpen) await engine.#index.close().catch(() => undefined);
      throw err;
    }
    return engine;
  }

  async #start(): Promise<void> {
    const file = this.#treeFile;
    let reason: string;
    if (file === undefined) {
      reason = 'not kept on disk';
    } else {
      const read = decodeTree(await file.read());
      const counted = read.ok ? countedEntries(read.tree.words) : 0;
      if (read.ok && counted > 0 && this.#main.maxVersion?.() === 0n) {
        // The store lost its files while the tree stayed (a data directory wiped but for aae/):
        // adopted, it would compare equal with the peers, and nothing would be copied back.
        reason = `warning: the store is empty but the saved tree counts ${counted} entries`;
      } else if (read.ok) {
        const index = await this.#indexes.open(read.tree.slot).catch((err: unknown) => {
          // The index is the store's copy: a damaged one is rebuilt (below), not a reason to stay down.
          if (!isRingkvError(err, 'RINGKV_CORRUPTION')) throw err;
          return `warning: the index it describes cannot be opened: ${errorMessage(err)}`;
        });
        if (typeof index !== 'string') {
          this.#slot = read.tree.slot;
          this.#index = index;
          this.#indexOpen = true;
          this.#loaded = { fingerprint: read.tree.ringFingerprint, words: read.tree.words };
          await this.#indexes.clear(this.#slot === 0 ? 1 : 0);
          // From here a crash leaves no TREE: the next start rebuilds.
          await file.remove();
          return;
        }
        reason = index;
      } else {
        reason = read.reason;
        // A file that is there but wrong is worth a warning; a missing one is an ordinary first start or crash.
        if (read.damaged) reason = `warning: ${reason}`;
      }
    }
    await this.#indexes.clear(0);
    this.#index = await this.#indexes.open(0);
    this.#indexOpen = true;
    if (file !== undefined) await file.remove();
    this.rebuild(file === undefined ? reason : `${file.path}: ${reason}`);
  }

  /**
   * The ring the digests follow (the membership's current one); checked now
   * and by each exchange. Until this call nothing runs in the background and
   * nothing is logged (held): a node whose start fails before its membership
   * is open prints its one line only.
   */
  watchRing(ring: () => Ring | undefined): void {
    this.#ringOf = ring;
    this.#armed = true;
    for (const line of this.#held.splice(0)) this.#log(line);
    this.#kick();
  }

  /** Stops the background work and closes the index, not the store (a start that failed closes that). */
  async abandon(): Promise<void> {
    this.#stop();
    this.#stopTimer();
    await this.#maintaining;
    await this.#index.close().catch(() => undefined);
  }

  #say(line: string): void {
    if (this.#armed) this.#log(line);
    else this.#held.push(line);
  }

  /**
   * A read of `index` failed: a damaged one is rebuilt, once (later reads of it,
   * or of an index a rebuild replaced, ask for nothing more). Other errors are the caller's.
   */
  #indexReadFailed(index: Engine, err: unknown): void {
    if (!isRingkvError(err, 'RINGKV_CORRUPTION') || index !== this.#index || index === this.#damaged) return;
    this.#damaged = index;
    this.rebuild(`warning: a read of the index failed: ${errorMessage(err)}`);
  }

  /** Starts a full rebuild from the store (after what is under way); the reason is logged. */
  rebuild(reason: string): void {
    if (this.#closing) return;
    this.#rebuildReason ??= reason;
    this.#kick();
  }

  /** Resolves once no rebuild, purge or digest computation is under way or asked for. */
  async settled(): Promise<void> {
    while (this.#maintaining !== undefined) await this.#maintaining;
  }

  get state(): TreeState {
    return this.#state;
  }

  /**
   * The digests for `ring` when ready; otherwise undefined, and the work
   * that makes them ready is started.
   */
  digestsFor(ring: Ring): ArcDigests | undefined {
    const digests = this.#digests;
    if (this.#state === 'ready' && digests !== undefined && digests.ring.fingerprint === ring.fingerprint) {
      return digests;
    }
    this.#kick();
    return undefined;
  }

  /**
   * The index, for exchanges' range reads (only while ready). A read that
   * finds it damaged (RINGKV_CORRUPTION) starts a rebuild: exchanges that
   * read it would otherwise fail every round until the next verification.
   */
  get index(): Pick<Engine, 'scan'> {
    const index = this.#index;
    return {
      scan: (range) => {
        const cursor = index.scan(range);
        return {
          next: () =>
            cursor.next().catch((err: unknown) => {
              this.#indexReadFailed(index, err);
              throw err;
            }),
          close: () => cursor.close(),
        };
      },
    };
  }

  /** Counts entries an exchange read (index entries, store reads). */
  countRead(entries: number): void {
    this.#entriesRead += entries;
  }

  treeStats(): TreeStats {
    return {
      state: this.#state,
      entries: this.#state === 'ready' ? this.#digests?.count() : undefined,
      rebuilds: this.#rebuilds,
      lastRebuildReason: this.#lastRebuildReason,
      lastRebuildMs: this.#lastRebuildMs,
      digestComputations: this.#digestComputations,
      entriesRead: this.#entriesRead,
    };
  }

  // ---- Engine ----

  /**
   * Not an async function, nor is the path a write takes when no purge runs:
   * each async frame and await is garbage on the busiest path there is.
   */
  write(entry: Entry): Promise<void> {
    let hash: number;
    try {
      hash = hash32(entry.key);
    } catch (err) {
      return Promise.reject(err); // as an async function would: callers map over writes and wait on them all
    }
    if (this.#purging !== undefined) return this.#writeAfterPurges(entry, hash);
    // close() waits for the writes under way; one that came later would miss the index it closes.
    if (this.#closing) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Engine is closing'));
    return this.#startWrite(entry, hash);
  }

  async #writeAfterPurges(entry: Entry, hash: number): Promise<void> {
    // A purge of the key's range waits for this write, or this write for the purge: both parts on one side of it.
    for (
      let p = this.#purging;
      p !== undefined && _purges(p.filter, hash, entry.version);
      p = this.#purging
    ) {
      await p.done;
    }
    if (this.#closing) throw new RingkvError('RINGKV_CLOSED', 'Engine is closing');
    return this.#startWrite(entry, hash);
  }

  /** Both parts of a write, filed under #writing until they end: purges and close() wait for them. */
  #startWrite(entry: Entry, hash: number): Promise<void> {
    const slot = this.#writing.reserve(hash);
    const write = this.#writeBoth(entry, hash, slot);
    this.#writing.fill(slot, write);
    return write;
  }

  async #writeBoth(entry: Entry, hash: number, slot: number): Promise<void> {
    try {
      try {
        await this.#main.write(entry);
      } catch (err) {
        // A write can fail and still be kept (the memtable took it before the log failed:
        // lsm/write-path.ts), so the index follows what the store holds, not what was asked.
        await this.#indexed(entry, hash, true);
        throw err;
      }
      await this.#indexed(entry, hash, false);
    } finally {
      // Always after an await above, so after #startWrite filed this write.
      this.#writing.remove(slot);
    }
  }

  get(key: Buffer): Promise<Entry | undefined> {
    return this.#main.get(key);
  }

  scan(range: ScanRange): EntryCursor {
    return this.#main.scan(range);
  }

  flush(): Promise<void> {
    return this.#main.flush();
  }

  compact(): Promise<void> {
    return this.#main.compact();
  }

  snapshot(dir: string): Promise<SnapshotInfo> {
    return this.#main.snapshot(dir);
  }

  /** The store's purge, the same keys out of the index, then digests recomputed (module comment). */
  purge(filter: PurgeFilter, options: PurgeOptions = {}): Promise<void> {
    if (this.#closing) return Promise.reject(this.#stopping.signal.reason);
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const job: _PurgeJob = { filter, signal, resolve, reject };
      this.#purges.push(job);
      // Abandoned before its turn (a rebuild may run long): out of the queue now, nothing dropped.
      signal?.addEventListener(
        'abort',
        () => {
          const at = this.#purges.indexOf(job);
          if (at < 0) return;
          this.#purges.splice(at, 1);
          reject(signal.reason);
        },
        { once: true },
      );
      this.#kick();
    });
  }

  maxVersion(): bigint {
    return this.#main.maxVersion?.() ?? 0n;
  }

  stats(): EngineStats {
    return this.#main.stats();
  }

  async close(): Promise<void> {
    this.#stop();
    this.#stopTimer();
    // A purge under way is abandoned (module comment).
    await this.#maintaining;
    // Writes under way first: the index part of each must be in the index before it is flushed.
    await Promise.allSettled(this.#writing.matching(() => true));
    await Promise.allSettled(this.#chainTails.filter((tail) => tail !== undefined));
    for (const job of this.#purges.splice(0)) job.reject(this.#stopping.signal.reason);
    let persist =
      this.#state === 'ready' &&
      this.#treeFile !== undefined &&
      !this.#drifted &&
      this.#rebuildReason === undefined;
    try {
      // Its writes are not logged (index-store.ts): only a flush keeps them for the TREE to describe.
      if (persist) await this.#index.flush();
      await this.#index.close();
    } catch (err) {
      persist = false;
      this.#say(
        `Anti-entropy index did not close cleanly (${errorMessage(err)}); it is rebuilt at the next start`,
      );
    }
    // The store closes (its log synced) before the TREE is written: a saved tree must never
    // describe writes that the store could still lose, and none is written if its close failed.
    await this.#main.close();
    if (persist) {
      const digests = this.#digests!;
      try {
        await this.#treeFile!.write(
          encodeTree({ slot: this.#slot, ringFingerprint: digests.ring.fingerprint, words: digests.words }),
        );
      } catch (err) {
        this.#say(
          `Cannot write ${this.#treeFile!.path} (${errorMessage(err)}); the tree is rebuilt at the next start`,
        );
      }
    }
  }

  // ---- the write path's index part ----

  /** `fromStore`: index what the store holds for the key (its write failed), not `entry`. */
  #indexed(entry: Entry, hash: number, fromStore: boolean): Promise<void> {
    const slot = hash & (CHAIN_SLOTS - 1);
    const previous = this.#chainTails[slot];
    const run =
      previous === undefined
        ? this.#update(entry, hash, fromStore, slot)
        : previous.then(() => this.#update(entry, hash, fromStore, slot));
    this.#chainTails[slot] = run;
    this.#chained[slot]!++;
    return run;
  }

  /** Never rejects: a failure is logged and rebuilds the index. */
  async #update(entry: Entry, hash: number, fromStore: boolean, chainSlot: number): Promise<void> {
    try {
      for (
        let lock = this.#lock;
        lock !== undefined && hash >= lock.start && hash < lock.end;
        lock = this.#lock
      ) {
        await lock.released;
      }
      const work = this.#apply(entry, hash, fromStore);
      const slot = this.#active.add(work, hash);
      try {
        await work;
      } catch (err) {
        this.#drifted = true;
        if (!this.#closing) {
          if (!this.#driftLogged) {
            this.#driftLogged = true;
            this.#say(`Anti-entropy index update failed (${errorMessage(err)}); rebuilding the index`);
          }
          this.rebuild(`an index update failed: ${errorMessage(err)}`);
        }
      } finally {
        this.#active.remove(slot);
      }
    } finally {
      // The last update chained on the slot has done its work: the next one need not wait for anything.
      if (--this.#chained[chainSlot]! === 0) this.#chainTails[chainSlot] = undefined;
    }
  }

  async #apply(written: Entry, hash: number, fromStore: boolean): Promise<void> {
    const index = this.#index;
    let entry = written;
    if (fromStore || this.#state === 'building') {
      // Building, the new index may lack what the store holds (a larger value of this version among it): index that.
      const stored = await this.#main.get(written.key);
      if (stored === undefined) return;
      entry = stored;
    }
    const at = indexKey(hash, entry.key);
    const old = await index.get(at);
    let record: Entry;
    if (old === undefined || newerSummary(entry, old)) {
      // Generation 1: above a rebuild's copy (generation 0), which may come from an earlier read of the store.
      record = _indexRecord(at, entry, 1);
    } else if (newerSummary(old, entry) || valueHash(entry) === indexedValueHash(old)) {
      return;
    } else {
      // One version and kind, another value: index the store's entry, whichever of the two it kept.
      const stored = await this.#main.get(entry.key);
      if (stored === undefined || stored.version !== old.version || stored.kind !== old.kind) return;
      if (valueHash(stored) === indexedValueHash(old)) return;
      const generation = old.value[0]! + 1;
      if (generation > 0xff) {
        this.rebuild('an index generation ran out');
        return;
      }
      record = _indexRecord(at, stored, generation);
    }
    await index.write(record);
    if (index !== this.#index) return;
    // Digests saved by the last close do not hold this write: they are computed afresh, not adopted.
    if (this.#loaded !== undefined) this.#digestAgain = true;
    const digests =
      this.#state === 'ready'
        ? this.#digests
        : this.#state === 'digesting' && hash < this.#doneThrough
          ? this.#fresh
          : undefined;
    if (digests === undefined) return;
    if (old !== undefined) digests.add(hash, entry.key, old.version, old.kind, indexedValueHash(old), -1);
    digests.add(hash, entry.key, record.version, record.kind, indexedValueHash(record), 1);
  }

  // ---- maintenance: rebuilds, purges, digests for a new ring; one at a time ----

  #kick(): void {
    if (this.#maintaining !== undefined || this.#closing || !this.#armed) return;
    this.#maintaining = this.#maintain()
      .catch((err: unknown) => {
        if (this.#closing) return;
        this.#say(`Anti-entropy tree maintenance failed: ${errorMessage(err)}`);
      })
      .finally(() => {
        this.#maintaining = undefined;
        // Asked for while the loop was ending.
        if (this.#purges.length > 0 || this.#rebuildReason !== undefined) this.#kick();
      });
  }

  async #maintain(): Promise<void> {
    for (;;) {
      if (this.#closing) return;
      const job = this.#purges.shift();
      if (job !== undefined) {
        await this.#purge(job);
        continue;
      }
      const reason = this.#rebuildReason;
      if (reason !== undefined) {
        this.#rebuildReason = undefined;
        try {
          await this.#rebuild(reason);
        } catch (err) {
          this.#retryRebuild(err);
          throw err;
        }
        continue;
      }
      // A rebuild that did not finish left a partial index: only its retry makes it whole.
      if (this.#state === 'building') return;
      const ring = this.#ringOf();
      if (ring === undefined) return;
      const fingerprint = ring.fingerprint;
      if (this.#state === 'ready' && !this.#digestAgain && this.#digests?.ring.fingerprint === fingerprint) {
        return;
      }
      const loaded = this.#loaded;
      this.#loaded = undefined;
      if (
        loaded !== undefined &&
        !this.#digestAgain &&
        this.#state === 'waiting' &&
        loaded.fingerprint === fingerprint &&
        loaded.words.length === 3 * ring.pointCount
      ) {
        this.#digests = new ArcDigests(ring, loaded.words);
        this.#state = 'ready';
        continue;
      }
      this.#digestAgain = false;
      const index = this.#index;
      try {
        await this.#digest(ring);
      } catch (err) {
        // Otherwise each exchange would ask for these digests again, and read the damage again.
        this.#indexReadFailed(index, err);
        throw err;
      }
    }
  }

  async #purge(job: _PurgeJob): Promise<void> {
    // Digests stop following writes: they are recomputed once the index is purged.
    this.#state = this.#state === 'building' ? 'building' : 'waiting';
    this.#digests = undefined;
    this.#digestAgain = true;
    let finished!: () => void;
    this.#purging = { filter: job.filter, done: new Promise<void>((resolve) => (finished = resolve)) };
    try {
      await Promise.allSettled(this.#writing.matching((hash) => hashInRanges(job.filter.hashRanges, hash)));
      const stopping = this.#stopping.signal;
      const signal = job.signal === undefined ? stopping : AbortSignal.any([stopping, job.signal]);
      await this.#main.purge?.(job.filter, { signal });
      // The store's keys are gone: the index follows them whatever the caller does now (only close stops it).
      await this.#index
        .purge?.({ ...job.filter, hashPrefixed: true }, { signal: stopping })
        .catch((err: unknown) => this.#indexPurgeFailed(err));
      job.resolve();
    } catch (err) {
      job.reject(err);
    } finally {
      this.#purging = undefined;
      finished();
    }
  }

  /**
   * The store's part of a purge is done and the index's failed: the index
   * holds keys the store dropped, so it is rebuilt (and no tree is saved
   * meanwhile); then the error goes to the purge's caller.
   */
  #indexPurgeFailed(err: unknown): never {
    this.#drifted = true;
    this.rebuild(`the index's part of a purge failed: ${errorMessage(err)}`);
    throw err;
  }

  /** The index afresh from the store, in the other slot; then digests (by #maintain). */
  async #rebuild(reason: string): Promise<void> {
    const startedMs = performance.now();
    this.#rebuilds++;
    this.#lastRebuildReason = reason;
    const warning = reason.includes('warning: ');
    this.#say(`${warning ? 'warning: ' : ''}Anti-entropy tree rebuild: ${reason.replace('warning: ', '')}`);
    const previous = this.#index;
    const previousSlot = this.#slot;
    const slot = previousSlot === 0 ? 1 : 0;
    await this.#indexes.clear(slot);
    const target = await this.#indexes.open(slot);
    this.#state = 'building';
    this.#digests = undefined;
    this.#fresh = undefined;
    this.#loaded = undefined;
    this.#index = target;
    this.#slot = slot;
    this.#damaged = undefined;
    // Updates that began on the previous index finish before it closes; later ones use the new one.
    await Promise.allSettled(this.#active.matching(() => true));
    // From here every write reaches the new index, or its failure sets this again.
    this.#drifted = false;
    await previous.close().catch(() => undefined);
    await this.#indexes.clear(previousSlot);
    let copied = 0;
    const pacer = new ScanPacer(this.#scanShare);
    // Created after the switch: it holds every write whose index part went to the previous index.
    const cursor = this.#main.scan({ start: EMPTY });
    try {
      let sinceYield = 0;
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        if (this.#closing) return;
        await Promise.all(
          batch.map((entry) => target.write(_indexRecord(indexKey(hash32(entry.key), entry.key), entry, 0))),
        );
        copied += batch.length;
        sinceYield += batch.length;
        if (sinceYield >= limits.antiEntropyYieldEntries) {
          sinceYield = 0;
          await pacer.pause();
        }
      }
    } finally {
      await cursor.close();
    }
    this.#state = 'waiting';
    this.#digestAgain = true;
    const ring = this.#ringOf();
    if (ring !== undefined) {
      await this.#digest(ring);
      this.#digestAgain = false;
    }
    this.#lastRebuildMs = Math.round(performance.now() - startedMs);
    this.#driftLogged = false;
    if (!this.#closing) {
      this.#say(`Anti-entropy tree rebuilt: ${copied} entries indexed in ${this.#lastRebuildMs} ms`);
    }
  }

  /**
   * The arc digests of `ring` from the index, one hash range at a time
   * (limits.antiEntropyTreeChunks of them): each range is read with writes of
   * its keys held back, and once read, takes the changes of later writes.
   */
  async #digest(ring: Ring): Promise<void> {
    this.#digestComputations++;
    const fresh = new ArcDigests(ring);
    this.#state = 'digesting';
    this.#digests = undefined;
    this.#fresh = fresh;
    this.#doneThrough = 0;
    const chunks = limits.antiEntropyTreeChunks;
    const step = RING_SPAN / chunks;
    const pacer = new ScanPacer(this.#scanShare);
    let sinceYield = 0;
    for (let chunk = 0; chunk < chunks; chunk++) {
      if (this.#closing || this.#fresh !== fresh) return;
      const start = chunk * step;
      const end = (chunk + 1) * step;
      let release!: () => void;
      this.#lock = { start, end, released: new Promise<void>((resolve) => (release = resolve)) };
      try {
        await Promise.allSettled(this.#active.matching((hash) => hash >= start && hash < end));
        const cursor = this.#index.scan({ start: hashBound(start)!, end: hashBound(end) });
        try {
          for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
            for (const entry of batch) {
              const hash = entry.key.readUInt32BE(0);
              fresh.add(hash, entry.key.subarray(4), entry.version, entry.kind, indexedValueHash(entry), 1);
            }
            sinceYield += batch.length;
          }
        } finally {
          await cursor.close();
        }
        this.#doneThrough = end;
      } finally {
        this.#lock = undefined;
        release();
      }
      if (sinceYield >= limits.antiEntropyYieldEntries) {
        sinceYield = 0;
        await pacer.pause();
      } else if (chunk % 64 === 63) {
        await nextTurn();
      }
    }
    this.#digests = fresh;
    this.#fresh = undefined;
    this.#state = 'ready';
  }

  /** A rebuild failed: another is asked for after rebuildRetryMs (the failure may be passing: a full disk, say). */
  #retryRebuild(err: unknown): void {
    if (this.#closing || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.rebuild(`the last rebuild failed (${errorMessage(err)})`);
    }, this.#rebuildRetryMs);
    this.#retryTimer.unref();
  }

  /** Close or abandon: nothing new starts; a purge under way, or asked for, is rejected. */
  #stop(): void {
    this.#closing = true;
    this.#stopping.abort(new RingkvError('RINGKV_CLOSED', 'Engine closed before the purge finished'));
  }

  #stopTimer(): void {
    if (this.#verifyTimer !== undefined) clearInterval(this.#verifyTimer);
    this.#verifyTimer = undefined;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}

/** The index entry of a store entry at index key `at`, of that generation (indexValue). */
function _indexRecord(at: Buffer, entry: Entry, generation: number): Entry {
  return {
    key: at,
    version: entry.version,
    kind: entry.kind,
    expiresAtMs: 0,
    value: indexValue(generation, valueHash(entry)),
  };
}

/** Whether a purge with `filter` would drop a write of this hash and version. */
function _purges(filter: PurgeFilter, hash: number, version: bigint): boolean {
  return version <= filter.versionMax && hashInRanges(filter.hashRanges, hash);
}
