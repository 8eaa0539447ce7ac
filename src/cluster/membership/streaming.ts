/**
 * Streaming: how a move hands ranges to their new owners. The new owner
 * pulls (StreamReceiver); each current replica answers pages of what it has
 * for it (StreamSource). A range here is one transfer: the keys one source
 * holds that the receiving node will own.
 *
 * Which keys: with C the current ring, F the future one and R = min(size, 3)
 * on each, the source S sends the receiver T every key k with
 *
 *   S in C.replicas(k, R)  and  T in F.replicas(k, R)  and  T not in C.replicas(k, R)
 *
 * and, since a key written with a `from` below R is on only the first
 * `from` of its list, every key for which some f <= R has
 *
 *   S in C.replicas(k, f)  and  T in F.replicas(k, f)  and  T not in C.replicas(k, f)
 *
 * (T moves up the key's list as a member leaves: a node that was its third
 * replica becomes its second, and a write with from=2 never reached it);
 * tombstones included (a delete is a version), at the version it holds. T
 * pulls from *every* live current replica of its keys, not from one: a
 * write answered with `ack` of `from` may be missing from the others, and
 * after the flip T counts as a replica that has every acknowledged write.
 * Entries are written to T's engine, which keeps the newest version of a
 * key, so pulling a key from three sources, or again after a restart, is
 * harmless. Writes made meanwhile reach T directly (T is a pending owner:
 * topology.ts), so once every transfer has passed the end of its source's
 * store, T holds every write its ranges got.
 *
 * Paging: a STREAM request names the move's view by its epoch and digest
 * (both sides must hold it: a source with another view answers an empty page
 * carrying its own, and the receiver exchanges views with it and asks again;
 * the digest tells apart two views of one epoch, a change that lost the
 * merge and the one that won), the
 * receiver, and a start key. The source scans its store from there, examines
 * at most examineMax entries and answers up to entriesMax entries or about
 * bytesMax bytes (never more than fits one internode frame: an entry that
 * would not fit waits for the next page), with the last key examined; the
 * next request starts just after it. The source keeps no state between
 * pages, so a source that restarts costs a page, not the transfer (a
 * receiver that restarts starts its transfers over: mover.ts).
 *
 * Flow control, so that clients keep their latency while a move runs:
 * - a source serves one page at a time, whatever the number of receivers,
 *   and its scan takes at most limits.antiEntropyScanShare of its event loop
 *   (ScanPacer rests between slices);
 * - a receiver has one page in flight per transfer, writes a page with at
 *   most writesInFlightMax engine writes at once (they share the WAL's group
 *   commits), and takes at most bytesPerSecond from all its sources together.
 *
 * A source that cannot be reached is asked again every retryMs; one that
 * has failed for sourceDownMaxMs and that the transport reports down is
 * given up for this move (its keys come from the other current replicas,
 * which are all streamed from). A source that answers badly or slowly, or
 * that says it is shutting down, is asked again for as long as the move
 * lasts, and so is a page this node failed to store (a full disk is this
 * node's to fix, not a reason to skip a source): a receiver is done only
 * when every transfer reached the end of its source or gave up on a source
 * that is down.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { limits } from '../../config/limits.js';
import { type Engine, type Entry, encodedEntryBytes } from '../../storage/index.js';
import { errorMessage } from '../../util/errors.js';
import { ScanPacer } from '../antientropy/index.js';
import type { Ring } from '../ring/index.js';
import { FRAME_HEADER_BYTES, type MembershipLinks } from '../transport/index.js';
import {
  decodeStreamPage,
  decodeStreamRequest,
  encodeStreamPage,
  encodeStreamRequest,
  streamPageFixedBytes,
} from './format.js';
import { currentMembers, type Membership, viewDigest, viewDigestHex } from './membership.js';
import { replicationFactor, type Topology } from './topology.js';

/** The rings a move's keys are chosen by. */
export interface MoveRings {
  readonly current: Ring;
  readonly future: Ring;
}

