/**
 * The pieces of a node in a cluster of two or more: membership (the view,
 * its rings, gossip and moves), transport, the replica (which is also what
 * the node serves its peers), hints and their handoff, anti-entropy and its
 * responder, the internode server, the clock skew monitor, and the
 * ClusterStore that coordinates client requests.
 * Nothing runs yet: Node starts the loops once it listens, and owns the
 * order in which everything stops. The outside world comes in through the
 * context: the data directory's file system (vfs) and the transport's maker,
 * so that the cluster simulation (test/sim) runs these very parts on a
 * MemoryVfs and a simulated network.
 */
import { join } from 'node:path';
import {
  AntiEntropy,
  AntiEntropyResponder,
  IndexedEngine,
  loadBirthVersion,
  lsmIndexes,
  type TreeFileStore,
  treeFileIn,
} from '../cluster/antientropy/index.js';
import type { HybridClock } from '../cluster/clock.js';
import { ClockSkewMonitor } from '../cluster/clock-skew.js';
import { HintedHandoff, HintStore, hintPlacement, hintPolicy } from '../cluster/hints/index.js';
import { loadMembership, MembershipService } from '../cluster/membership/index.js';
import { ClusterStore, createReplica } from '../cluster/replication/index.js';
import {
  createTransport,
  type FrameTransportOptions,
  type InternodeHandler,
  InternodeServer,
  type MembershipLinks,
  type PeerLinks,
  type Transport,
  type TransportKind,
  type TransportStats,
} from '../cluster/transport/index.js';
import { limits } from '../config/limits.js';
import { type ServeOptions, streamBytesPerSecondFromEnv } from '../config/options.js';
import { type Engine, nodeVfs, type Vfs } from '../storage/index.js';
import { errorMessage, RingkvError } from '../util/errors.js';
import { type Log, lineLog } from '../util/log.js';
import { refuseSingleNodeData } from './single-node-data.js';

/** A node gone from the membership is forgotten this long after the trailing ring stopped. */
const FORGET_MARGIN_MS = 500;

/** The client side of the internode links, as a node uses it. */
export type ClusterTransport = Transport & PeerLinks & { stats(): TransportStats };

export interface ClusterParts {
  /** The node's engine with anti-entropy's hash index beside it: every write of the node goes through it. */
  readonly engine: IndexedEngine;
  readonly store: ClusterStore;
  readonly transport: ClusterTransport;
  readonly internode: InternodeServer;
  readonly hints: HintStore;
  readonly handoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly membership: MembershipService;
}

/**
 * Whether the node runs as a member of a cluster: `--cluster` lists other
 * nodes, `--join` names one, or its data directory holds a membership (a
 * member restarted without flags, or one that joined).
 */
export async function isClusterNode(options: ServeOptions, vfs: Vfs = nodeVfs): Promise<boolean> {
  if (options.cluster.length > 1 || options.join !== undefined) return true;
  return (await loadMembership(vfs, options.dataDir)) !== undefined;
}

