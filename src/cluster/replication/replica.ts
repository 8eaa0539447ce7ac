/**
 * Replica: the replica side of replication, the InternodeHandler a node
 * offers its peers (write, read, scan, and, wired in, anti-entropy and the
 * LEAVING notice) and the path its own coordinator uses for the local
 * replica (a direct call, not a network hop).
 *
 * ## Ordering under clock skew
 *
 * API.md: two writes of one key, the second sent after the first was
 * answered, are ordered correctly through any two nodes, with no pause. A
 * hybrid logical clock alone does not do it: if coordinator B's wall clock is
 * 1 s behind A's, B stamps its write with a version below the one A gave the
 * earlier write, which B never saw, and newest-version-wins keeps A's write.
 *
 * The fix uses the quorum overlap that reads already rely on:
 *
 * 1. Every replica remembers, for the keys written in the last few seconds,
 *    the newest version it stored (RecentWrites: a window of a few times the
 *    maximum skew, bounded in entries and bytes, with a floor for what it
 *    forgot).
 * 2. A write whose version is at or below the version the replica knows for
 *    the key is still applied (the engine keeps the newest anyway, so it
 *    changes nothing there) but is answered as a CONFLICT carrying the known
 *    version (internode OK with a version, docs/formats/internode.md).
 * 3. The coordinator that gets a conflict advances its clock past that
 *    version, stamps a new one and sends the write again to all `from`
 *    replicas, counting acknowledgements only for the new version
 *    (coordinator.ts; a bounded number of times, then 504).
 *
 * Why that suffices: write 1 was acknowledged by a set W1 of ack1 replicas,
 * each of which remembers its version v1. Write 2 is answered once ack2
 * replicas acknowledge one version v2 without a conflict. With
 * ack1 + ack2 > from the two sets share a replica, which would have answered
 * a conflict unless v2 > v1. So an answered write 2 always has the larger
 * version. Memory only needs to cover the skew: once the window has passed,
 * every coordinator's clock is past v1 anyway; and forgetting early raises
 * the floor, which costs spurious retries, never a misordering.
 *
 * Beyond the memory: a write of a key the memory does not hold (the first
 * since a restart, or since the memory forgot it), and any write of the key
 * that arrives before that one's read-back ends, is read back from the
 * store after it is applied; a newer entry held there (written before a
 * restart, or longer ago than the window, under a skew past the bound; or
 * one at the same version that wins the tie, compareVersions) is answered
 * as a conflict too. A replica never acknowledges, as conflict-free, a
 * write it knows is older than what it holds. The read is
 * cheap: the version just written sits in the memtable, and tables whose
 * newest version is older are skipped. Keys the memory holds need no read:
 * it already knows every write of them that came through here, and reading
 * the store then would also see writes that arrive after this one, so two
 * concurrent writers would answer each other conflicts on every retry.
 *
 * Every version a replica sees (written or read) also advances its clock, and
 * coordinators observe the versions in answers (reads, conflicts), so the
 * clocks of nodes that talk to each other stay close.
 */
import { limits } from '../../config/limits.js';
import type { Engine, Entry } from '../../storage/index.js';
import { compareVersions, makeVersion } from '../../storage/index.js';
import type { HybridClock } from '../clock.js';
import type { InternodeHandler, ScanPage } from '../transport/index.js';
import { RecentWrites } from './recent-writes.js';

export interface ReplicaOptions {
  readonly engine: Engine;
  readonly clock: HybridClock;
  readonly recentWrites: RecentWrites;
  /** Answers peers' anti-entropy requests (antientropy/responder.ts); left out, they get RINGKV_BAD_REQUEST. */
  readonly antiEntropy?: ((body: Buffer) => Promise<Buffer>) | undefined;
  /** A peer announced its shutdown (internode LEAVING): the node routes around it. */
  readonly onPeerLeaving?: ((peer: string) => void) | undefined;
}

export interface ReplicaStats {
  readonly writes: number;
  /** Writes answered as conflicts (their version was not above the key's known one). */
  readonly conflicts: number;
  /** Of those, the ones only the store knew of (older than the recent-writes memory, or from before a restart). */
  readonly storedConflicts: number;
  readonly reads: number;
  readonly scans: number;
  /** Keys in the recent-writes memory, and its floor version. */
  readonly recentKeys: number;
  readonly recentFloor: string;
}

export class Replica implements InternodeHandler {
  readonly #engine: Engine;
  readonly #clock: HybridClock;
  readonly #recent: RecentWrites;
  readonly #onPeerLeaving: ((peer: string) => void) | undefined;
  /** Set when the node serves anti-entropy (InternodeHandler.antiEntropy). */
  readonly antiEntropy: ((body: Buffer) => Promise<Buffer>) | undefined;
  #writes = 0;
  #conflicts = 0;
  #storedConflicts = 0;
  #reads = 0;
  #scans = 0;

