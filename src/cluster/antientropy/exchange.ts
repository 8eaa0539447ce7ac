/**
 * One anti-entropy exchange with one peer, from the requesting side:
 *
 *   1. Sum the arc digests this node keeps current (indexed-engine.ts) into
 *      the pair's bucket digests (arc-digests.ts) and build the Merkle tree:
 *      no entry is read. A node whose tree is not ready skips the exchange.
 *   2. Send the root in a DIGEST request. Equal roots: the peer answers one
 *      byte and the exchange is over (nothing else travels). Otherwise the
 *      peer answers its leaf digests (or "not ready": the exchange is skipped).
 *   3. Build the peer's tree and descend both to the differing buckets; ask
 *      the peer for the digests of the pair's arcs in them (ARCS) and compare
 *      with the local ones: the differing arcs (a few dozen keys each).
 *   4. Page through the peer's key summaries (key, version, kind, value
 *      hash) of those arcs, in index order (hash, then key), and walk the
 *      local index over the same hash ranges alongside (a merge join). For
 *      each key:
 *        - on both sides, newer here: push the local entry (transport.write);
 *        - on both sides, newer there: pull it (transport.read, then a local
 *          engine write, which keeps the newest version anyway, and the
 *          clock observes its version);
 *        - same version and kind, different value hashes: both (pull and
 *          push), since each engine keeps the same one of the two;
 *        - same version, kind and value hash: nothing;
 *        - only here: pushed when the peer comes before this node in the
 *          key's replica list (aheadOfPeer), else left alone;
 *        - only there: pulled when this node comes before the peer, or when
 *          the peer's version is older than this node's birth version (its
 *          data directory was empty then: it may have lost the key), else
 *          left alone.
 *      The last two rules keep API.md's "stored on no more than `from`
 *      nodes": anti-entropy never puts a key on a node that no write of it
 *      targeted (docs/design/anti-entropy.md, "Which keys").
 *   5. Copies run at most repairsInFlightMax at once, at most
 *      repairsPerRoundMax per exchange (the rest waits for the next round);
 *      the first failed copy or request ends the exchange.
 *
 * "Newer" is compareVersions' order: the larger version, and at equal
 * versions a tombstone over a value. Two values with the same version
 * (two coordinators stamping one version for one key: a hybrid clock
 * carries no node id) are told apart by their value hashes, and so are two
 * expiries of one value; which one wins is again compareVersions' (the
 * larger bytes, then the later expiry), decided by each engine as the
 * copies arrive, so the pair ends up holding the winner.
 */
import type { Entry } from '../../storage/index.js';
import { EntryKind, tombstoneEntry } from '../../storage/index.js';
import { compareBytes } from '../../util/bytes.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import { hash32 } from '../ring/index.js';
import { type ArcDigests, arcRanges, arcsIn } from './arc-digests.js';
import {
  bitmapOf,
  decodeArcsAnswer,
  decodeDigestAnswer,
  decodeSummaryAnswer,
  encodeRequest,
  type KeySummary,
  NOT_READY,
  RequestKind,
} from './format.js';
import { type IndexedEngine, indexKey } from './indexed-engine.js';
import { diffLeaves, MerkleTree } from './merkle.js';
import { aheadOfPeer, type PairScope, RangeEntries, summaryOf } from './scan.js';

/** What anti-entropy needs of a transport: the Transport contract plus the ANTI_ENTROPY message. */
export interface AntiEntropyTransport {
  /** Resolves once the peer stored the entry; what it resolves to is not used. */
  write(peer: string, entry: Entry, deadlineMs: number): Promise<unknown>;
  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined>;
  isUp(peer: string): boolean;
  /** Sends an anti-entropy request body (format.ts) and resolves to the answer body. */
  antiEntropy(peer: string, request: Buffer, deadlineMs: number): Promise<Buffer>;
}

export interface ExchangeSettings {
  /** The node's engine: its index and digests, and the store pulls write to and pushes read from. */
  readonly engine: IndexedEngine;
  readonly transport: AntiEntropyTransport;
  readonly requestTimeoutMs: number;
  readonly repairTimeoutMs: number;
  readonly summaryEntriesMax: number;
  readonly repairsPerRoundMax: number;
  readonly repairsInFlightMax: number;
  readonly yieldEntries: number;
  /**
   * Keys older than this that only the peer holds are pulled whatever their
   * place in the replica list: this node's data directory was empty at that
   * version (a new node, or one that lost its disk). 0n: never.
   */
  readonly birthVersion: bigint;
  /** Called with every entry pulled and stored (the node's clock and the replica's memory learn it). */
  readonly observe: (version: bigint, key: Buffer) => void;
  /** Checked between steps: true ends the exchange early (stop()). */
  readonly stopping: () => boolean;
}

