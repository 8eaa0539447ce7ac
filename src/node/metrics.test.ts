/**
 * NodeMetrics on its own: a single node's exposition from a real HTTP server
 * and engine, and a cluster's from stand-in parts whose counters the test
 * sets, so that each series is checked against the figure it comes from.
 * The e2e test (test/e2e/metrics.test.ts) scrapes real nodes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  helpNames,
  parseSamples,
  promtoolCheck,
  promtoolMissing,
  sampleValue,
} from '../../test/support/prometheus.js';
import { HybridClock } from '../cluster/clock.js';
import { LocalStore } from '../cluster/local-store.js';
import { HttpServer, RequestOp } from '../http/index.js';
import { MemoryEngine, valueEntry } from '../storage/index.js';
import type { ClusterParts } from './cluster-parts.js';
import { NodeMetrics } from './metrics.js';

const SELF = 'http://127.0.0.1:1';
const B = 'http://127.0.0.1:2';
const C = 'http://127.0.0.1:3';

function httpServer(engine: MemoryEngine): HttpServer {
  return new HttpServer({
    store: new LocalStore(engine, new HybridClock()),
    nodeUrl: SELF,
    cluster: [SELF],
    keyBytesMax: 64,
    valueBytesMax: 1024,
    log: () => undefined,
  });
}

/** Parts whose stats() answer what the test says; the members other than SELF are `peers()`. */
function standInParts(peers: () => string[] = () => [B, C]): ClusterParts {
  const coordinator = {
    gets: 7,
    puts: 5,
    deletes: 1,
    notEnoughReplicas: 2,
    conflicts: 3,
    conflictRetries: 1,
    replicaFailures: 4,
    readRepairs: 6,
    readRepairFailures: 0,
    readRepairsSkipped: 0,
    readHedges: 8,
    readHedgesSkipped: 0,
    readHedgesLate: 0,
    readRepairsInFlight: 1,
  };
  return {
    store: { status: () => ({ kind: 'cluster', coordinator }) },
    transport: {
      stats: () => ({
        requests: 100,
        socketWrites: 40,
        connectAttempts: 3,
        connectFailures: 1,
        timeouts: 2,
        refusedDown: 9,
      }),
      peerStatus: (peer: string) =>
        peer === B ? { state: 'up', failures: 0, skewMs: -250, rttMs: 1 } : { state: 'down', failures: 5 },
    },
    hints: {
      stats: () => ({
        pending: { [C]: { entries: 12, bytes: 3400 } },
        deliveredByPeer: { [B]: 30 },
        added: 42,
        dropped: 0,
        tooOld: 3,
      }),
    },
    handoff: { stats: () => ({ rounds: 11, failedBatches: 2, forgotten: 7, rerouted: 5 }) },
    antiEntropy: {
      stats: () => ({
        rounds: 4,
        exchanges: 8,
        failedExchanges: 1,
        keysDigested: 1000,
        summariesReceived: 120,
        pulled: 10,
        pushed: 3,
        bytesSent: 5000,
        bytesReceived: 9000,
        tree: { state: 'ready', entries: 1000, rebuilds: 1, entriesRead: 240 },
      }),
    },
    membership: {
      peers,
      topology: { view: { epoch: 7n }, future: {} },
      status: () => ({ members: [{ state: 'normal' }, { state: 'normal' }, { state: 'joining' }] }),
      mover: {
        progress: () => ({ receiving: { ranges: 3, rangesDone: 1, bytes: 2048, bytesLeft: 4096 } }),
      },
      source: { stats: () => ({ pages: 2, entries: 20, bytes: 640 }) },
    },
  } as unknown as ClusterParts;
}