  constructor(options: ReplicaOptions) {
    this.#engine = options.engine;
    this.#clock = options.clock;
    this.#recent = options.recentWrites;
    this.#onPeerLeaving = options.onPeerLeaving;
    this.antiEntropy = options.antiEntropy;
  }

  /** The node's wall clock, sent in PONG so that peers measure the skew. */
  wallMs(): number {
    return this.#clock.wallMs();
  }

  leaving(peer: string): void {
    this.#onPeerLeaving?.(peer);
  }

  /** Applies the entry; resolves to undefined, or to the newer version known for its key (a conflict). */
  async write(entry: Entry): Promise<bigint | undefined> {
    this.#writes++;
    this.#clock.observe(entry.version);
    // INVARIANT: checked and recorded before the first await, so concurrent writes see each other.
    const remembered = this.#recent.record(entry.key, entry.version);
    const unchecked = this.#recent.lastUnchecked;
    await this.#engine.write(entry);
    // A key the memory checked against the store was judged by it: the memory is at least as
    // new as any write of the key that came through here. Until then (a key it did not hold,
    // and writes of it that arrive before the first read-back ends) each write is read back
    // from the store, and the memory learns the version found there.
    let held: Entry | undefined;
    if (unchecked !== undefined) {
      held = await this.#engine.get(entry.key);
      this.#recent.learnStored(entry.key, held?.version, unchecked);
    }
    let conflict = remembered;
    // The store kept another entry over this one: a newer version, or the same one whose tie it won.
    if (held !== undefined && compareVersions(held, entry) > 0) {
      this.#clock.observe(held.version);
      if (conflict === undefined || held.version > conflict) {
        conflict = held.version;
        this.#storedConflicts++;
      }
    }
    if (conflict !== undefined) this.#conflicts++;
    return conflict;
  }

  /**
   * An entry of `key` at `version` was stored without going through write()
   * (an anti-entropy pull, a move's stream): the memory learns it, so that a
   * later write below it is answered with a conflict, not taken as the newest.
   */
  noteStored(key: Buffer, version: bigint): void {
    this.#clock.observe(version);
    this.#recent.record(key, version);
  }

  async read(key: Buffer): Promise<Entry | undefined> {
    this.#reads++;
    const entry = await this.#engine.get(key);
    if (entry !== undefined) this.#clock.observe(entry.version);
    return entry;
  }

  async scan(start: Buffer, end: Buffer | undefined, limit: number): Promise<ScanPage> {
    this.#scans++;
    const cursor = this.#engine.scan({ start, end });
    const entries: Entry[] = [];
    let bytes = 0;
    try {
      for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        for (const entry of batch) {
          // One more than asked exists (or a frame's worth of bytes is in): the page is full and more follow.
          if (entries.length === limit || bytes >= limits.internodeFrameBytesMax)
            return { entries, more: true };
          entries.push(entry);
          bytes += entry.key.length + entry.value.length;
        }
      }
    } finally {
      await cursor.close();
    }
    return { entries, more: false };
  }

  stats(): ReplicaStats {
    return {
      writes: this.#writes,
      conflicts: this.#conflicts,
      storedConflicts: this.#storedConflicts,
      reads: this.#reads,
      scans: this.#scans,
      recentKeys: this.#recent.size,
      recentFloor: String(this.#recent.floor),
    };
  }
}

/**
 * A replica with the default bounds: remembers writes for
 * limits.recentWritesWindowPerSkew times the maximum clock skew, and starts
 * with a floor of now + skew (the newest version any node may have stamped
 * before this process started; recent-writes.ts).
 */
export function createReplica(
  engine: Engine,
  clock: HybridClock,
  options: { clockSkewMaxMs: number } & Pick<ReplicaOptions, 'antiEntropy' | 'onPeerLeaving'>,
): Replica {
  const skewMs = options.clockSkewMaxMs;
  const recentWrites = new RecentWrites({
    windowMs: Math.max(1, skewMs * limits.recentWritesWindowPerSkew),
    entriesMax: limits.recentWritesMax,
    keyBytesMax: limits.recentWriteKeyBytesMax,
    initialFloor: makeVersion(clock.wallMs() + skewMs, 0),
    floorMax: () => makeVersion(clock.wallMs() + skewMs, 0),
  });
  return new Replica({
    engine,
    clock,
    recentWrites,
    antiEntropy: options.antiEntropy,
    onPeerLeaving: options.onPeerLeaving,
  });
}
