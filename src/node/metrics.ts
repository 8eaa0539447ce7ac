/**
 * NodeMetrics: what GET /metrics answers, in the Prometheus text format,
 * for one node. Almost everything is read at scrape time from counters the
 * parts keep anyway (HTTP server, engine stats(), the coordinator's
 * status(), the transport, hints, anti-entropy), so a scrape costs a few
 * object reads and the requests cost nothing more. Two things are observed
 * as they happen: each request's latency (http/request-metrics.ts, owned by
 * the HTTP server) and each heartbeat's round trip to a peer (observeRtt,
 * fed by the transport's clock samples). Process figures come from
 * prom-client (process-metrics.ts).
 *
 * The peer series follow the membership, read at each scrape: a member that
 * joins appears (its round-trip histogram made on first use), and one that
 * is removed disappears, histogram and all, rather than stay at
 * ringkv_peer_up 0 as a false alert.
 *
 * The series, all named ringkv_*, are listed in README.md ("Operating a
 * cluster") and docs/api.md.
 *
 *   const metrics = new NodeMetrics(url);
 *   ...clusterParts(options, { onClockSample: (peer, _skew, rttMs) => metrics.observeRtt(peer, rttMs) })
 *   metrics.watch({ server, engine, parts, ready: () => node.ready });
 *   const text = await metrics.exposition();
 */
import type { AntiEntropyStats } from '../cluster/antientropy/index.js';
import type { HandoffStats, HintStoreStats } from '../cluster/hints/index.js';
import type { TransportStats } from '../cluster/transport/index.js';
import type { HttpServer } from '../http/index.js';
import type { Engine, EngineStats } from '../storage/index.js';
import { Histogram, LATENCY_BOUNDS_SECONDS } from '../util/histogram.js';
import { PrometheusText } from '../util/prometheus-text.js';
import type { ClusterParts } from './cluster-parts.js';
import { startProcessMetrics, writeProcessMetrics } from './process-metrics.js';

export interface MetricsSources {
  readonly server: HttpServer;
  readonly engine: Engine;
  /** A cluster's parts; undefined for a node on its own. */
  readonly parts: ClusterParts | undefined;
  readonly ready: () => boolean;
}

/** A counter read from a record of numbers: name, HELP, the record's field. */
type CounterRow<T> = readonly [name: string, help: string, field: keyof T & string];

const ENGINE_COUNTERS: readonly CounterRow<EngineStats>[] = [
  ['ringkv_engine_writes_total', 'Entries written to the engine (write-ahead log and memtable)', 'writes'],
  ['ringkv_engine_reads_total', 'Point reads of the engine', 'reads'],
  ['ringkv_engine_wal_writes_total', 'Write calls of write-ahead log batches (group commit)', 'walWrites'],
  ['ringkv_engine_wal_syncs_total', 'fsyncs (fdatasync) of the write-ahead log', 'walSyncs'],
  ['ringkv_engine_write_stalls_total', 'Writes that waited for a memtable flush to make room', 'writeStalls'],
  ['ringkv_engine_flushes_total', 'Memtables flushed to an SSTable', 'flushes'],
  ['ringkv_engine_flush_failures_total', 'Flushes that failed (each is retried)', 'flushFailures'],
  ['ringkv_engine_compactions_total', 'Compactions done', 'compactions'],
  [
    'ringkv_engine_compaction_failures_total',
    'Compactions that failed (each is retried)',
    'compactionFailures',
  ],
  ['ringkv_engine_block_cache_hits_total', 'SSTable block reads served by the block cache', 'blockCacheHits'],
  [
    'ringkv_engine_block_cache_misses_total',
    'SSTable block reads that missed the block cache',
    'blockCacheMisses',
  ],
];

/** status().coordinator of a ClusterStore (replication/coordinator-context.ts). */
interface CoordinatorCounters {
  readonly notEnoughReplicas: number;
  readonly conflicts: number;
  readonly conflictRetries: number;
  readonly replicaFailures: number;
  readonly readRepairs: number;
  readonly readRepairFailures: number;
  readonly readRepairsSkipped: number;
  readonly readHedges: number;
  readonly readHedgesSkipped: number;
  readonly readHedgesLate: number;
}