describe('NodeMetrics', () => {
  it('a node on its own: requests by operation and status, engine figures, readiness, process figures', async () => {
    const engine = new MemoryEngine();
    const server = httpServer(engine);
    const metrics = new NodeMetrics(SELF);
    let ready = false;
    metrics.watch({ server, engine, parts: undefined, ready: () => ready });
    await engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
    server.requestMetrics.observe(RequestOp.Get, 200, 0.0003);
    server.requestMetrics.observe(RequestOp.Get, 200, 0.004);
    server.requestMetrics.observe(RequestOp.Put, 201, 0.002);

    let text = await metrics.exposition();
    let samples = parseSamples(text);
    assert.equal(sampleValue(samples, 'ringkv_node_ready'), 0);
    assert.equal(sampleValue(samples, 'ringkv_node_info', { node: SELF }), 1);
    assert.equal(sampleValue(samples, 'ringkv_http_requests_total', { op: 'get', code: '200' }), 2);
    assert.equal(sampleValue(samples, 'ringkv_http_requests_total', { op: 'put', code: '201' }), 1);
    assert.equal(
      sampleValue(samples, 'ringkv_http_request_duration_seconds_bucket', {
        op: 'get',
        code: '200',
        le: '0.0005',
      }),
      1,
    );
    assert.equal(
      sampleValue(samples, 'ringkv_http_request_duration_seconds_bucket', {
        op: 'get',
        code: '200',
        le: '0.005',
      }),
      2,
    );
    assert.equal(sampleValue(samples, 'ringkv_engine_writes_total'), engine.stats().writes);
    assert.equal(sampleValue(samples, 'ringkv_engine_memtable_bytes'), engine.stats().memtableBytes);
    assert.ok((sampleValue(samples, 'ringkv_process_resident_memory_bytes') ?? 0) > 0);
    assert.ok((sampleValue(samples, 'ringkv_process_cpu_seconds_total') ?? 0) > 0);
    assert.ok(sampleValue(samples, 'ringkv_event_loop_delay_seconds_count') !== undefined);
    // No cluster: no coordinator, peer, hint or anti-entropy series.
    assert.deepEqual(
      helpNames(text).filter((name) => /coordinator|peer|hint|antientropy|transport/.test(name)),
      [],
    );
    for (const name of helpNames(text)) assert.match(name, /^ringkv_/);

    ready = true;
    text = await metrics.exposition();
    samples = parseSamples(text);
    assert.equal(sampleValue(samples, 'ringkv_node_ready'), 1);
    server.beginLeaving();
    assert.equal(sampleValue(parseSamples(await metrics.exposition()), 'ringkv_node_ready'), 0);
    await engine.close();
  });

  it('a cluster node: coordinator outcomes, peers, round trips, hints and anti-entropy from their parts', async () => {
    const engine = new MemoryEngine();
    const server = httpServer(engine);
    const metrics = new NodeMetrics(SELF);
    metrics.watch({ server, engine, parts: standInParts(), ready: () => true });
    for (const rttMs of [0, 1, 1, 30]) metrics.observeRtt(B, rttMs);
    metrics.observeRtt('http://elsewhere:9', 1);

    const samples = parseSamples(await metrics.exposition());
    const value = (name: string, labels?: Record<string, string>) => sampleValue(samples, name, labels);
    assert.equal(value('ringkv_coordinator_requests_total', { op: 'get' }), 7);
    assert.equal(value('ringkv_coordinator_not_enough_replicas_total'), 2);
    assert.equal(value('ringkv_coordinator_conflicts_total'), 3);
    assert.equal(value('ringkv_coordinator_read_repairs_total'), 6);
    assert.equal(value('ringkv_coordinator_read_hedges_total'), 8);
    assert.equal(value('ringkv_coordinator_read_repairs_in_flight'), 1);
    assert.equal(value('ringkv_transport_refused_down_total'), 9);

    assert.equal(value('ringkv_peer_up', { peer: B }), 1);
    assert.equal(value('ringkv_peer_up', { peer: C }), 0);
    assert.equal(value('ringkv_peer_state', { peer: C, state: 'down' }), 1);
    assert.equal(value('ringkv_peer_state', { peer: C, state: 'up' }), 0);
    assert.equal(value('ringkv_peer_link_failures_total', { peer: C }), 5);
    assert.equal(value('ringkv_peer_clock_skew_seconds', { peer: B }), -0.25);
    assert.equal(value('ringkv_peer_clock_skew_seconds', { peer: C }), undefined, 'not measured');
    assert.equal(value('ringkv_peer_rtt_seconds_count', { peer: B }), 4);
    assert.equal(value('ringkv_peer_rtt_seconds_bucket', { peer: B, le: '0.001' }), 3);
    assert.equal(value('ringkv_peer_rtt_seconds_sum', { peer: B }), 0.032);
    assert.equal(value('ringkv_peer_rtt_seconds_count', { peer: C }), 0);
    assert.equal(value('ringkv_peer_rtt_seconds_count', { peer: 'http://elsewhere:9' }), undefined);

    assert.equal(value('ringkv_hints_pending', { peer: C }), 12);
    assert.equal(value('ringkv_hints_pending', { peer: B }), 0);
    assert.equal(value('ringkv_hints_pending_bytes', { peer: C }), 3400);
    assert.equal(value('ringkv_hints_delivered_total', { peer: B }), 30);
    assert.equal(value('ringkv_hints_delivered_total', { peer: C }), 0);
    assert.equal(value('ringkv_hints_too_old_total'), 3);
    assert.equal(value('ringkv_hint_handoff_forgotten_total'), 7);
    assert.equal(value('ringkv_hint_handoff_rerouted_total'), 5);

    assert.equal(value('ringkv_antientropy_rounds_total'), 4);
    assert.equal(value('ringkv_antientropy_keys_compared_total'), 120);
    assert.equal(value('ringkv_antientropy_keys_repaired_total', { direction: 'pulled' }), 10);
    assert.equal(value('ringkv_antientropy_bytes_total', { direction: 'received' }), 9000);
    assert.equal(value('ringkv_antientropy_tree_state', { state: 'ready' }), 1);
    assert.equal(value('ringkv_antientropy_tree_state', { state: 'building' }), 0);
    assert.equal(value('ringkv_antientropy_tree_entries'), 1000);
    assert.equal(value('ringkv_antientropy_tree_rebuilds_total'), 1);
    assert.equal(value('ringkv_antientropy_entries_read_total'), 240);

    assert.equal(value('ringkv_membership_epoch'), 7);
    assert.equal(value('ringkv_membership_members', { state: 'joining' }), 1);
    assert.equal(value('ringkv_move_in_progress'), 1);
    assert.equal(value('ringkv_move_ranges', { state: 'done' }), 1);
    assert.equal(value('ringkv_move_left_bytes'), 4096);
    assert.equal(value('ringkv_stream_served_bytes_total'), 640);
    await engine.close();
  });

  it('peer series follow the membership: a member that joins appears, a removed one disappears', async () => {
    const engine = new MemoryEngine();
    let members = [B];
    const metrics = new NodeMetrics(SELF);
    metrics.watch({
      server: httpServer(engine),
      engine,
      parts: standInParts(() => members),
      ready: () => true,
    });
    metrics.observeRtt(B, 1);
    let text = await metrics.exposition();
    let samples = parseSamples(text);
    assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer: B }), 1);
    assert.doesNotMatch(text, new RegExp(`peer="${C}"`), 'not a member yet');

    // C joins (with --join, so never in this node's --cluster): its series appear, round trips included.
    members = [B, C];
    metrics.observeRtt(C, 2);
    samples = parseSamples(await metrics.exposition());
    assert.equal(sampleValue(samples, 'ringkv_peer_up', { peer: C }), 0);
    assert.equal(sampleValue(samples, 'ringkv_peer_state', { peer: C, state: 'down' }), 1);
    assert.equal(sampleValue(samples, 'ringkv_peer_link_failures_total', { peer: C }), 5);
    assert.equal(sampleValue(samples, 'ringkv_peer_rtt_seconds_count', { peer: C }), 1);
    assert.equal(sampleValue(samples, 'ringkv_hints_pending', { peer: C }), 12);
    assert.equal(sampleValue(samples, 'ringkv_hints_delivered_total', { peer: C }), 0);

    // B is removed: no series of it is left, not even ringkv_peer_up 0 (a false alert), nor after a late heartbeat.
    members = [C];
    text = await metrics.exposition();
    assert.doesNotMatch(text, new RegExp(`peer="${B}"`));
    metrics.observeRtt(B, 1);
    text = await metrics.exposition();
    assert.doesNotMatch(text, new RegExp(`peer="${B}"`));
    assert.equal(sampleValue(parseSamples(text), 'ringkv_peer_rtt_seconds_count', { peer: C }), 1);
    await engine.close();
  });

  it('passes promtool check metrics', async (t) => {
    const missing = promtoolMissing();
    if (missing !== undefined) {
      t.skip(missing);
      return;
    }
    const engine = new MemoryEngine();
    const metrics = new NodeMetrics(SELF);
    metrics.watch({ server: httpServer(engine), engine, parts: standInParts(), ready: () => true });
    metrics.observeRtt(B, 1);
    const check = promtoolCheck(await metrics.exposition());
    assert.equal(check.status, 0, check.output);
    await engine.close();
  });
});