export interface ExchangeResult {
  readonly peer: string;
  /** Roots were equal: only digests travelled. */
  readonly equal: boolean;
  /** Skipped: this node's or the peer's tree was not ready for the ring (being built, or rings differ). */
  readonly notReady: boolean;
  readonly differingBuckets: number;
  /** Arcs of the differing buckets whose digests differ: what summaries list. */
  readonly differingArcs: number;
  /** Local entries of the shared key set (from the digests: none is read for it). */
  readonly localEntries: number;
  /** Local index entries and stored entries this exchange read. */
  readonly entriesRead: number;
  readonly summaryPages: number;
  readonly summariesReceived: number;
  readonly pulled: number;
  readonly pushed: number;
  /** Keys on one side only that no write of them sent to the other side, so were not copied. */
  readonly leftAlone: number;
  /** Copies left for a later round (repairsPerRoundMax reached). */
  readonly deferred: boolean;
  /** Bytes sent and received: request and answer bodies, and the key and value of each entry copied. */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly error?: string;
}

/** Runs one exchange; never rejects (failures are in `error`). */
export async function exchange(scope: PairScope, settings: ExchangeSettings): Promise<ExchangeResult> {
  const result = {
    peer: scope.peer,
    equal: false,
    notReady: false,
    differingBuckets: 0,
    differingArcs: 0,
    localEntries: 0,
    entriesRead: 0,
    summaryPages: 0,
    summariesReceived: 0,
    pulled: 0,
    pushed: 0,
    leftAlone: 0,
    deferred: false,
    bytesSent: 0,
    bytesReceived: 0,
  };
  const copies = new _Copies(settings, scope.peer);
  try {
    const digests = settings.engine.digestsFor(scope.ring);
    if (digests === undefined) {
      result.notReady = true;
      return result;
    }
    const local = digests.leaves(scope);
    result.localEntries = local.count();
    const localTree = MerkleTree.of(local);
    const answer = await _request(
      scope,
      settings,
      encodeRequest({
        kind: RequestKind.Digest,
        leafBits: scope.leafBits,
        replicationFactor: scope.replicationFactor,
        from: scope.self,
        ringFingerprint: scope.ring.fingerprint,
        root: localTree.root(),
      }),
      result,
    );
    const remote = decodeDigestAnswer(answer, scope.leafBits);
    if (remote === undefined) {
      result.equal = true;
      return result;
    }
    if (remote === NOT_READY) {
      result.notReady = true;
      return result;
    }
    const differing = diffLeaves(localTree, MerkleTree.of(remote));
    result.differingBuckets = differing.length;
    if (differing.length === 0) {
      result.equal = true;
      return result;
    }
    const arcs = await _differingArcs(scope, settings, digests, bitmapOf(scope.leafBits, differing), result);
    result.differingArcs = arcs.length;
    if (arcs.length > 0) await _compareArcs(scope, settings, arcs, copies, result);
    await copies.settle();
  } catch (err) {
    await copies.settle();
    settings.engine.countRead(result.entriesRead + copies.entriesRead);
    return { ...result, ...copies.totals(result), error: errorMessage(err) };
  }
  settings.engine.countRead(result.entriesRead + copies.entriesRead);
  const error = copies.error;
  return {
    ...result,
    ...copies.totals(result),
    deferred: copies.deferred,
    ...(error === undefined ? {} : { error }),
  };
}

/** Sends one anti-entropy request and counts its bytes and its answer's. */
async function _request(
  scope: PairScope,
  settings: ExchangeSettings,
  request: Buffer,
  result: { bytesSent: number; bytesReceived: number },
): Promise<Buffer> {
  result.bytesSent += request.length;
  const answer = await settings.transport.antiEntropy(
    scope.peer,
    request,
    Date.now() + settings.requestTimeoutMs,
  );
  result.bytesReceived += answer.length;
  return answer;
}