const COORDINATOR_COUNTERS: readonly CounterRow<CoordinatorCounters>[] = [
  [
    'ringkv_coordinator_not_enough_replicas_total',
    'Client requests answered 504: fewer than ack replicas answered in time',
    'notEnoughReplicas',
  ],
  [
    'ringkv_coordinator_conflicts_total',
    'Conflict answers from replicas (a version as new already there)',
    'conflicts',
  ],
  [
    'ringkv_coordinator_conflict_retries_total',
    'Writes re-stamped and sent again after a conflict',
    'conflictRetries',
  ],
  [
    'ringkv_coordinator_replica_failures_total',
    'Replica requests that failed (errors, timeouts, peers down)',
    'replicaFailures',
  ],
  [
    'ringkv_coordinator_read_repairs_total',
    'Newest versions written back to replicas that answered an older one',
    'readRepairs',
  ],
  ['ringkv_coordinator_read_repair_failures_total', 'Read repairs that failed', 'readRepairFailures'],
  [
    'ringkv_coordinator_read_repairs_skipped_total',
    'Read repairs not made because too many were under way',
    'readRepairsSkipped',
  ],
  [
    'ringkv_coordinator_read_hedges_total',
    'Reads that asked the rest of their replicas (hedged)',
    'readHedges',
  ],
  [
    'ringkv_coordinator_read_hedges_skipped_total',
    'Slow reads not hedged, the hedge budget being spent',
    'readHedgesSkipped',
  ],
  [
    'ringkv_coordinator_read_hedges_late_total',
    'Of those, reads hedged at half their deadline',
    'readHedgesLate',
  ],
];

const TRANSPORT_COUNTERS: readonly CounterRow<TransportStats>[] = [
  ['ringkv_transport_requests_total', 'Internode requests sent', 'requests'],
  ['ringkv_transport_timeouts_total', 'Internode requests that timed out', 'timeouts'],
  [
    'ringkv_transport_refused_down_total',
    'Internode requests refused at once: peer marked down',
    'refusedDown',
  ],
  ['ringkv_transport_connect_failures_total', 'Internode connection attempts that failed', 'connectFailures'],
];

const HINT_COUNTERS: readonly CounterRow<HintStoreStats>[] = [
  ['ringkv_hints_added_total', 'Hints stored for peers that missed a write', 'added'],
  ['ringkv_hints_dropped_total', 'Hints not stored: the per-peer or total bound was reached', 'dropped'],
  [
    'ringkv_hints_too_old_total',
    'Hints of values dropped as older than the tombstone grace allows (not stored, or not delivered)',
    'tooOld',
  ],
];

const HANDOFF_COUNTERS: readonly CounterRow<HandoffStats>[] = [
  ['ringkv_hint_handoff_rounds_total', 'Hint handoff rounds', 'rounds'],
  [
    'ringkv_hint_handoff_failed_batches_total',
    'Hint batches whose delivery failed (retried later)',
    'failedBatches',
  ],
  ['ringkv_hint_handoff_forgotten_total', 'Hints dropped because their peer left the cluster', 'forgotten'],
  [
    'ringkv_hint_handoff_rerouted_total',
    "Hints handed to their key's current replicas because their peer no longer holds the key",
    'rerouted',
  ],
];

const ANTI_ENTROPY_COUNTERS: readonly CounterRow<AntiEntropyStats>[] = [
  ['ringkv_antientropy_rounds_total', 'Anti-entropy rounds run', 'rounds'],
  ['ringkv_antientropy_exchanges_total', 'Exchanges with one peer', 'exchanges'],
  ['ringkv_antientropy_failed_exchanges_total', 'Exchanges that failed', 'failedExchanges'],
  [
    'ringkv_antientropy_keys_digested_total',
    'Local keys in the compared trees (from the kept digests: none is read)',
    'keysDigested',
  ],
  [
    'ringkv_antientropy_keys_compared_total',
    "Peers' keys compared one by one with the local ones (in differing buckets)",
    'summariesReceived',
  ],
];

export class NodeMetrics {
  readonly #nodeUrl: string;
  /** Heartbeat round trips per peer, seconds; those of peers no longer members are dropped at each scrape. */
  readonly #rtt = new Map<string, Histogram>();
  #sources: MetricsSources | undefined;

  constructor(nodeUrl: string) {
    this.#nodeUrl = nodeUrl;
    startProcessMetrics();
  }

  /** A heartbeat's round trip to `peer` (the transport measures it in whole milliseconds). */
  observeRtt(peer: string, rttMs: number): void {
    this.#rttOf(peer).observe(rttMs / 1000);
  }