/** Whether the source `self` sends key `key` to `target` (module comment). */
export function streamedTo(rings: MoveRings, self: string, target: string, key: Uint8Array): boolean {
  const current = rings.current.replicas(key, replicationFactor(rings.current.nodes.length));
  const future = rings.future.replicas(key, replicationFactor(rings.future.nodes.length));
  const source = current.indexOf(self);
  const after = future.indexOf(target);
  if (source < 0 || after < 0) return false;
  const before = current.indexOf(target);
  if (before < 0) return true;
  // The target moves up the key's list: a write with a `from` between its two places skipped it.
  return Math.max(source, after) < Math.min(before, current.length, future.length);
}

/** A transfer's first page, before its entries' size is known. */
const FIRST_PAGE_ENTRIES = 64;
/** Later pages hold about this long of the flow-control budget. */
const PAGE_SECONDS = 0.25;

/**
 * A page's entries take at most this many encoded bytes, so that the page
 * fits one internode frame with its header and its last key (of at most
 * keyBytesHardMax bytes). A page holds one entry at least: a maximal entry
 * fits a frame (limits.ts).
 */
const PAGE_ENTRY_BYTES_MAX =
  limits.internodeFrameBytesMax - FRAME_HEADER_BYTES - streamPageFixedBytes(limits.keyBytesHardMax);

/** Keys sampled to estimate a transfer's share of a source's store (hashes spread them over the ring). */
const ESTIMATE_SAMPLES = 4096;

export interface StreamSourceOptions {
  readonly selfUrl: string;
  readonly topology: Topology;
  readonly engine: Engine;
  readonly entriesMax?: number;
  readonly bytesMax?: number;
  readonly examineMax?: number;
  readonly yieldEntries?: number;
}

export interface StreamSourceStats {
  readonly pages: number;
  readonly entries: number;
  readonly bytes: number;
}

/** The source side: answers STREAM requests, one page at a time. */
export class StreamSource {
  readonly #selfUrl: string;
  readonly #topology: Topology;
  readonly #engine: Engine;
  readonly #entriesMax: number;
  readonly #bytesMax: number;
  readonly #examineMax: number;
  readonly #yieldEntries: number;
  /** The page being served; the next one waits for it. */
  #queue: Promise<unknown> = Promise.resolve();
  /** "view digest, target" -> share of this node's store the transfer takes. */
  readonly #shares = new Map<string, number>();
  #pages = 0;
  #entries = 0;
  #bytes = 0;

  constructor(options: StreamSourceOptions) {
    this.#selfUrl = options.selfUrl;
    this.#topology = options.topology;
    this.#engine = options.engine;
    this.#entriesMax = options.entriesMax ?? limits.streamPageEntriesMax;
    this.#bytesMax = options.bytesMax ?? limits.streamPageBytesMax;
    this.#examineMax = options.examineMax ?? limits.streamExamineEntriesMax;
    this.#yieldEntries = options.yieldEntries ?? limits.antiEntropyYieldEntries;
  }