/** Step 3, within the differing buckets: the arcs whose digests differ (ascending points). */
async function _differingArcs(
  scope: PairScope,
  settings: ExchangeSettings,
  digests: ArcDigests,
  buckets: Uint8Array,
  result: { bytesSent: number; bytesReceived: number },
): Promise<number[]> {
  const points = arcsIn(scope, buckets);
  const local = digests.wordsOf(points);
  const remote = decodeArcsAnswer(
    await _request(
      scope,
      settings,
      encodeRequest({
        kind: RequestKind.Arcs,
        leafBits: scope.leafBits,
        replicationFactor: scope.replicationFactor,
        from: scope.self,
        ringFingerprint: scope.ring.fingerprint,
        buckets,
      }),
      result,
    ),
  );
  if (remote.length !== local.length) {
    throw new RingkvError(
      'RINGKV_PROTOCOL',
      `Anti-entropy arcs answer lists ${remote.length / 3} arcs, not ${points.length}`,
    );
  }
  const out: number[] = [];
  for (let i = 0; i < points.length; i++) {
    const at = 3 * i;
    if (local[at] !== remote[at] || local[at + 1] !== remote[at + 1] || local[at + 2] !== remote[at + 2]) {
      out.push(points[i]!);
    }
  }
  return out;
}

/** Step 4: the merge join of the peer's summary pages with the local entries of the differing arcs. */
async function _compareArcs(
  scope: PairScope,
  settings: ExchangeSettings,
  arcs: readonly number[],
  copies: _Copies,
  result: {
    summaryPages: number;
    summariesReceived: number;
    leftAlone: number;
    entriesRead: number;
    bytesSent: number;
    bytesReceived: number;
  },
): Promise<void> {
  const local = new RangeEntries(
    settings.engine.index,
    arcRanges(scope.ring, arcs),
    Buffer.alloc(0),
    settings.yieldEntries,
  );
  try {
    let start = Buffer.alloc(0);
    for (;;) {
      if (copies.stopped || settings.stopping()) return;
      const page = decodeSummaryAnswer(
        await _request(
          scope,
          settings,
          encodeRequest({
            kind: RequestKind.Summary,
            leafBits: scope.leafBits,
            replicationFactor: scope.replicationFactor,
            from: scope.self,
            ringFingerprint: scope.ring.fingerprint,
            arcs,
            start,
            limit: settings.summaryEntriesMax,
          }),
          result,
        ),
      );
      result.summaryPages++;
      result.summariesReceived += page.summaries.length;
      for (const remote of page.summaries) {
        const position = indexKey(hash32(remote.key), remote.key);
        // Local keys before this one exist only here.
        for (let entry = await local.peek(); entry !== undefined; entry = await local.peek()) {
          const order = compareBytes(entry.key, position);
          if (order > 0) break;
          local.skip();
          if (order < 0) await _onlyHere(summaryOf(entry), scope, copies, result);
          else await _reconcile(summaryOf(entry), remote, copies);
          if (order === 0) break;
        }
        if (copies.stopped) return;
        // The key was not met locally (the loop above stopped before it or ran out).
        if (!copies.handled(remote.key)) await _onlyThere(remote, scope, settings, copies, result);
      }
      // Local keys up to what the page covered (all of them, after the last page) exist only here.
      for (let entry = await local.peek(); entry !== undefined; entry = await local.peek()) {
        if (page.more && compareBytes(entry.key, page.coveredThrough) > 0) break;
        local.skip();
        await _onlyHere(summaryOf(entry), scope, copies, result);
        if (copies.stopped) return;
      }
      if (!page.more) return;
      start = Buffer.concat([page.coveredThrough, Buffer.from([0])]);
    }
  } finally {
    result.entriesRead += local.read;
    await local.close();
  }
}

/**
 * A key only this node holds: pushed when the peer comes first in its replica
 * list (a write that reached this node targeted the peer too).
 */
async function _onlyHere(
  entry: KeySummary,
  scope: PairScope,
  copies: _Copies,
  result: { leftAlone: number },
): Promise<void> {
  if (aheadOfPeer(scope, entry.key)) result.leftAlone++;
  else await copies.push(entry);
}

/**
 * A key only the peer holds: pulled when this node comes first in its replica
 * list, or when its version predates this node's birth (it may have been lost).
 */
async function _onlyThere(
  remote: KeySummary,
  scope: PairScope,
  settings: ExchangeSettings,
  copies: _Copies,
  result: { leftAlone: number },
): Promise<void> {
  if (aheadOfPeer(scope, remote.key) || remote.version < settings.birthVersion) await copies.pull(remote.key);
  else result.leftAlone++;
}

