/**
 * The Transport contract: how a coordinator reaches the other nodes, and the
 * InternodeHandler a node offers them. Two implementations keep it: the
 * multiplexed binary protocol (frame-transport.ts, the default) and plain
 * HTTP/1.1 requests (http-transport.ts, to measure what the former gains);
 * transport.suite.ts holds the behaviour both must show.
 *
 * - Peers are node URLs exactly as in `--cluster` (http://host:port).
 * - deadlineMs is absolute (a Date.now() time). A request still unanswered
 *   then rejects with RingkvError('RINGKV_TIMEOUT'); one whose deadline has
 *   already passed rejects at once.
 * - A peer that cannot be reached rejects with RINGKV_UNAVAILABLE, and once
 *   marked down it keeps rejecting at once, without a connection attempt per
 *   request, until a background probe (one attempt per probe interval) finds
 *   it back, or a request made after the quarantine (limits.internodeQuarantineMs)
 *   since the last failure tries it again. isUp() reports that state.
 * - An error the peer's handler raised rejects with the same code when it is
 *   one the wire format knows (format.ts), RINGKV_UNAVAILABLE otherwise.
 * - Entries handed out own their bytes (never views into socket buffers).
 * - Calls may overlap freely; after close() they reject with RINGKV_CLOSED.
 */
import type { Entry } from '../../storage/index.js';

/** What a node does with the requests its peers send (the replica side of the coordinator). */
export interface InternodeHandler {
  /**
   * Stores the entry, version included, once durable per the node's sync
   * mode. Resolves to undefined, or to a CONFLICT: a version of the key at
   * least as new as the entry's that this replica already knew of (the entry
   * was still applied; the engine keeps the newest). A coordinator that gets
   * one stamps a newer version and writes again (replication/replica.ts).
   */
  write(entry: Entry): Promise<bigint | undefined>;
  /** The newest stored version of the key, tombstones and expired values included. */
  read(key: Buffer): Promise<Entry | undefined>;
  /**
   * Up to `limit` entries with start <= key < end (no end: to the last key),
   * in key order; `more` is true when entries may follow the last one.
   */
  scan(start: Buffer, end: Buffer | undefined, limit: number): Promise<ScanPage>;
  /**
   * Answers an anti-entropy request body with an answer body (both laid out
   * by cluster/antientropy/format.ts; opaque to the transport). A node
   * without it answers ANTI_ENTROPY with ERROR RINGKV_BAD_REQUEST.
   */
  readonly antiEntropy?: ((body: Buffer) => Promise<Buffer>) | undefined;
  /**
   * Membership and moves (cluster/membership; bodies laid out by its
   * format.ts, opaque here): a view to merge, answered with the view held
   * after merging; a page of a move's stream; an operator's move request.
   * A node without them answers ERROR RINGKV_BAD_REQUEST.
   */
  readonly membership?: ((body: Buffer) => Promise<Buffer>) | undefined;
  readonly stream?: ((body: Buffer) => Promise<Buffer>) | undefined;
  readonly move?: ((body: Buffer) => Promise<Buffer>) | undefined;
  /** The node's wall clock (ms), sent in PONG so that peers measure clock skew. */
  wallMs?(): number;
  /** The peer at `node` announced its shutdown (LEAVING): route around it. */
  leaving?(node: string): void;
}

export interface ScanPage {
  readonly entries: Entry[];
  /** true: ask again from just after the last entry's key. */
  readonly more: boolean;
}

export interface Transport {
  /** Resolves to what the peer's InternodeHandler.write() answered: undefined, or the conflicting version. */
  write(peer: string, entry: Entry, deadlineMs: number): Promise<bigint | undefined>;
  read(peer: string, key: Buffer, deadlineMs: number): Promise<Entry | undefined>;
  scan(
    peer: string,
    start: Buffer,
    end: Buffer | undefined,
    limit: number,
    deadlineMs: number,
  ): Promise<{ entries: Entry[]; more: boolean }>;
  /**
   * Sends an anti-entropy request body; resolves to the peer's answer body
   * (an owned buffer). A peer that does not serve anti-entropy rejects with
   * RINGKV_BAD_REQUEST.
   */
  antiEntropy(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer>;
  /** false while the peer is marked down (requests to it fail at once). */
  isUp(peer: string): boolean;
  /** Rejects what is in flight with RINGKV_CLOSED and releases connections and timers. */
  close(): Promise<void>;
}

/**
 * The messages of membership and moves, beside the Transport contract (both
 * real transports keep it). Bodies are opaque here (cluster/membership/format.ts);
 * each resolves to the answer's body.
 */
export interface MembershipLinks {
  membership(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer>;
  stream(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer>;
  move(peer: string, body: Buffer, deadlineMs: number): Promise<Buffer>;
}

/** A peer as a node's transport sees it, for /v0/status. */
export interface PeerStatus {
  /** up: requests are sent; down: failed, being probed; leaving: it announced its shutdown. */
  readonly state: 'up' | 'down' | 'leaving';
  /** Times its link failed: a connection attempt refused or unanswered, or an open link lost. */
  readonly failures: number;
  /** Its wall clock minus this node's (ms), from the last heartbeat; absent until measured. */
  readonly skewMs?: number;
  /** That heartbeat's round trip (ms): the skew is known to within half of it. */
  readonly rttMs?: number;
  /** When it was measured (this node's wall clock, ms). */
  readonly sampledAtMs?: number;
}

/**
 * The life of the links to peers, beside the Transport contract: what a node
 * does at start and at shutdown, and what it learns from its peers' own
 * connections. Both real transports keep it (frame-transport.ts,
 * http-transport.ts).
 */
export interface PeerLinks {
  /** Opens a link to each peer now; resolves once every attempt has connected or failed (never rejects). */
  connect(peers: readonly string[]): Promise<void>;
  /** The peer reached this node (its handshake or request arrived): a link marked down tries again at once. */
  peerSeen(peer: string): void;
  /** The peer announced its shutdown: new requests to it fail at once; those in flight are answered. */
  peerLeaving(peer: string): void;
  /** Tells every peer with an open link that this node is leaving; resolves once each answered or at the deadline. */
  announceLeaving(deadlineMs: number): Promise<void>;
  /**
   * Drops all that is kept for the peer (it left the cluster): its link
   * closes, its probes and timers stop, requests waiting on it reject with
   * RINGKV_UNAVAILABLE. A later request to it starts afresh, as to a peer
   * never seen.
   */
  forget(peer: string): void;
  peerStatus(peer: string): PeerStatus;
}

/** Counters for /v0/status and for tests. */
export interface TransportStats {
  /** Requests sent (frames or HTTP requests). */
  readonly requests: number;
  /** Write calls on sockets: with batching, far fewer than requests under load. */
  readonly socketWrites: number;
  /** Connection (or, over HTTP, probe) attempts, successful or not. */
  readonly connectAttempts: number;
  readonly connectFailures: number;
  readonly timeouts: number;
  /** Requests refused at once because their peer was marked down. */
  readonly refusedDown: number;
}

/** TransportStats as a transport keeps them: one mutable record, copied out by stats(). */
export type TransportCounters = { -readonly [K in keyof TransportStats]: TransportStats[K] };

export function newTransportCounters(): TransportCounters {
  return {
    requests: 0,
    socketWrites: 0,
    connectAttempts: 0,
    connectFailures: 0,
    timeouts: 0,
    refusedDown: 0,
  };
}