  /** The internode STREAM handler. */
  handle(body: Buffer): Promise<Buffer> {
    const request = decodeStreamRequest(body);
    const answer = this.#queue.then(() =>
      this.#page(request.epoch, request.view, request.target, request.start, request.limit),
    );
    this.#queue = answer.catch(() => undefined);
    return answer;
  }

  stats(): StreamSourceStats {
    return { pages: this.#pages, entries: this.#entries, bytes: this.#bytes };
  }

  async #page(epoch: bigint, view: bigint, target: string, start: Buffer, limit: number): Promise<Buffer> {
    const topology = this.#topology;
    const current = topology.current;
    const future = topology.future;
    const held = viewDigest(topology.view);
    if (topology.epoch !== epoch || held !== view || current === undefined || future === undefined) {
      // Not the move the receiver streams for: it exchanges views with this node and asks again.
      return encodeStreamPage({
        epoch: topology.epoch,
        view: held,
        more: true,
        estimatedBytes: 0,
        coveredThrough: Buffer.alloc(0),
        entries: [],
      });
    }
    const rings: MoveRings = { current, future };
    const entriesMax = Math.max(1, Math.min(limit, this.#entriesMax));
    const entries: Entry[] = [];
    let bytes = 0;
    /** The entries' encoded bytes (encodedEntryBytes). */
    let encoded = 0;
    let examined = 0;
    let coveredThrough: Buffer = Buffer.alloc(0);
    let more = false;
    const cursor = this.#engine.scan({ start });
    const pacer = new ScanPacer();
    try {
      scan: for (let batch = await cursor.next(); batch !== undefined; batch = await cursor.next()) {
        for (const entry of batch) {
          const size = streamedTo(rings, this.#selfUrl, target, entry.key) ? encodedEntryBytes(entry) : -1;
          if (size >= 0 && entries.length > 0 && encoded + size > PAGE_ENTRY_BYTES_MAX) {
            // Past the frame limit the receiver drops the connection, so the page never gets through:
            // this entry starts the next page (coveredThrough stays before it).
            more = true;
            break scan;
          }
          examined++;
          coveredThrough = entry.key;
          if (size >= 0) {
            entries.push(entry);
            bytes += entry.key.length + entry.value.length;
            encoded += size;
          }
          if (entries.length >= entriesMax || bytes >= this.#bytesMax || examined >= this.#examineMax) {
            more = true;
            break scan;
          }
          if (examined % this.#yieldEntries === 0) await pacer.pause();
        }
      }
    } finally {
      await cursor.close();
    }
    this.#pages++;
    this.#entries += entries.length;
    this.#bytes += bytes;
    return encodeStreamPage({
      epoch,
      view,
      more,
      estimatedBytes: this.#estimate(rings, view, target),
      coveredThrough,
      entries,
    });
  }

  /** The transfer's expected bytes: its share of sampled keys times this store's size. */
  #estimate(rings: MoveRings, view: bigint, target: string): number {
    const cacheKey = `${view} ${target}`;
    let share = this.#shares.get(cacheKey);
    if (share === undefined) {
      let held = 0;
      let sent = 0;
      const size = replicationFactor(rings.current.nodes.length);
      for (let i = 0; i < ESTIMATE_SAMPLES; i++) {
        const key = Buffer.from(`estimate-${i}`);
        if (!rings.current.replicas(key, size).includes(this.#selfUrl)) continue;
        held++;
        if (streamedTo(rings, this.#selfUrl, target, key)) sent++;
      }
      share = held === 0 ? 0 : sent / held;
      if (this.#shares.size > 64) this.#shares.clear();
      this.#shares.set(cacheKey, share);
    }
    const stats = this.#engine.stats();
    return share * (stats.tableBytes + stats.memtableBytes);
  }
}

export type TransferState = 'waiting' | 'streaming' | 'done' | 'skipped';

export interface TransferProgress {
  readonly source: string;
  readonly state: TransferState;
  readonly keys: number;
  /** Key and value bytes received. */
  readonly bytes: number;
  /** The source's estimate of the whole transfer, once it answered a page. */
  readonly estimatedBytes: number;
  readonly error?: string;
}

export interface ReceiveProgress {
  readonly epoch: string;
  /** The move's view digest (viewDigestHex): the completer flips only for its own view. */
  readonly view: string;
  readonly done: boolean;
  readonly startedAtMs: number;
  readonly doneAtMs?: number;
  /** Ranges (transfers, one per source) of the move, and those finished. */
  readonly ranges: number;
  readonly rangesDone: number;
  readonly keys: number;
  readonly bytes: number;
  /** The sources' estimates of what is still to come. */
  readonly bytesLeft: number;
  readonly transfers: readonly TransferProgress[];
}

export interface StreamReceiverOptions {
  readonly selfUrl: string;
  /** The view of the move: its epoch and rings. */
  readonly view: Membership;
  readonly rings: MoveRings;
  readonly engine: Engine;
  /** isUp: whether the transport sees the peer up (a source is given up only when not); without it, any source failing long enough is. */
  readonly transport: Pick<MembershipLinks, 'stream'> & { isUp?(peer: string): boolean };
  /** Every entry received and stored: the node's clock moves past it, the replica's memory learns it. */
  readonly observe?: (version: bigint, key: Buffer) => void;
  /** A source answered for another epoch: bring views in line with it (gossip.exchange). */
  readonly onStale?: (source: string) => Promise<unknown>;
  readonly bytesPerSecond?: number;
  readonly writesInFlightMax?: number;
  readonly pageEntries?: number;
  readonly requestTimeoutMs?: number;
  readonly retryMs?: number;
  readonly sourceDownMaxMs?: number;
  readonly log?: (line: string) => void;
}

interface _Transfer {
  source: string;
  state: TransferState;
  keys: number;
  bytes: number;
  estimatedBytes: number;
  error: string | undefined;
}

/** The receiving side: pulls this node's new ranges of one move from every live current replica. */
export class StreamReceiver {
  readonly #options: StreamReceiverOptions;
  readonly #transfers: _Transfer[];
  readonly #startedAtMs = Date.now();
  #doneAtMs: number | undefined;
  #aborted = false;
  /** When the flow-control budget is next free (ms). */
  #nextFreeMs = 0;

  constructor(options: StreamReceiverOptions) {
    this.#options = options;
    this.#transfers = currentMembers(options.view)
      .filter((m) => m.url !== options.selfUrl && !m.dead)
      .map((m) => ({
        source: m.url,
        state: 'waiting',
        keys: 0,
        bytes: 0,
        estimatedBytes: 0,
        error: undefined,
      }));
  }

  get epoch(): bigint {
    return this.#options.view.epoch;
  }

  /** The view of the move this receiver streams for. */
  get view(): Membership {
    return this.#options.view;
  }

  get done(): boolean {
    return this.#doneAtMs !== undefined;
  }

  /** Streams every transfer; resolves once all are done or skipped, or aborted. Never rejects. */
  async run(): Promise<void> {
    await Promise.all(this.#transfers.map((transfer) => this.#run(transfer)));
    const finished = this.#transfers.every((t) => t.state === 'done' || t.state === 'skipped');
    if (!this.#aborted && finished) this.#doneAtMs = Date.now();
  }

  /** Stops at the next page (the view changed, or the node shuts down). */
  abort(): void {
    this.#aborted = true;
  }

  progress(): ReceiveProgress {
    let keys = 0;
    let bytes = 0;
    let bytesLeft = 0;
    let rangesDone = 0;
    for (const t of this.#transfers) {
      keys += t.keys;
      bytes += t.bytes;
      if (t.state === 'done' || t.state === 'skipped') rangesDone++;
      else bytesLeft += Math.max(0, t.estimatedBytes - t.bytes);
    }
    return {
      epoch: String(this.epoch),
      view: viewDigestHex(this.#options.view),
      done: this.done,
      startedAtMs: this.#startedAtMs,
      ...(this.#doneAtMs === undefined ? {} : { doneAtMs: this.#doneAtMs }),
      ranges: this.#transfers.length,
      rangesDone,
      keys,
      bytes,
      bytesLeft,
      transfers: this.#transfers.map((t) => ({
        source: t.source,
        state: t.state,
        keys: t.keys,
        bytes: t.bytes,
        estimatedBytes: Math.round(t.estimatedBytes),
        ...(t.error === undefined ? {} : { error: t.error }),
      })),
    };
  }

  async #run(transfer: _Transfer): Promise<void> {
    const options = this.#options;
    const retryMs = options.retryMs ?? limits.streamRetryMs;
    const downMaxMs = options.sourceDownMaxMs ?? limits.streamSourceDownMaxMs;
    let start: Buffer = Buffer.alloc(0);
    let failingSinceMs: number | undefined;
    let storeFailureLogged = false;
    const view = viewDigest(options.view);
    transfer.state = 'streaming';
    while (!this.#aborted) {
      let page: ReturnType<typeof decodeStreamPage>;
      try {
        const body = encodeStreamRequest({
          epoch: this.epoch,
          view,
          target: options.selfUrl,
          start,
          limit: this.#pageLimit(transfer),
        });
        page = decodeStreamPage(
          await options.transport.stream(
            transfer.source,
            body,
            Date.now() + (options.requestTimeoutMs ?? limits.streamRequestTimeoutMs),
          ),
        );
      } catch (err) {
        if (this.#aborted) return;
        transfer.error = errorMessage(err);
        failingSinceMs ??= Date.now();
        const down = options.transport.isUp === undefined || !options.transport.isUp(transfer.source);
        if (down && Date.now() - failingSinceMs >= downMaxMs) {
          transfer.state = 'skipped';
          options.log?.(
            `Streaming from ${transfer.source} given up after ${downMaxMs} ms of failures, the source down: ${transfer.error}`,
          );
          return;
        }
        await sleep(retryMs);
        continue;
      }
      failingSinceMs = undefined;
      const sameView = page.epoch === this.epoch && page.view === view;
      if (sameView) {
        // Written before the next page is asked for: the transfer's position only moves past stored entries.
        try {
          await this.#apply(page.entries, transfer);
        } catch (err) {
          if (this.#aborted) return;
          // This node's failure, not the source's: the same page again, for as long as it takes.
          transfer.error = `cannot store what ${transfer.source} sent: ${errorMessage(err)}`;
          if (!storeFailureLogged) {
            storeFailureLogged = true;
            options.log?.(`Streaming from ${transfer.source}: ${transfer.error}; retrying`);
          }
          await sleep(retryMs);
          continue;
        }
      }
      storeFailureLogged = false;
      transfer.error = undefined;
      if (!sameView) {
        transfer.error =
          page.epoch === this.epoch
            ? `source holds another view of membership epoch ${page.epoch} (a change made at the same time)`
            : `source holds membership epoch ${page.epoch}, this move is epoch ${this.epoch}`;
        await options.onStale?.(transfer.source);
        await sleep(retryMs);
        continue;
      }
      transfer.estimatedBytes = Math.max(page.estimatedBytes, transfer.bytes);
      if (!page.more) {
        transfer.state = 'done';
        return;
      }
      // The smallest key after coveredThrough: the same bytes and a zero byte.
      if (page.coveredThrough.length > 0) start = Buffer.concat([page.coveredThrough, Buffer.alloc(1)]);
      await this.#throttle(page.entries);
    }
  }

  async #apply(entries: readonly Entry[], transfer: _Transfer): Promise<void> {
    const { engine, observe } = this.#options;
    const inFlight = this.#options.writesInFlightMax ?? limits.streamWritesInFlightMax;
    for (let i = 0; i < entries.length; i += inFlight) {
      const slice = entries.slice(i, i + inFlight);
      await Promise.all(slice.map((entry) => engine.write(entry)));
      for (const entry of slice) {
        observe?.(entry.version, entry.key);
        transfer.keys++;
        transfer.bytes += entry.key.length + entry.value.length;
      }
    }
  }

  /**
   * Entries to ask for: a page of about PAGE_SECONDS of the flow-control
   * budget at the transfer's average entry size so far (a small first page),
   * so that a low bound paces pages evenly instead of letting one large page
   * through at once.
   */
  #pageLimit(transfer: _Transfer): number {
    const most = this.#options.pageEntries ?? limits.streamPageEntriesMax;
    if (transfer.keys === 0) return Math.min(most, FIRST_PAGE_ENTRIES);
    const rate = this.#options.bytesPerSecond ?? limits.streamBytesPerSecondMax;
    const entryBytes = Math.max(1, transfer.bytes / transfer.keys);
    return Math.max(1, Math.min(most, Math.floor((rate * PAGE_SECONDS) / entryBytes)));
  }

  /** Waits so that this node takes at most bytesPerSecond from its sources together. */
  async #throttle(entries: readonly Entry[]): Promise<void> {
    const rate = this.#options.bytesPerSecond ?? limits.streamBytesPerSecondMax;
    let bytes = 0;
    for (const entry of entries) bytes += entry.key.length + entry.value.length;
    const nowMs = Date.now();
    this.#nextFreeMs = Math.max(this.#nextFreeMs, nowMs) + (bytes * 1000) / rate;
    const waitMs = this.#nextFreeMs - nowMs;
    if (waitMs >= 1) await sleep(waitMs);
  }
}
