/**
 * The cluster range (`/v0/entities?...&scope=cluster`): a cursor that merges
 * the sorted streams of every node, the local engine's scan and a SCAN paging
 * of each peer, into one stream in key order with each key once, at its
 * newest version across nodes (tombstones and expired entries included: the
 * route keeps only live ones).
 *
 * - Every node takes part, not only a key's replicas: which `from` a key was
 *   written with is not known, so a key may live on any node.
 * - Hence a range needs every node. Before the first batch, a first page
 *   that fails (a peer marked down fails at once) rejects with RINGKV_NOT_ENOUGH_REPLICAS,
 *   which the route answers 504 before it starts streaming: a range that
 *   silently leaves out the keys of a down node would look complete. A peer
 *   that fails later rejects next() too; the route then cuts the answer short
 *   (no final chunk), so a client never mistakes it for a whole range.
 * - Back-pressure: next() builds one batch and a peer's next page is asked
 *   for only once its previous page is used up, so pages are pulled as fast
 *   as the HTTP answer drains. Memory: one page per node (`pageEntries`, and
 *   a peer cuts a page at about one frame of bytes) plus one local batch,
 *   and a batch handed out holds at most `batchEntriesMax` entries and about
 *   `batchBytesMax` bytes (a batch keeps the pages it took entries from).
 * - Pages of a peer are asked for from just after the last key received (the
 *   key with a 0 byte appended is the next possible key).
 */
import type { Entry, EntryCursor, ScanRange } from '../../storage/index.js';
import { newer } from '../../storage/index.js';
import { compareBytes } from '../../util/bytes.js';
import { errorMessage, RingkvError } from '../../util/errors.js';
import type { Transport } from '../transport/index.js';

export interface ClusterScanOptions {
  readonly range: ScanRange;
  readonly selfUrl: string;
  /** Every node of the cluster, this one included. */
  readonly nodes: readonly string[];
  /** Opens the local engine's scan of the range. */
  readonly openLocal: (range: ScanRange) => EntryCursor;
  readonly transport: Transport;
  /** Entries asked of a peer per page. */
  readonly pageEntries: number;
  /** Each page must arrive within this many ms. */
  readonly timeoutMs: number;
  /** Entries per batch handed out by next(). */
  readonly batchEntriesMax: number;
  /** ...and about this many key and value bytes (one entry more than fits goes in, so that a batch is never empty). */
  readonly batchBytesMax: number;
}

interface _Source {
  /** The entry at the head, or undefined when exhausted or when fill() is due. */
  head(): Entry | undefined;
  advance(): void;
  /** true when the buffer is used up but more may come: call fill(). */
  readonly needsFill: boolean;
  fill(): Promise<void>;
  close(): Promise<void>;
}

export class ClusterScanCursor implements EntryCursor {
  readonly #options: ClusterScanOptions;
  #sources: _Source[] | undefined;
  #closed = false;

  constructor(options: ClusterScanOptions) {
    this.#options = options;
  }

  async next(): Promise<Entry[] | undefined> {
    if (this.#closed) return undefined;
    const sources = this.#sources ?? this.#open();
    const batch: Entry[] = [];
    let bytes = 0;
    while (batch.length < this.#options.batchEntriesMax && bytes < this.#options.batchBytesMax) {
      await _fillAll(sources);
      if (this.#closed) return undefined;
      let smallest: Buffer | undefined;
      for (const source of sources) {
        const head = source.head();
        if (head !== undefined && (smallest === undefined || compareBytes(head.key, smallest) < 0)) {
          smallest = head.key;
        }
      }
      if (smallest === undefined) break;
      let best: Entry | undefined;
      for (const source of sources) {
        const head = source.head();
        if (head !== undefined && compareBytes(head.key, smallest) === 0) {
          best = newer(best, head);
          source.advance();
        }
      }
      batch.push(best!);
      bytes += best!.key.length + best!.value.length;
    }
    return batch.length > 0 ? batch : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const sources = this.#sources ?? [];
    this.#sources = [];
    await Promise.all(sources.map((source) => source.close()));
  }

  #open(): _Source[] {
    const { nodes, selfUrl } = this.#options;
    // No check of the peers' up/down state here: the first pages are asked of every
    // peer at once, and a peer's transport refuses at once when it is down, or waits
    // for a connection attempt that may find it back (a peer that just restarted).
    const sources = nodes.map(
      (node): _Source =>
        node === selfUrl
          ? new _LocalSource(this.#options.openLocal(this.#options.range))
          : new _PeerSource(node, this.#options),
    );
    this.#sources = sources;
    return sources;
  }
}

/** Fills every source that needs it, concurrently (peers answer in parallel). */
async function _fillAll(sources: readonly _Source[]): Promise<void> {
  const fills: Promise<void>[] = [];
  for (const source of sources) {
    if (source.needsFill) fills.push(source.fill());
  }
  if (fills.length > 0) await Promise.all(fills);
}

class _LocalSource implements _Source {
  readonly #cursor: EntryCursor;
  #batch: Entry[] = [];
  #index = 0;
  #done = false;

  constructor(cursor: EntryCursor) {
    this.#cursor = cursor;
  }

  get needsFill(): boolean {
    return !this.#done && this.#index >= this.#batch.length;
  }

  head(): Entry | undefined {
    return this.#batch[this.#index];
  }

  advance(): void {
    this.#index++;
  }

  async fill(): Promise<void> {
    const batch = await this.#cursor.next();
    this.#index = 0;
    if (batch === undefined) {
      this.#done = true;
      this.#batch = [];
    } else {
      this.#batch = batch;
    }
  }

  close(): Promise<void> {
    return this.#cursor.close();
  }
}

class _PeerSource implements _Source {
  readonly #peer: string;
  readonly #options: ClusterScanOptions;
  #start: Buffer;
  #page: Entry[] = [];
  #index = 0;
  #more = true;

  constructor(peer: string, options: ClusterScanOptions) {
    this.#peer = peer;
    this.#options = options;
    this.#start = options.range.start;
  }

  get needsFill(): boolean {
    return this.#more && this.#index >= this.#page.length;
  }

  head(): Entry | undefined {
    return this.#page[this.#index];
  }

  advance(): void {
    this.#index++;
  }

  async fill(): Promise<void> {
    const { transport, range, pageEntries, timeoutMs } = this.#options;
    let page: { entries: Entry[]; more: boolean };
    try {
      page = await transport.scan(this.#peer, this.#start, range.end, pageEntries, Date.now() + timeoutMs);
    } catch (err) {
      throw new RingkvError(
        'RINGKV_NOT_ENOUGH_REPLICAS',
        `A cluster range needs every node: ${this.#peer}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const last = page.entries.at(-1);
    if (last === undefined && page.more) {
      // Nothing to go on from: ending here would answer a range short and look complete.
      throw new RingkvError(
        'RINGKV_NOT_ENOUGH_REPLICAS',
        `A cluster range needs every node: ${this.#peer}: answered an empty page that says more follow`,
      );
    }
    this.#page = page.entries;
    this.#index = 0;
    this.#more = page.more;
    if (last !== undefined) this.#start = Buffer.concat([last.key, _ZERO]);
  }

  async close(): Promise<void> {
    this.#page = [];
    this.#more = false;
  }
}

const _ZERO = Buffer.from([0]);
