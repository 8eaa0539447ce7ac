/**
 * AntiEntropyResponder: the peer's side of an anti-entropy exchange. It
 * answers DIGEST and SUMMARY requests (format.ts) from its own engine and
 * keeps no state between requests, so a requester that disappears costs
 * nothing. The node's InternodeHandler hands it ANTI_ENTROPY bodies.
 *
 * A digest request reads no entry: the pair's leaves are sums of the arc
 * digests the node keeps current (indexed-engine.ts). A summary page reads
 * the hash index over the differing buckets' arcs only, from its start
 * position until the page is full. A node whose tree is not ready for the
 * requester's ring answers "not ready". Requests are served one at a time.
 *
 * Example:
 *   const responder = new AntiEntropyResponder({ selfUrl, ring, engine });
 *   handler.antiEntropy = (body) => responder.handle(body);
 */
import { limits } from '../../config/limits.js';
import { RingkvError } from '../../util/errors.js';
import type { Ring } from '../ring/index.js';
import { arcRanges, arcsIn, validArcs } from './arc-digests.js';
import {
  decodeRequest,
  encodeArcsAnswer,
  encodeDigestAnswer,
  encodeSummaryAnswer,
  NOT_READY,
  RequestKind,
} from './format.js';
import type { IndexedEngine } from './indexed-engine.js';
import { MerkleTree } from './merkle.js';
import type { PairScope, SummaryLimits } from './scan.js';
import { summaryPage } from './scan.js';

export interface AntiEntropyResponderOptions {
  readonly selfUrl: string;
  /** The ring compared over: fixed, or read for each request (the membership's current ring). */
  readonly ring: Ring | (() => Ring | undefined);
  readonly engine: IndexedEngine;
  readonly summaryLimits?: Partial<SummaryLimits>;
}

export interface ResponderStats {
  readonly digestsServed: number;
  readonly digestsEqual: number;
  /** Digest requests answered "not ready" (tree being built, or a different ring). */
  readonly digestsNotReady: number;
  readonly arcsServed: number;
  readonly summaryPagesServed: number;
}

export class AntiEntropyResponder {
  readonly #selfUrl: string;
  readonly #ring: () => Ring | undefined;
  readonly #engine: IndexedEngine;
  readonly #limits: SummaryLimits;
  /** The request being served; the next one waits for it. */
  #queue: Promise<unknown> = Promise.resolve();
  #digestsServed = 0;
  #digestsEqual = 0;
  #digestsNotReady = 0;
  #arcsServed = 0;
  #summaryPagesServed = 0;

  constructor(options: AntiEntropyResponderOptions) {
    this.#selfUrl = options.selfUrl;
    const ring = options.ring;
    this.#ring = typeof ring === 'function' ? ring : () => ring;
    this.#engine = options.engine;
    this.#limits = {
      entriesMax: options.summaryLimits?.entriesMax ?? limits.antiEntropySummaryEntriesMax,
      bytesMax: options.summaryLimits?.bytesMax ?? limits.antiEntropySummaryBytesMax,
      yieldEntries: options.summaryLimits?.yieldEntries ?? limits.antiEntropyYieldEntries,
    };
  }

  /** Answers one request body; rejects with RINGKV_BAD_REQUEST for one it cannot serve. */
  handle(body: Buffer): Promise<Buffer> {
    const answer = this.#queue.then(() => this.#serve(body));
    this.#queue = answer.catch(() => undefined);
    return answer;
  }

  stats(): ResponderStats {
    return {
      digestsServed: this.#digestsServed,
      digestsEqual: this.#digestsEqual,
      digestsNotReady: this.#digestsNotReady,
      arcsServed: this.#arcsServed,
      summaryPagesServed: this.#summaryPagesServed,
    };
  }

  async #serve(body: Buffer): Promise<Buffer> {
    const request = decodeRequest(body);
    const ring = this.#ring();
    if (ring === undefined || !ring.nodes.includes(this.#selfUrl)) {
      throw new RingkvError(
        'RINGKV_BAD_REQUEST',
        `Anti-entropy request while ${this.#selfUrl} is off the ring`,
      );
    }
    const nodes = ring.nodes;
    if (!nodes.includes(request.from) || request.from === this.#selfUrl) {
      throw new RingkvError('RINGKV_BAD_REQUEST', `Anti-entropy request from ${request.from}, not a peer`);
    }
    if (request.replicationFactor < 1 || request.replicationFactor > nodes.length) {
      throw new RingkvError(
        'RINGKV_BAD_REQUEST',
        `Anti-entropy replication factor ${request.replicationFactor} out of range 1..${nodes.length}`,
      );
    }
    const scope: PairScope = {
      ring,
      self: this.#selfUrl,
      peer: request.from,
      replicationFactor: request.replicationFactor,
      leafBits: request.leafBits,
    };
    const digests = request.ringFingerprint === ring.fingerprint ? this.#engine.digestsFor(ring) : undefined;
    if (request.kind === RequestKind.Digest) {
      this.#digestsServed++;
      if (digests === undefined) {
        this.#digestsNotReady++;
        return encodeDigestAnswer(NOT_READY);
      }
      const leaves = digests.leaves(scope);
      const root = MerkleTree.of(leaves).root();
      const equal = root.every((word, i) => word === request.root[i]);
      if (equal) this.#digestsEqual++;
      return encodeDigestAnswer(equal ? undefined : leaves);
    }
    if (digests === undefined) {
      throw new RingkvError(
        'RINGKV_UNAVAILABLE',
        `Anti-entropy tree of ${this.#selfUrl} is not ready for the requester's ring`,
      );
    }
    if (request.kind === RequestKind.Arcs) {
      this.#arcsServed++;
      return encodeArcsAnswer(digests.wordsOf(arcsIn(scope, request.buckets)));
    }
    if (!validArcs(scope, request.arcs)) {
      throw new RingkvError(
        'RINGKV_BAD_REQUEST',
        'Anti-entropy summary request names arcs the pair does not share',
      );
    }
    const limit = Math.max(1, Math.min(request.limit, this.#limits.entriesMax));
    const { page, read } = await summaryPage(
      this.#engine.index,
      arcRanges(ring, request.arcs),
      request.start,
      { ...this.#limits, entriesMax: limit },
    );
    this.#engine.countRead(read);
    this.#summaryPagesServed++;
    return encodeSummaryAnswer(page);
  }
}