export async function clusterParts(
  options: ServeOptions,
  context: {
    readonly engine: Engine;
    readonly clock: HybridClock;
    readonly log: Log;
    readonly transportKind: TransportKind;
    readonly hintHandoffIntervalMs: number;
    /** Flow control of the streaming in a move (default: RINGKV_STREAM_BYTES_PER_SEC, or limits.streamBytesPerSecondMax). */
    readonly streamBytesPerSecond?: number;
    /** Also told each heartbeat's clock sample (the node's metrics keep the round trips). */
    readonly onClockSample?: (peer: string, skewMs: number, rttMs: number) => void;
    /** The data directory's file system, for the hints and the BIRTH file (default: the real one). */
    readonly vfs?: Vfs;
    /** Makes the transport from the settings below (default: createTransport of transportKind). */
    readonly createTransport?: (options: FrameTransportOptions) => ClusterTransport;
    /** The membership says this node was removed (decommissioned): stop it. */
    readonly onRemoved?: () => void;
    /** Told the engine with its index once open, so that a start failing after it can abandon the index. */
    readonly onEngine?: (engine: IndexedEngine) => void;
    /** The anti-entropy tree file as claimed before the store opened (claimTree); default: <data>/aae/TREE. */
    readonly treeFile?: TreeFileStore;
  },
): Promise<ClusterParts> {
  const { clock, log } = context;
  const hintsLog = lineLog(log, 'hints');
  const vfs = context.vfs === undefined ? {} : { vfs: context.vfs };
  // --cluster or --join on a single node's directory: before BIRTH and MEMBERSHIP are written, which would hide it.
  await refuseSingleNodeData(options.dataDir, { engine: context.engine, vfs: context.vfs ?? nodeVfs });
  const birthVersion = await loadBirthVersion(options.dataDir, { engine: context.engine, clock, ...vfs });
  const aeLog = lineLog(log, 'anti-entropy');
  // Made below, once the engine is open; moves may write before (a resumed move), so it is looked up when used.
  let replicaOfNode: { noteStored(key: Buffer, version: bigint): void } | undefined;
  const engine = await IndexedEngine.open({
    main: context.engine,
    indexes: lsmIndexes(options.dataDir, { ...vfs, log: lineLog(log, 'engine') }),
    treeFile: context.treeFile ?? treeFileIn(options.dataDir, context.vfs ?? nodeVfs),
    log: aeLog,
  });
  context.onEngine?.(engine);
  const hints = await HintStore.open(join(options.dataDir, 'hints'), {
    sync: options.sync,
    log: hintsLog,
    ...vfs,
  });
  // The membership's view, read when each peer is heard from: members come and go.
  let membership: MembershipService | undefined;
  const isPeer = (url: string): boolean => url !== options.url && membership?.topology.isMember(url) === true;
  const skew = new ClockSkewMonitor({ boundMs: options.clockSkewMaxMs, log: lineLog(log, 'clock.skew') });
  // A node that left the cluster (removed, or its join cancelled) is forgotten once its link is down,
  // rather than probed forever. Not while the old ring trails: it still gets writes, and a forgotten
  // peer counts as up until a connection to it fails, so a dead one would raise every write's `ack`.
  const forgetIfGone = (peer: string): void => {
    if (membership === undefined || peer === options.url || isPeer(peer) || transport.isUp(peer)) return;
    if (membership.topology.trailing) return;
    transport.forget(peer);
    skew.forget(peer);
  };
  // The transport tells the handoff when a peer is back; the handoff needs the transport first.
  let handoff: HintedHandoff | undefined;
  const makeTransport =
    context.createTransport ??
    ((settings: FrameTransportOptions) => createTransport({ kind: context.transportKind, ...settings }));
  const transport = makeTransport({
    secret: options.clusterSecret,
    selfUrl: options.url,
    wallMs: () => clock.wallMs(),
    // Quiet until the membership is open: a start that fails there (a --join member that cannot be
    // reached) prints its one plain line with no record before it.
    onPeerUp: (peer) => {
      if (membership !== undefined) log.info('peer.up', `Peer ${peer} is up`, { peer });
      handoff?.peerUp(peer);
    },
    onPeerDown: (peer, cause) => {
      // The cause is the transport's refusal, which says "Peer URL is down: why" already for most failures.
      const down = `Peer ${peer} is down`;
      const msg = cause.message.startsWith(down) ? cause.message : `${down}: ${cause.message}`;
      if (membership !== undefined) log.warn('peer.down', msg, { peer });
      forgetIfGone(peer);
    },
    onClockSample: (peer, skewMs, rttMs) => {
      skew.sample(peer, skewMs, rttMs);
      context.onClockSample?.(peer, skewMs, rttMs);
    },
  });
  membership = await MembershipService.open(
    {
      selfUrl: options.url,
      dataDir: options.dataDir,
      cluster: options.cluster,
      join: options.join,
      replace: options.replace,
    },
    {
      vfs: context.vfs ?? nodeVfs,
      engine,
      transport: membershipLinks(transport),
      // Streamed entries: the clock moves past them, the replica's memory learns them.
      observe: (version, key) => {
        clock.observe(version);
        replicaOfNode?.noteStored(key, version);
      },
      now: () => clock.now(),
      log: (level, event, line) => log[level](event, line),
      bytesPerSecond: context.streamBytesPerSecond ?? streamBytesPerSecondFromEnv(),
      ...(context.onRemoved === undefined ? {} : { onRemoved: context.onRemoved }),
    },
  );
  const topology = membership.topology;
  engine.watchRing(() => topology.current);
  topology.onChange((_view, previous) => {
    const gone = previous.members.map((m) => m.url);
    // Once the trailing ring stopped getting writes.
    setTimeout(() => {
      for (const url of gone) forgetIfGone(url);
    }, limits.ringTrailingMs + FORGET_MARGIN_MS).unref();
  });
  if (options.clusterSecret === undefined) {
    log.warn(
      'config.no-secret',
      'No --cluster-secret, so internode requests are unauthenticated (anyone who reaches this port can write any version of any key)',
    );
  }
  const currentRing = () => topology.current;
  const responder = new AntiEntropyResponder({ selfUrl: options.url, ring: currentRing, engine });
  const replica = createReplica(engine, clock, {
    clockSkewMaxMs: options.clockSkewMaxMs,
    antiEntropy: (body) => responder.handle(body),
    onPeerLeaving: (peer) => {
      if (isPeer(peer)) transport.peerLeaving(peer);
    },
  });
  // The replica's requests, and membership's (MEMBERSHIP, STREAM, MOVE).
  const handler: InternodeHandler = {
    write: (entry) => replica.write(entry),
    read: (key) => replica.read(key),
    scan: (start, end, limit) => replica.scan(start, end, limit),
    antiEntropy: replica.antiEntropy,
    wallMs: () => replica.wallMs(),
    leaving: (peer) => replica.leaving(peer),
    ...membership.handlers,
  };
  const internode = new InternodeServer(handler, {
    secret: options.clusterSecret,
    selfUrl: options.url,
    onError: (err) =>
      log.error('internode.error', `Internode request failed unexpectedly: ${errorMessage(err)}`),
    onPeerSeen: (peer) => {
      if (isPeer(peer)) transport.peerSeen(peer);
    },
  });
  replicaOfNode = replica;
  handoff = new HintedHandoff({
    store: hints,
    // A hint rerouted to its key's current replicas may be for this node: its own replica takes it
    // (should that fail, the hint is kept for this node, and handed to it the same way later).
    transport: {
      isUp: (peer) => peer === options.url || transport.isUp(peer),
      write: (peer, entry, deadlineMs) =>
        peer === options.url ? replica.write(entry) : transport.write(peer, entry, deadlineMs),
    },
    intervalMs: context.hintHandoffIntervalMs,
    // Hints of a node that left for good are dropped, not retried forever against the shared budget.
    isMember: (peer) => topology.isMember(peer),
    // Where a write of the key goes now, as the coordinator picks it: the ring may have changed since.
    placement: hintPlacement(topology),
    log: hintsLog,
  });
  const antiEntropy = new AntiEntropy({
    selfUrl: options.url,
    ring: currentRing,
    engine,
    transport,
    intervalMs: options.antiEntropyIntervalMs,
    birthVersion,
    clock,
    onStored: (key, version) => replica.noteStored(key, version),
    log: aeLog,
  });
  const hintFor = hintPolicy(options.url, hints, hintsLog);
  const store = new ClusterStore({
    selfUrl: options.url,
    ring: topology,
    engine,
    clock,
    transport,
    replica,
    requestTimeoutMs: options.requestTimeoutMs,
    clockSkewMaxMs: options.clockSkewMaxMs,
    log: lineLog(log, 'coordinator'),
    // No hints for a node that left the cluster: it will not be back for them.
    onReplicaWriteFailed: (peer, entry, err, from) => {
      if (topology.isMember(peer)) hintFor(peer, entry, err, from);
    },
    statusPeers: () => membership.peers(),
    statusExtras: () => ({
      internodeProtocol: context.transportKind,
      internodeServer: internode.stats(),
      clockSkewMaxMs: options.clockSkewMaxMs,
      clockSkew: skew.status(),
      hints: { ...hints.stats(), handoff: handoff.stats() },
      antiEntropy: { ...antiEntropy.stats(), responder: responder.stats() },
      membership: membership.status(),
    }),
  });
  return { engine, store, transport, internode, hints, handoff, antiEntropy, membership };
}

/** The transport's membership messages; one without them (a simulated network) refuses them, so membership stays as started. */
function membershipLinks(transport: ClusterTransport): MembershipLinks & { isUp(peer: string): boolean } {
  const links = transport as ClusterTransport & Partial<MembershipLinks>;
  if (links.membership !== undefined && links.stream !== undefined && links.move !== undefined) {
    return links as ClusterTransport & MembershipLinks;
  }
  const refuse = (): Promise<Buffer> =>
    Promise.reject(new RingkvError('RINGKV_UNAVAILABLE', 'This transport carries no membership messages'));
  return { membership: refuse, stream: refuse, move: refuse, isUp: (peer) => transport.isUp(peer) };
}
