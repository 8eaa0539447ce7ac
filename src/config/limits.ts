/**
 * Every bound in ringkv, with its reason. Options may override the defaults
 * marked "default"; the rest are fixed by formats or by safety. Relations
 * between them are asserted at the bottom, when the module loads.
 */
import { assert } from '../util/assert.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const limits = {
  /** API.md: a key longer than this gets 414 (default; --max-key-bytes). */
  keyBytesMax: 1024,
  /** API.md: a value larger than this gets 413 (default; --max-value-bytes). */
  valueBytesMax: 8 * MiB,
  /**
   * The longest ttl kept: 1,000 years, in ms. API.md takes any positive
   * integer as a ttl; a longer one is kept as this. An expiry is stored as
   * ms since 1970 in 6 bytes (up to the year 10889), so an unbounded ttl
   * could not be written at all.
   */
  ttlMsMax: 1000 * 365 * 24 * 60 * 60 * 1000,
  /** Hard ceiling on any key any format accepts: a u16 length in SSTable blocks. */
  keyBytesHardMax: 64 * KiB - 1,
  /** Hard ceiling on a value: frames use u32 lengths; 256 MiB keeps one entry far below heap size. */
  valueBytesHardMax: 256 * MiB,

  /** DESIGN.md: a memtable becomes immutable past this (default). */
  memtableBytesMax: 4 * MiB,
  /**
   * A node's memtables are each frozen at a size drawn in [75%, 100%] of the
   * above (the engine alone: at the size itself), so that replicas taking
   * the same writes do not flush at the same moment:
   * 1 MiB apart at most, 4 s of writes at ~250 KiB/s (2,000 writes/s of
   * 128-byte values), against a flush's few hundred ms.
   */
  memtableBytesJitter: 0.25,
  /**
   * Immutable memtables waiting for flush before writers stall: two of 4 MiB
   * absorb a burst while one flushes (~50 ms of disk at these sizes).
   */
  immutableMemtablesMax: 2,
  /** Target uncompressed data block size: one disk page-cache read of 4 KiB. */
  blockBytes: 4 * KiB,
  /** Bloom filter bits per key: ~1% false positives with 7 hash probes. */
  bloomBitsPerKey: 10,
  /**
   * A table being written is synced each time this many more bytes are
   * written, not only at its end (RocksDB's bytes_per_sync). Otherwise a
   * flush or compaction leaves megabytes in the page cache that its final
   * fsync pushes to the disk at once, and every WAL sync of the writes
   * meanwhile waits behind them.
   */
  tableSyncBytes: 1024 * KiB,
  /**
   * Compressed tables: the writer holds back the first blocks of a table, up
   * to this many bytes, and samples them for the table's dictionary (sstable/
   * compression.ts). 256 KiB is 64 blocks: enough to see most of the shapes
   * of the values, a few ms of compression in the worker.
   */
  compressionSampleBytes: 256 * KiB,
  /**
   * ...and the dictionary is at most this long, and at most an eighth of the
   * blocks it is sampled from, every other held-back one (a small table gets
   * a small one). With 16 KiB, 4 KiB blocks of
   * JSON documents took 36% of their size under lz4, against 53% without a
   * dictionary; larger ones gained little. Kept in memory with the index.
   */
  compressionDictionaryBytesMax: 16 * KiB,
  /**
   * Tables are compressed from this level down; flushes (level 0) and level 1
   * are written raw. Those two levels hold about l0CompactionTrigger flushes
   * plus levelBytesBase (~32 MiB), a small share of a store past a few
   * hundred MiB, and are rewritten most often: with random keys every L0
   * merge rewrites all of level 1. Compressing them too cost about 50% more
   * CPU per write in the engine bench (json workload, lz4), for the same
   * bytes on disk once the data has moved down (RocksDB's usual advice too).
   */
  compressionLevelMin: 2,
  /**
   * Block cache (default; --block-cache-bytes): verified data blocks kept in
   * memory, off the JS heap. Index and filters are always in memory besides
   * this. An uncached block costs a pread through libuv's thread pool (~10 us
   * of event-loop time); 256 MiB keeps the blocks of a ~1M-key, 160 MiB store.
   */
  blockCacheBytes: 256 * MiB,
  /**
   * Cache warming (after open; lsm/cache-warmer.ts) reads data blocks in
   * sequential chunks of this size while the cache has room: one 1 MiB read
   * costs about what one 4 KiB read does on the event loop.
   */
  cacheWarmChunkBytes: 1 * MiB,
  /** Compaction: L0 tables (overlapping, one per flush) that trigger a merge into L1. */
  l0CompactionTrigger: 4,
  /** Compaction: L1 target size; each deeper level is `levelBytesMultiplier` times larger. */
  levelBytesBase: 16 * MiB,
  levelBytesMultiplier: 10,
  levelCount: 7,
  /** Compaction output tables are cut near this size so later merges stay small. */
  tableBytesTarget: 4 * MiB,
  /**
   * Tombstones and expired values are kept at least this long (by the physical
   * time in their version) so that replicas that missed a delete learn of it
   * through hints or anti-entropy before it can be dropped (default).
   */
  tombstoneGraceMs: 24 * 60 * 60 * 1000,
  /**
   * Compaction: when no level is over its size, a table is compacted for its
   * tombstones and values with an expiry alone once they are all past the
   * grace period and make up at least this share of its entries (Cassandra's
   * default tombstone_threshold). Checked at least every
   * compactionDroppableCheckMs, since time alone makes them droppable.
   */
  compactionDroppableShareMin: 0.2,
  compactionDroppableCheckMs: 60_000,

  /**
   * Group commit: a batch closes once it holds this many bytes (a larger
   * single record goes alone), so one write stays a few ms of disk time.
   */
  walBatchBytesMax: 4 * MiB,
  /**
   * With sync on, a new WAL is filled with zeros ahead of use (one memtable's
   * worth), in chunks of this size with a rest between them, so that the
   * filling does not crowd the live log's syncs off the disk.
   */
  walPrefillChunkBytes: 64 * KiB,
  walPrefillRestMs: 10,
  /**
   * A flush or compaction that failed (a damaged table, a full disk) is
   * retried after this long, doubled with each failure in a row up to
   * backgroundRetryMaxMs: background work resumes by itself once the cause
   * is gone, and a lasting cause costs one attempt (and one log line) a minute.
   */
  backgroundRetryMinMs: 1_000,
  backgroundRetryMaxMs: 60_000,
  /** A scan hands out at most this many entries per batch (one event-loop turn of work). */
  scanBatchEntriesMax: 256,
  /** ...and at most about this many bytes. */
  scanBatchBytesMax: 256 * KiB,

  /**
   * Start-up: how long the host names in --cluster get to resolve (all at
   * once) before those still unresolved are compared by spelling alone
   * (config/endpoints.ts). getaddrinfo against a DNS server that does not
   * answer retries for tens of seconds; a node must not wait that long to start.
   */
  clusterLookupTimeoutMs: 2_000,
  /** Coordinator deadline for a request's replicas (default; --request-timeout): past it, 504. */
  requestTimeoutMs: 1000,
  /** How often anti-entropy compares a node's ranges with its replicas (default; 0 turns it off). */
  antiEntropyIntervalMs: 60_000,
  /**
   * HTTP request head (request line + headers). A range request carries two
   * keys, each up to 9 bytes per key byte once percent-encoded (%XX of UTF-8);
   * 18 * 1024 + 8 KiB of headers = 26 KiB covers the default key limit.
   */
  httpHeaderBytesMin: 16 * KiB,
  /** A client has this long to send a request's head: slow-loris protection. */
  httpHeadersTimeoutMs: 10_000,
  /** ...and this long for the whole request: 8 MiB at ~300 KiB/s. */
  httpRequestTimeoutMs: 30_000,
  /**
   * What a PUT's declared Content-Length reserves before its bytes come; the
   * buffer then doubles as they arrive (util/sized-body.ts), so that heads
   * declaring large values cannot reserve memory they never send.
   */
  httpBodyFirstBytes: 64 * KiB,
  /** An idle keep-alive connection is closed after this. */
  httpKeepAliveTimeoutMs: 5_000,
  /**
   * How often the head, request and keep-alive deadlines above are checked,
   * on both request paths (node:http's connectionsCheckingInterval, the fast
   * path's sweep): a deadline is enforced up to this late. node:http's own
   * default, 30 s, would let a client that trickles its head hold the
   * connection for 40 s rather than 10.
   */
  httpTimeoutCheckMs: 1_000,
  /**
   * Client requests slower than this get a log record (--slow-request):
   * well above a healthy p99 (a few ms), at the scale of the request
   * timeout, so that a record means a request that waited on something.
   */
  slowRequestMs: 500,
  /**
   * A connection that moves no bytes for this long is closed, which bounds what a
   * range reader that stopped reading (and its open cursor) can hold.
   */
  httpSocketIdleTimeoutMs: 120_000,
  /**
   * After a 413, the rest of the body is read and discarded (so the connection
   * stays usable) up to this many bytes; past it the connection is closed. A
   * body declared larger is answered with `Connection: close` and still read
   * up to this, so that the client reads the 413 before the connection is cut.
   */
  httpDrainBytesMax: 64 * MiB,
  /** On shutdown, in-flight requests and range streams get this long before connections are cut. */
  shutdownGraceMs: 5_000,
  /** ...and the whole shutdown (grace, then closing the store) this long before a forced exit. */
  shutdownForceMs: 9_000,
  /**
   * On shutdown, an anti-entropy round under way gets this long (beside the
   * grace) to end at its next step; one still waiting on a peer then ends
   * when the transport closes.
   */
  shutdownAntiEntropyMs: 1_000,
  /**
   * On shutdown, after the grace, pending hints are handed to reachable peers
   * for at most this long (API.md); the rest stay on disk for the next start.
   * Grace 5 s + drain 2 s leaves 2 s of the forced exit's 9 s to close the store.
   */
  shutdownHintDrainMs: 2_000,

  /**
   * Internode: the largest frame either side accepts (default). One WRITE of a
   * maximal entry must fit: 8 MiB value + 64 KiB key + 64 bytes of entry and
   * frame headers, rounded up to 4 KiB. A peer sending more is cut off.
   */
  internodeFrameBytesMax: 8 * MiB + 68 * KiB,
  /** Internode: a peer marked down is probed (one connection attempt) at most this often (default). */
  internodeProbeIntervalMs: 250,
  /**
   * Internode: a request to a peer marked down starts a connection attempt
   * (and waits for it) once this long has passed since the last failure;
   * sooner, it fails at once. Short, so that a peer that is back is used by
   * the first request that needs it; long enough that a dead peer costs one
   * refused connect per quarantine, not one per request.
   */
  internodeQuarantineMs: 20,
  /**
   * Internode: every open link sends a PING this often; its PONG carries the
   * peer's wall clock (clock skew in /v0/status), and a peer that does not
   * answer is found hung even when the link carries nothing else.
   */
  internodeHeartbeatMs: 1000,
  /** Shutdown: peers get this long to acknowledge that this node is leaving before it stops serving. */
  shutdownAnnounceMs: 500,
  /**
   * Shutdown: an idle client connection is closed only once the node has been
   * leaving this long. Until then a request on it is answered 503 with
   * Connection: close, and the connection closes cleanly after that answer.
   * Closing a connection while it is idle races a request the client may be
   * sending on it, and that request sees a reset. So every connection used at
   * least this often gets the 503. A node with no client connection open does
   * not wait.
   */
  shutdownIdleCloseMs: 1_000,
  /** Internode: an Upgrade handshake that has not completed by then counts as a failed attempt (default). */
  internodeConnectTimeoutMs: 1000,
  /**
   * Internode: a connection with requests waiting that has received nothing
   * for this long is presumed hung (a stopped process keeps its sockets open)
   * and is closed, so later requests fail fast instead of each timing out.
   */
  internodeUnresponsiveMs: 2000,
  /**
   * Internode server: an upgraded connection on which nothing has arrived for
   * this long, with nothing under way, is closed (a peer's stuck process, or
   * something that is not a ringkv node, holding a socket and a file
   * descriptor; TCP keepalive only finds a dead host). A healthy link never
   * trips it: its client sends a PING every internodeHeartbeatMs (1 s), the
   * next one once the last is answered, and gives the link up itself when
   * one goes unanswered for internodeUnresponsiveMs (2 s). So frames arrive
   * at most about 1 + 2 = 3 s apart on a live link, and usually 1 s; 10 s
   * is ten heartbeats, over three times that worst gap, which leaves room
   * for the client's own event-loop stalls.
   */
  internodeServerIdleTimeoutMs: 10_000,
  /** Internode: deadlines are checked by one shared timer at this resolution. */
  internodeTimerResolutionMs: 10,
  /** Internode: requests in flight per peer before new ones are refused (a 1 s deadline at 16k req/s). */
  internodeInFlightMax: 16_384,
  /** Internode: bytes queued on a peer's socket before new requests are refused (it is not keeping up). */
  internodeQueuedBytesMax: 64 * MiB,
  /** Internode server: requests handled at once per connection before it stops reading the socket. */
  internodeServerInFlightMax: 1024,
  /** Internode: entries per SCAN answer; answers are also cut at the frame limit. */
  internodeScanEntriesMax: 4096,
  /**
   * Hints: undelivered hint bytes kept on disk per peer (default). Past it new
   * hints for that peer are dropped and counted; anti-entropy repairs what they
   * carried. 64 MiB holds about a minute of 1 KiB writes at 1,000/s.
   */
  hintBytesPerPeerMax: 64 * MiB,
  /** Hints: undelivered hint bytes kept for all peers together (default): a 7-node cluster with 4 peers down. */
  hintBytesTotalMax: 256 * MiB,
  /**
   * Hints: the most bytes a peer's hint file holds, header included; a hint
   * that would take it past this goes to a new file, also one in the middle
   * of a group commit's write. A hint larger than this alone (of a value near
   * valueBytesMax: at most 8 MiB + a 1 KiB key + 31 B of framing) has a
   * file of its own: a record is never split.
   * Delivery progress inside a file lives in memory, so after a restart at
   * most the undelivered part of one file per peer is sent twice (harmless:
   * the newest version wins).
   */
  hintSegmentBytesMax: 1 * MiB,
  /**
   * Hints: damaged hint files set aside (*.hint.corrupt) kept per peer, for
   * the operator to look at; past it the oldest is deleted, with a log line.
   * Their hints are lost either way (anti-entropy repairs what they carried),
   * so they are not counted against the hint budgets, which would let damage
   * crowd out live hints; this bounds them instead: 4 files of at most a
   * segment (1 MiB) each, 4 MiB a peer, or at worst of one hint larger than
   * that each (8 MiB and a key), about 32 MiB a peer.
   */
  hintCorruptFilesPerPeerMax: 4,
  /** Hints: entries per delivery batch; a batch is acknowledged (dropped from disk) as a whole. */
  hintBatchEntriesMax: 256,
  /** Hints: about this many bytes per delivery batch (one larger entry goes alone). */
  hintBatchBytesMax: 1 * MiB,
  /** Hints: writes of one batch in flight to a peer at once. */
  hintInFlightMax: 32,
  /** Hints: peers handed their hints at once. */
  hintPeersConcurrentMax: 4,
  /** Hints: how often the handoff loop looks for peers to deliver to (default). */
  hintHandoffIntervalMs: 1000,
  /**
   * Hints: a scheduled handoff round serves one peer at most this long, then
   * moves on; the next round goes on where it stopped. Rounds do not
   * overlap, so without it a slow peer's long backlog would hold up the
   * other peers' hints until all of it was delivered.
   */
  hintPeerRoundMsMax: 10_000,
  /** Hints: a peer the transport reports down is still tried this often (in case no probe brings it back). */
  hintDownRetryMs: 10_000,
  /** Hints: each delivery write has this long (the coordinator's default deadline). */
  hintWriteTimeoutMs: 1000,
  /**
   * Hints: a hint is kept and handed over only while its version's physical
   * time is younger than tombstoneGraceMs less a margin, a tenth of the grace
   * but at most this (hintAgeMaxMs in hints/hint-store.ts). Past the grace a
   * replica may have dropped the tombstone that shadows a hint's value, which
   * would come back (the grace contract, storage/lsm/background.ts). The
   * margin covers what lies between the coordinator's check and the
   * replica's: the replica ages the tombstone by its own wall clock (within
   * clockSkewMaxMs of the coordinator's), a hint checked when read is
   * written up to hintWriteTimeoutMs later, and a version may run a little
   * ahead of its coordinator's wall clock. An hour is far above those and
   * takes 4% off a day's grace; a tenth keeps a short grace (tests) useful.
   */
  hintGraceMarginMsMax: 60 * 60 * 1000,

  /**
   * Anti-entropy: the key-hash space is cut into 2^leafBits buckets, the leaves
   * of the Merkle tree. 2^10 leaves of 12 bytes make a 12 KiB digest answer;
   * within a differing bucket the pair compares its ring arcs' digests (~12
   * per bucket with 3 nodes of 4,096 points), so one differing key costs a
   * summary of one arc (~80 keys at 1M keys), not of the bucket or the store.
   */
  antiEntropyLeafBits: 10,
  /** Anti-entropy: the default replication factor it maintains is the cluster size capped at this. */
  antiEntropyReplicationFactorMax: 3,
  /**
   * Anti-entropy: deadline of one request (digests cost the peer nothing; a
   * summary page reads its index over the arcs asked for, paced: see
   * antiEntropyScanShare).
   */
  antiEntropyRequestTimeoutMs: 120_000,
  /** Anti-entropy: key summaries per summary page. */
  antiEntropySummaryEntriesMax: 4096,
  /** Anti-entropy: ...and about this many bytes per page (keys dominate). */
  antiEntropySummaryBytesMax: 1 * MiB,
  /**
   * Anti-entropy: the hash index and its digests are rebuilt from the store
   * this often, so that drift (power lost while the index's unsynced log
   * was behind the store's) is corrected within a day.
   */
  antiEntropyVerifyIntervalMs: 24 * 60 * 60 * 1000,
  /** Anti-entropy: a rebuild of the hash index that failed (a read error, a full disk) is tried again this long after. */
  antiEntropyRebuildRetryMs: 30_000,
  /**
   * Anti-entropy: digests are computed from the index in this many hash
   * ranges; writes of the keys of the range being read wait that long
   * (1M keys: ~250 entries, well under a millisecond).
   */
  antiEntropyTreeChunks: 4096,
  /** Anti-entropy: the hash index's block cache (its entries are keys and versions only). */
  antiEntropyIndexCacheBytes: 8 * MiB,
  /** Anti-entropy: entries copied (pulled plus pushed) per peer per round; the rest waits a round. */
  antiEntropyRepairsPerRoundMax: 100_000,
  /** Anti-entropy: copies in flight at once. */
  antiEntropyRepairsInFlightMax: 32,
  /** Anti-entropy: entries hashed or compared between yields to the event loop. */
  antiEntropyYieldEntries: 1024,
  /**
   * Anti-entropy: the share of the event loop its reads may take (they rest
   * between slices): an exchange's index reads, and a rebuild's scan of the
   * store and digest computation, so that they do not crowd out requests.
   */
  antiEntropyScanShare: 0.25,
  /** Internode: a handshake proof's timestamp may differ from the server's clock by this much. */
  internodeProofWindowMs: 30_000,
  /** Internode: handshake nonces remembered (one window's worth) to refuse replays. */
  internodeNonceCacheMax: 100_000,

  /**
   * Replication: the largest difference between two nodes' wall clocks the
   * ordering of writes is designed for (default; --max-clock-skew). Each
   * replica remembers the keys written in the last `recentWritesWindowPerSkew`
   * times this (3 s by default), so that a write stamped by a coordinator
   * whose clock is behind is caught as a conflict (replication/replica.ts).
   */
  clockSkewMaxMs: 1000,
  /** The recent-writes window is this many times the clock skew: margin for delays in flight. */
  recentWritesWindowPerSkew: 3,
  /**
   * Replication: recent writes remembered per replica, whatever their age.
   * 20,000 writes/s over a 3 s window is 60,000; past the bound the oldest
   * are dropped into a floor version, which keeps ordering safe and only
   * costs spurious conflicts.
   */
  recentWritesMax: 131_072,
  /** ...and the key bytes they may hold (keys are up to 1 KiB by default). */
  recentWriteKeyBytesMax: 16 * MiB,
  /** Replication: a write that meets conflicts is re-stamped and sent again at most this many times, then 504. */
  writeConflictRetriesMax: 3,
  /**
   * Replication: a read asks only `ack` replicas (the local one first); if
   * they have not all answered after this long, it asks the rest of the
   * `from` replicas too, so one slow replica does not hold the reply.
   */
  readHedgeMs: 20,
  /**
   * ...but at most this share of reads ask the rest (a budget refilled as
   * reads start): when a node is overloaded every read is slow, and asking
   * more replicas then would only add load where there is none to spare.
   */
  readHedgeShare: 0.05,
  /** The most hedges the budget holds for a burst of slow reads. */
  readHedgeBurst: 20,
  /** Replication: read repairs (background writes to stale replicas) in flight; more are skipped and counted. */
  readRepairsInFlightMax: 256,
  /**
   * Cluster range: entries asked of each node per SCAN page. Pages are also
   * cut at the frame limit, so a node's buffered page holds at most ~8 MiB.
   */
  clusterScanPageEntries: 128,
  /**
   * Cluster ranges a node coordinates at once (scope=cluster); one more is
   * answered 503 with Retry-After (clusterScanRetryAfterS) and opens nothing.
   * Each holds a page per node and its answer's socket until it finishes,
   * fails, its client goes away, or its socket moves nothing for
   * httpSocketIdleTimeoutMs (a reader that stopped). Memory: a page is 128
   * entries, so with 1 KiB values 16 ranges over 5 nodes hold about
   * 16 * 5 * 128 KiB = 10 MiB; pages of large values are cut at the frame
   * (~8 MiB), so at worst 16 * 5 * 8 MiB = 640 MiB, which is why the bound
   * is not higher. Reads and writes do not queue behind ranges, so a refused
   * range is retried, not waited for.
   */
  clusterScansMax: 16,
  /** Seconds a client refused for clusterScansMax is told to wait (Retry-After). */
  clusterScanRetryAfterS: 1,

  /**
   * Membership: every node exchanges its view with one random peer this
   * often (besides pushing each change to every member at once), so a node
   * that missed a push catches up within a few intervals.
   */
  membershipGossipIntervalMs: 1_000,
  /** Membership: deadline of one view exchange or push. */
  membershipRequestTimeoutMs: 2_000,
  /**
   * Moves: after the current ring changes (a flip or a cancel), the previous
   * ring keeps getting writes this long, as pending owners do during a move,
   * while nodes that have not yet heard of the change still read from it
   * (pushes reach every node within milliseconds; this covers a slow one).
   * The old owners drop what they no longer own only after it.
   */
  ringTrailingMs: 5_000,
  /** Moves: how often the node that completes a move asks the new owners how far their streaming got. */
  movePollIntervalMs: 500,
  /** Streaming: entries per STREAM page (the page is also cut near streamPageBytesMax and at the frame limit). */
  streamPageEntriesMax: 1024,
  streamPageBytesMax: 1 * MiB,
  /** Streaming: entries a source examines for one page before answering with what it found (a paced scan). */
  streamExamineEntriesMax: 65_536,
  /** Streaming: deadline of one page (the source scans up to streamExamineEntriesMax entries, paced). */
  streamRequestTimeoutMs: 30_000,
  /**
   * Streaming: flow control, the bytes a new owner takes per second from all
   * its sources together (default; RINGKV_STREAM_BYTES_PER_SEC), with the
   * sources' scans paced (antiEntropyScanShare) and one page in flight per
   * transfer. Per byte the cost is per entry (decode, engine write): on a
   * 2-core machine a join left unbounded took ~6 MB/s of 128-byte entries
   * and raised clients' p50 tenfold; at 2 MB/s it did not show. 8 MiB/s
   * moves a node's share of 1M such keys (three copies of three quarters of
   * them, ~340 MB) in under a minute where the cores are not all taken.
   */
  streamBytesPerSecondMax: 8 * MiB,
  /** Streaming: local writes of a page in flight at once (they share the WAL's group commits). */
  streamWritesInFlightMax: 64,
  /** Streaming: a source that failed is tried again after this long. */
  streamRetryMs: 500,
  /**
   * Streaming: a source down this long is given up for the move: its keys
   * come from the other current replicas of each key, all of which are
   * streamed from too.
   */
  streamSourceDownMaxMs: 15_000,
} as const;

