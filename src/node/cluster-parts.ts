/**
 * The pieces of a node in a cluster of two or more: ring, transport, the
 * replica (which is also what the node serves its peers), hints and their
 * handoff, anti-entropy and its responder, the internode server, the clock
 * skew monitor, and the ClusterStore that coordinates client requests.
 * Nothing runs yet: Node starts the loops once it listens, and owns the
 * order in which everything stops. The outside world comes in through the
 * context: the data directory's file system (vfs) and the transport's maker,
 * so that the cluster simulation (test/sim) runs these very parts on a
 * MemoryVfs and a simulated network.
 */
import { join } from 'node:path';
import { AntiEntropy, AntiEntropyResponder, loadBirthVersion } from '../cluster/antientropy/index.js';
import type { HybridClock } from '../cluster/clock.js';
import { ClockSkewMonitor } from '../cluster/clock-skew.js';
import { HintedHandoff, HintStore, hintPolicy } from '../cluster/hints/index.js';
import { ClusterStore, createReplica } from '../cluster/replication/index.js';
import { Ring } from '../cluster/ring/index.js';
import {
  createTransport,
  type FrameTransportOptions,
  InternodeServer,
  type PeerLinks,
  type Transport,
  type TransportKind,
  type TransportStats,
} from '../cluster/transport/index.js';
import type { ServeOptions } from '../config/options.js';
import type { Engine, Vfs } from '../storage/index.js';
import { errorMessage } from '../util/errors.js';
import { type Log, lineLog } from '../util/log.js';

/** The client side of the internode links, as a node uses it. */
export type ClusterTransport = Transport & PeerLinks & { stats(): TransportStats };

export interface ClusterParts {
  readonly store: ClusterStore;
  readonly transport: ClusterTransport;
  readonly internode: InternodeServer;
  readonly hints: HintStore;
  readonly handoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
}

export async function clusterParts(
  options: ServeOptions,
  context: {
    readonly engine: Engine;
    readonly clock: HybridClock;
    readonly log: Log;
    readonly transportKind: TransportKind;
    readonly hintHandoffIntervalMs: number;
    /** Also told each heartbeat's clock sample (the node's metrics keep the round trips). */
    readonly onClockSample?: (peer: string, skewMs: number, rttMs: number) => void;
    /** The data directory's file system, for the hints and the BIRTH file (default: the real one). */
    readonly vfs?: Vfs;
    /** Makes the transport from the settings below (default: createTransport of transportKind). */
    readonly createTransport?: (options: FrameTransportOptions) => ClusterTransport;
  },
): Promise<ClusterParts> {
  const { engine, clock, log } = context;
  if (options.clusterSecret === undefined) {
    log.warn(
      'config.no-secret',
      'No --cluster-secret, so internode requests are unauthenticated (anyone who reaches this port can write any version of any key)',
    );
  }
  const hintsLog = lineLog(log, 'hints');
  const vfs = context.vfs === undefined ? {} : { vfs: context.vfs };
  const birthVersion = await loadBirthVersion(options.dataDir, { engine, clock, ...vfs });
  const hints = await HintStore.open(join(options.dataDir, 'hints'), {
    sync: options.sync,
    log: hintsLog,
    ...vfs,
  });
  const ring = new Ring(options.cluster);
  const isPeer = (url: string): boolean => url !== options.url && ring.nodes.includes(url);
  const skew = new ClockSkewMonitor({ boundMs: options.clockSkewMaxMs, log: lineLog(log, 'clock.skew') });
  // The transport tells the handoff when a peer is back; the handoff needs the transport first.
  let handoff: HintedHandoff | undefined;
  const makeTransport =
    context.createTransport ??
    ((settings: FrameTransportOptions) => createTransport({ kind: context.transportKind, ...settings }));
  const transport = makeTransport({
    secret: options.clusterSecret,
    selfUrl: options.url,
    wallMs: () => clock.wallMs(),
    onPeerUp: (peer) => {
      log.info('peer.up', `Peer ${peer} is up`, { peer });
      handoff?.peerUp(peer);
    },
    onPeerDown: (peer, cause) => log.warn('peer.down', `Peer ${peer} is down: ${cause.message}`, { peer }),
    onClockSample: (peer, skewMs, rttMs) => {
      skew.sample(peer, skewMs, rttMs);
      context.onClockSample?.(peer, skewMs, rttMs);
    },
  });
  handoff = new HintedHandoff({
    store: hints,
    transport,
    intervalMs: context.hintHandoffIntervalMs,
    log: hintsLog,
  });
  const responder = new AntiEntropyResponder({ selfUrl: options.url, ring, engine });
  const replica = createReplica(engine, clock, {
    clockSkewMaxMs: options.clockSkewMaxMs,
    antiEntropy: (body) => responder.handle(body),
    onPeerLeaving: (peer) => {
      if (isPeer(peer)) transport.peerLeaving(peer);
    },
  });
  const internode = new InternodeServer(replica, {
    secret: options.clusterSecret,
    selfUrl: options.url,
    onError: (err) =>
      log.error('internode.error', `Internode request failed unexpectedly: ${errorMessage(err)}`),
    onPeerSeen: (peer) => {
      if (isPeer(peer)) transport.peerSeen(peer);
    },
  });
  const antiEntropy = new AntiEntropy({
    selfUrl: options.url,
    ring,
    engine,
    transport,
    intervalMs: options.antiEntropyIntervalMs,
    birthVersion,
    clock,
    log: lineLog(log, 'anti-entropy'),
  });
  const store = new ClusterStore({
    selfUrl: options.url,
    ring,
    engine,
    clock,
    transport,
    replica,
    requestTimeoutMs: options.requestTimeoutMs,
    clockSkewMaxMs: options.clockSkewMaxMs,
    log: lineLog(log, 'coordinator'),
    onReplicaWriteFailed: hintPolicy(options.url, hints, hintsLog),
    statusExtras: () => ({
      internodeProtocol: context.transportKind,
      internodeServer: internode.stats(),
      clockSkewMaxMs: options.clockSkewMaxMs,
      clockSkew: skew.status(),
      hints: { ...hints.stats(), handoff: handoff.stats() },
      antiEntropy: { ...antiEntropy.stats(), responder: responder.stats() },
    }),
  });
  return { store, transport, internode, hints, handoff, antiEntropy };
}