  #rttOf(peer: string): Histogram {
    let histogram = this.#rtt.get(peer);
    if (histogram === undefined) {
      histogram = new Histogram(LATENCY_BOUNDS_SECONDS);
      this.#rtt.set(peer, histogram);
    }
    return histogram;
  }

  /** The parts to read at scrape time, once the node has them. */
  watch(sources: MetricsSources): void {
    this.#sources = sources;
  }

  async exposition(): Promise<string> {
    const text = new PrometheusText();
    text.gauge('ringkv_node_info', 'This node, by its URL (always 1)', [
      { labels: { node: this.#nodeUrl }, value: 1 },
    ]);
    const sources = this.#sources;
    if (sources !== undefined) {
      text.gauge('ringkv_node_ready', '1 once the node serves requests, 0 while it starts or leaves', [
        { value: sources.ready() && !sources.server.leaving ? 1 : 0 },
      ]);
      this.#writeHttp(text, sources.server);
      this.#writeEngine(text, sources.engine.stats());
      if (sources.parts !== undefined) this.#writeCluster(text, sources.parts);
    }
    await writeProcessMetrics(text);
    return text.toString();
  }

  #writeHttp(text: PrometheusText, server: HttpServer): void {
    server.requestMetrics.write(text);
    const counters = server.counters;
    text.counter('ringkv_http_fast_path_requests_total', 'Requests answered by the HTTP fast path', [
      { value: counters.fastPath },
    ]);
    text.counter(
      'ringkv_http_fast_path_handovers_total',
      'Connections the fast path handed to node:http (at a request it does not take)',
      [{ value: counters.fastPathHandovers }],
    );
  }

  #writeEngine(text: PrometheusText, stats: EngineStats): void {
    writeCounters(text, ENGINE_COUNTERS, stats);
    text.gauge('ringkv_engine_memtable_bytes', 'Bytes in the memtable taking writes', [
      { value: stats.memtableBytes },
    ]);
    text.gauge('ringkv_engine_immutable_memtables', 'Frozen memtables waiting for their flush', [
      { value: stats.immutableMemtables },
    ]);
    text.gauge(
      'ringkv_engine_tables',
      'SSTables per level',
      stats.tablesPerLevel.map((tables, level) => ({ labels: { level: String(level) }, value: tables })),
    );
    text.gauge('ringkv_engine_table_bytes', 'Bytes of SSTables on disk, all levels', [
      { value: stats.tableBytes },
    ]);
    text.gauge(
      'ringkv_engine_background_error',
      '1 while flushes or compactions keep failing (the last error is in /v0/status)',
      [{ value: stats.backgroundError === undefined ? 0 : 1 }],
    );
  }

  #writeCluster(text: PrometheusText, parts: ClusterParts): void {
    const status = parts.store.status();
    const coordinator = status.coordinator as CoordinatorCounters & {
      gets: number;
      puts: number;
      deletes: number;
      readRepairsInFlight: number;
    };
    text.counter('ringkv_coordinator_requests_total', 'Client requests coordinated, by operation', [
      { labels: { op: 'get' }, value: coordinator.gets },
      { labels: { op: 'put' }, value: coordinator.puts },
      { labels: { op: 'delete' }, value: coordinator.deletes },
    ]);
    writeCounters(text, COORDINATOR_COUNTERS, coordinator);
    text.gauge('ringkv_coordinator_read_repairs_in_flight', 'Read repairs under way', [
      { value: coordinator.readRepairsInFlight },
    ]);
    // The members other than this node, as of now: a handful of URLs, read once per scrape.
    const peers = parts.membership.peers();
    this.#writePeers(text, parts, peers);
    this.#writeMembership(text, parts);
    this.#writeHints(text, parts, peers);
    this.#writeAntiEntropy(text, parts);
  }

  /** The membership and the move under way: this node's streaming as a new owner, and what it served. */
  #writeMembership(text: PrometheusText, parts: ClusterParts): void {
    const membership = parts.membership;
    const view = membership.topology.view;
    text.gauge('ringkv_membership_epoch', "The membership's epoch as this node holds it", [
      { value: Number(view.epoch) },
    ]);
    const states = ['joining', 'normal', 'leaving', 'removed'] as const;
    const status = membership.status() as { members: { state: string }[] };
    text.gauge(
      'ringkv_membership_members',
      'Members by state, as this node sees the membership',
      states.map((state) => ({
        labels: { state },
        value: status.members.filter((m) => m.state === state).length,
      })),
    );
    const receiving = membership.mover.progress().receiving;
    text.gauge(
      'ringkv_move_in_progress',
      '1 while a move (a join, decommission, remove or replace) is under way',
      [{ value: membership.topology.future === undefined ? 0 : 1 }],
    );
    text.gauge(
      'ringkv_move_ranges',
      "This node's ranges to stream in the move under way (one per source), and those done",
      [
        { labels: { state: 'all' }, value: receiving?.ranges ?? 0 },
        { labels: { state: 'done' }, value: receiving?.rangesDone ?? 0 },
      ],
    );
    text.gauge(
      'ringkv_move_streamed_bytes',
      'Bytes (keys and values) this node streamed in for the move under way',
      [{ value: receiving?.bytes ?? 0 }],
    );
    text.gauge(
      'ringkv_move_left_bytes',
      "Bytes this node has still to stream in the move under way (the sources' estimate)",
      [{ value: receiving?.bytesLeft ?? 0 }],
    );
    text.counter(
      'ringkv_stream_served_bytes_total',
      'Bytes (keys and values) this node streamed out to new owners',
      [{ value: membership.source.stats().bytes }],
    );
  }

  #writePeers(text: PrometheusText, parts: ClusterParts, peers: readonly string[]): void {
    writeCounters(text, TRANSPORT_COUNTERS, parts.transport.stats());
    // A removed member's round trips go with it (a late heartbeat may make them again: dropped next time).
    for (const peer of this.#rtt.keys()) if (!peers.includes(peer)) this.#rtt.delete(peer);
    const links = peers.map((peer) => ({ peer, status: parts.transport.peerStatus(peer) }));
    text.gauge(
      'ringkv_peer_up',
      '1 while requests are sent to the peer, 0 while it is down or leaving',
      links.map(({ peer, status }) => ({ labels: { peer }, value: status.state === 'up' ? 1 : 0 })),
    );
    text.gauge(
      'ringkv_peer_state',
      "The peer's link state (up, down, leaving): 1 for the current one",
      links.flatMap(({ peer, status }) =>
        (['up', 'down', 'leaving'] as const).map((state) => ({
          labels: { peer, state },
          value: status.state === state ? 1 : 0,
        })),
      ),
    );
    text.counter(
      'ringkv_peer_link_failures_total',
      'Times the link to the peer failed: a connection attempt refused or unanswered, or an open link lost',
      links.map(({ peer, status }) => ({ labels: { peer }, value: status.failures })),
    );
    text.gauge(
      'ringkv_peer_clock_skew_seconds',
      "The peer's wall clock minus this node's, from the last heartbeat",
      links.flatMap(({ peer, status }) =>
        status.skewMs === undefined ? [] : [{ labels: { peer }, value: status.skewMs / 1000 }],
      ),
    );
    text.histogram(
      'ringkv_peer_rtt_seconds',
      'Heartbeat (PING/PONG) round trips to the peer, measured in whole milliseconds',
      peers.map((peer) => ({ labels: { peer }, histogram: this.#rttOf(peer) })),
    );
  }

  #writeHints(text: PrometheusText, parts: ClusterParts, peers: readonly string[]): void {
    const hints = parts.hints.stats();
    const perPeer = (value: (peer: string) => number) =>
      peers.map((peer) => ({ labels: { peer }, value: value(peer) }));
    text.gauge(
      'ringkv_hints_pending',
      'Hints on disk waiting for their peer',
      perPeer((peer) => hints.pending[peer]?.entries ?? 0),
    );
    text.gauge(
      'ringkv_hints_pending_bytes',
      'Bytes of hints on disk waiting for their peer',
      perPeer((peer) => hints.pending[peer]?.bytes ?? 0),
    );
    text.counter(
      'ringkv_hints_delivered_total',
      'Hints handed to their peer since the node started',
      perPeer((peer) => hints.deliveredByPeer[peer] ?? 0),
    );
    writeCounters(text, HINT_COUNTERS, hints);
    writeCounters(text, HANDOFF_COUNTERS, parts.handoff.stats());
  }

  #writeAntiEntropy(text: PrometheusText, parts: ClusterParts): void {
    const ae = parts.antiEntropy.stats();
    writeCounters(text, ANTI_ENTROPY_COUNTERS, ae);
    text.counter(
      'ringkv_antientropy_keys_repaired_total',
      'Keys copied, by direction (pulled here, pushed there)',
      [
        { labels: { direction: 'pulled' }, value: ae.pulled },
        { labels: { direction: 'pushed' }, value: ae.pushed },
      ],
    );
    text.counter(
      'ringkv_antientropy_bytes_total',
      'Bytes moved: request and answer bodies, and keys and values copied, by direction',
      [
        { labels: { direction: 'sent' }, value: ae.bytesSent },
        { labels: { direction: 'received' }, value: ae.bytesReceived },
      ],
    );
    const tree = ae.tree;
    text.gauge(
      'ringkv_antientropy_tree_state',
      'The hash tree: 1 for its state (ready, building, digesting, waiting), 0 for the others',
      (['ready', 'building', 'digesting', 'waiting'] as const).map((state) => ({
        labels: { state },
        value: tree.state === state ? 1 : 0,
      })),
    );
    text.gauge(
      'ringkv_antientropy_tree_entries',
      'Entries in the hash tree (every key, deletes included), when ready',
      [{ value: tree.entries ?? 0 }],
    );
    text.counter('ringkv_antientropy_tree_rebuilds_total', 'Rebuilds of the hash index from the store', [
      { value: tree.rebuilds },
    ]);
    text.counter(
      'ringkv_antientropy_entries_read_total',
      'Index and store entries read for exchanges, asked and answered',
      [{ value: tree.entriesRead }],
    );
  }
}

function writeCounters<T>(text: PrometheusText, rows: readonly CounterRow<T>[], record: T): void {
  for (const [name, help, field] of rows) text.counter(name, help, [{ value: Number(record[field]) }]);
}