assert(limits.keyBytesMax <= limits.keyBytesHardMax, 'keyBytesMax must fit a u16 length');
assert(limits.valueBytesMax <= limits.valueBytesHardMax, 'valueBytesMax must be under the hard maximum');
assert(limits.tableBytesTarget <= limits.levelBytesBase, 'a table must fit in L1');
assert(
  limits.compressionDictionaryBytesMax * 16 <= limits.compressionSampleBytes,
  'a full dictionary is an eighth of the half of the held-back blocks it is sampled from',
);
assert(limits.backgroundRetryMinMs <= limits.backgroundRetryMaxMs, 'the retry backoff grows');
assert(limits.shutdownIdleCloseMs < limits.shutdownGraceMs, 'idle connections close within the grace period');
assert(limits.shutdownGraceMs < limits.shutdownForceMs, 'connections are cut before the forced exit');
assert(
  limits.shutdownAnnounceMs +
    Math.max(limits.shutdownGraceMs, limits.shutdownAntiEntropyMs) +
    limits.shutdownHintDrainMs +
    1_000 <=
    limits.shutdownForceMs,
  'hints are drained with a second left to close the store before the forced exit',
);
assert(limits.httpHeadersTimeoutMs <= limits.httpRequestTimeoutMs, 'the head is part of the request');
assert(
  limits.internodeFrameBytesMax >= limits.valueBytesMax + limits.keyBytesHardMax + 64,
  'one maximal entry must fit an internode frame',
);
assert(
  limits.recentWritesWindowPerSkew >= 2,
  'the recent-writes window must exceed the clock skew with margin',
);
assert(limits.streamPageBytesMax < limits.internodeFrameBytesMax, 'a stream page fits a frame');
assert(limits.clusterScansMax >= 1, 'a node takes at least one cluster range');
assert(limits.clusterScanRetryAfterS >= 1, 'Retry-After is whole seconds');
assert(
  limits.membershipGossipIntervalMs * 3 <= limits.ringTrailingMs,
  'a node that missed the push of a flip hears of it by gossip before the old ring stops getting writes',
);
assert(
  limits.clusterScanPageEntries <= limits.internodeScanEntriesMax,
  'a cluster range page must fit one SCAN answer',
);
assert(
  limits.internodeServerInFlightMax <= limits.internodeInFlightMax,
  'a server takes what one client sends',
);
assert(
  limits.internodeServerIdleTimeoutMs >= 3 * (limits.internodeHeartbeatMs + limits.internodeUnresponsiveMs),
  'a live link (a PING each heartbeat, or the client gives the link up) never goes silent for the server idle timeout',
);
assert(limits.hintBytesPerPeerMax <= limits.hintBytesTotalMax, 'one peer fits the total hint budget');
assert(limits.hintSegmentBytesMax <= limits.hintBytesPerPeerMax, 'a hint file fits the per-peer budget');
assert(limits.hintCorruptFilesPerPeerMax >= 1, 'the newest damaged hint file is kept to look at');
assert(
  Math.min(limits.tombstoneGraceMs / 10, limits.hintGraceMarginMsMax) >
    limits.clockSkewMaxMs + limits.hintWriteTimeoutMs,
  'a hint is dropped before a replica may collect its tombstone, skew and delivery time included',
);
assert(
  limits.antiEntropyLeafBits >= 1 && limits.antiEntropyLeafBits <= 16,
  'leaf count fits a digest answer',
);
assert(
  limits.keyBytesMax + 4 <= limits.keyBytesHardMax,
  'a key and its 4-byte hash fit the anti-entropy index',
);
assert(
  limits.antiEntropyVerifyIntervalMs === 0 || limits.antiEntropyVerifyIntervalMs >= 60 * 60 * 1000,
  'a full rebuild of the anti-entropy index is rare (it reads the whole store)',
);
assert(
  limits.antiEntropySummaryBytesMax + limits.keyBytesHardMax + 64 <= limits.internodeFrameBytesMax,
  'a summary page fits an internode frame',
);