/**
 * A key both sides hold: the newer one is copied to the other side. At one
 * version and kind with different value hashes neither summary says which
 * entry wins (compareVersions): each side gets the other's, and its engine keeps the winner.
 */
async function _reconcile(entry: KeySummary, remote: KeySummary, copies: _Copies): Promise<void> {
  copies.markHandled(remote.key);
  let order = entry.version === remote.version ? 0 : entry.version > remote.version ? 1 : -1;
  if (order === 0 && entry.kind !== remote.kind) order = entry.kind === EntryKind.Tombstone ? 1 : -1;
  if (order > 0) await copies.push(entry);
  else if (order < 0) await copies.pull(remote.key);
  else if (entry.valueHash !== remote.valueHash) {
    await copies.pull(remote.key);
    await copies.push(entry);
  }
}

/** The copies of one exchange: bounded in flight and in total; the first failure stops the rest. */
class _Copies {
  readonly #settings: ExchangeSettings;
  readonly #peer: string;
  readonly #inFlight = new Set<Promise<void>>();
  /** The remote key last reconciled, so the pull check after the local walk skips it. */
  #handled: Buffer | undefined;
  pulled = 0;
  pushed = 0;
  /** Key and value bytes of the entries pushed and pulled. */
  #bytesPushed = 0;
  #bytesPulled = 0;
  deferred = false;
  error: string | undefined;
  /** Stored entries read for pushes. */
  entriesRead = 0;

  constructor(settings: ExchangeSettings, peer: string) {
    this.#settings = settings;
    this.#peer = peer;
  }

  /** No more copies are started: one failed, the budget is spent, or stop() was called. */
  get stopped(): boolean {
    return this.error !== undefined || this.deferred || this.#settings.stopping();
  }

  markHandled(key: Buffer): void {
    this.#handled = key;
  }

  handled(key: Buffer): boolean {
    return this.#handled?.equals(key) === true;
  }

  /**
   * Pushes the stored entry of a key the index lists: the store's newest
   * (it may be newer still); a tombstone the store aged out is sent as the
   * index has it, and a value it aged out is not sent.
   */
  push(summary: KeySummary): Promise<void> {
    return this.#start(async (deadlineMs) => {
      this.entriesRead++;
      const stored = await this.#settings.engine.get(summary.key);
      const entry =
        stored ??
        (summary.kind === EntryKind.Tombstone ? tombstoneEntry(summary.key, summary.version) : undefined);
      if (entry === undefined) return;
      await this.#settings.transport.write(this.#peer, entry, deadlineMs);
      this.pushed++;
      this.#bytesPushed += entry.key.length + entry.value.length;
    });
  }

  pull(key: Buffer): Promise<void> {
    this.markHandled(key);
    return this.#start(async (deadlineMs) => {
      const entry = await this.#settings.transport.read(this.#peer, key, deadlineMs);
      if (entry === undefined) return;
      await this.#settings.engine.write(entry);
      this.#settings.observe(entry.version, entry.key);
      this.pulled++;
      this.#bytesPulled += entry.key.length + entry.value.length;
    });
  }

  /** The copies' counts, and the exchange's bytes with theirs added. */
  totals(result: { bytesSent: number; bytesReceived: number }): {
    pulled: number;
    pushed: number;
    bytesSent: number;
    bytesReceived: number;
  } {
    return {
      pulled: this.pulled,
      pushed: this.pushed,
      bytesSent: result.bytesSent + this.#bytesPushed,
      bytesReceived: result.bytesReceived + this.#bytesPulled,
    };
  }

  async settle(): Promise<void> {
    await Promise.all(this.#inFlight);
  }

  /** Starts a copy once fewer than repairsInFlightMax run. */
  async #start(copy: (deadlineMs: number) => Promise<void>): Promise<void> {
    if (this.stopped) return;
    if (this.pulled + this.pushed + this.#inFlight.size >= this.#settings.repairsPerRoundMax) {
      this.deferred = true;
      return;
    }
    while (this.#inFlight.size >= this.#settings.repairsInFlightMax) await Promise.race(this.#inFlight);
    if (this.stopped) return;
    const running: Promise<void> = copy(Date.now() + this.#settings.repairTimeoutMs).then(
      () => {
        this.#inFlight.delete(running);
      },
      (err: unknown) => {
        this.#inFlight.delete(running);
        this.error ??= `Copy with ${this.#peer} failed: ${errorMessage(err)}`;
      },
    );
    this.#inFlight.add(running);
  }
}
