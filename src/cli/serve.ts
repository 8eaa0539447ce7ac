/**
 * `ringkv serve`: one node. Opens the data directory (locked against a second
 * process), the storage engine and the store, then listens; logs one line when
 * ready. On SIGTERM or SIGINT it stops accepting, lets in-flight requests
 * finish, closes the store (durable) and the lock, and exits 0, or exits 1 if
 * that takes longer than limits.shutdownForceMs.
 *
 * A one-node cluster uses LocalStore. With more nodes in --cluster, the node
 * also builds the ring, the internode transport (the binary protocol, or
 * plain HTTP with RINGKV_INTERNODE=http), the InternodeServer that serves its
 * peers on the same port, and a ClusterStore that coordinates requests; and
 * the two repair loops:
 *   - hinted handoff: a replica write that failed because the peer was down
 *     or late (RINGKV_UNAVAILABLE, RINGKV_TIMEOUT) becomes a hint in
 *     <data>/hints, handed to the peer once it is back (HintedHandoff);
 *   - anti-entropy: every --anti-entropy-interval ms the node compares its
 *     data with each peer's and copies what differs (AntiEntropy), and it
 *     answers peers' comparisons (AntiEntropyResponder, on the internode
 *     ANTI_ENTROPY message). Its birth version (file BIRTH) says when it
 *     started on an empty directory (antientropy/birth.ts).
 *
 * Start: a cluster node listens, then opens its link to every peer at once
 * (its handshake tells each peer it is back, so they use it from their next
 * request) and is ready once every peer was tried: /v0/health?ready=1 and
 * /v0/status answer 200 from then on.
 *
 * Shutdown, within API.md's 10 s: leave first (new client requests get 503
 * and Connection: close; /v0/health?ready=1 answers 503; new internode
 * handshakes are refused; every peer with a link is told LEAVING and stops
 * sending new requests, routing reads to the other replicas), then stop
 * accepting and let requests finish (grace) while the anti-entropy round
 * under way ends; then hand pending hints to the peers that are reachable
 * (limits.shutdownHintDrainMs); then close the hint files, the transport and
 * the engine; release the lock.
 *
 * RINGKV_CLOCK_OFFSET_MS (tests and diagnostics only) shifts the node's wall
 * clock, to fake clock skew between nodes; RINGKV_HINT_HANDOFF_INTERVAL_MS
 * (tests only) sets how often hints are handed off; RINGKV_HTTP_FAST_PATH=off
 * (benchmarks) serves every request through node:http (http/fast/).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AntiEntropy, AntiEntropyResponder, loadBirthVersion } from '../cluster/antientropy/index.js';
import { HybridClock } from '../cluster/clock.js';
import { ClockSkewMonitor } from '../cluster/clock-skew.js';
import { HintedHandoff, HintStore } from '../cluster/hints/index.js';
import { LocalStore } from '../cluster/local-store.js';
import { ClusterStore, createReplica } from '../cluster/replication/index.js';
import { Ring } from '../cluster/ring/index.js';
import type { Store } from '../cluster/store.js';
import {
  createTransport,
  type InternodeHandler,
  InternodeServer,
  type PeerLinks,
  type Transport,
  transportKindFromEnv,
} from '../cluster/transport/index.js';
import { limits } from '../config/limits.js';
import {
  clockOffsetFromEnv,
  hintHandoffIntervalFromEnv,
  SERVE_FLAG_NAMES,
  type ServeOptions,
  serveOptions,
} from '../config/options.js';
import { fastPathFromEnv, HttpServer } from '../http/index.js';
import { acquireDirLock, type DirLock } from '../storage/dir-lock.js';
import { type Engine, type Entry, openEngine } from '../storage/index.js';
import { errorMessage, isRingkvError, RingkvError } from '../util/errors.js';
import { parseFlags } from './args.js';

export const SERVE_USAGE = `Usage: ringkv serve --url URL --data DIR [flags]

  --url URL                    this node's URL (http://host:port); it listens on that host and port
  --data DIR                   this node's data directory (created if missing, locked while in use)
  --cluster URL,URL,...        every node of the cluster, this one included (default: this node alone)
  --sync on|off                fsync each write before acknowledging it (default on)
  --anti-entropy-interval MS   how often replicas are compared and repaired (default ${limits.antiEntropyIntervalMs}; 0 off)
  --max-key-bytes N            longer keys get 414 (default ${limits.keyBytesMax})
  --max-value-bytes N          larger values get 413 (default ${limits.valueBytesMax})
  --memtable-bytes N           memtable size before a flush (default ${limits.memtableBytesMax})
  --block-cache-bytes N        SSTable block cache (default ${limits.blockCacheBytes})
  --request-timeout MS         replicas that have not answered by then count as failed (default ${limits.requestTimeoutMs})
  --cluster-secret TEXT        shared secret nodes present to each other
  --max-clock-skew MS          largest wall-clock difference between nodes that writes stay ordered under (default ${limits.clockSkewMaxMs})
`;

export interface RunningNode {
  readonly options: ServeOptions;
  readonly server: HttpServer;
  /** Whether the node has recovered its log and tried every peer once (it is then ready). */
  readonly ready: boolean;
  /** Stops accepting, drains, closes the store and releases the lock. Safe to call twice. */
  close(): Promise<void>;
}

export async function serveCommand(args: readonly string[]): Promise<void> {
  const flags = parseFlags(args, SERVE_FLAG_NAMES);
  if (flags.help) {
    process.stdout.write(SERVE_USAGE);
    return;
  }
  const options = serveOptions(flags);
  const node = await startNode(options, logLine);
  process.stdout.write(
    `ringkv: node ${options.url} ready (data ${options.dataDir}, ${options.cluster.length} node cluster, sync ${options.sync ? 'on' : 'off'}, pid ${process.pid})\n`,
  );
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    // A terminal's Ctrl-C reaches both `ringkv cluster` and its children; the forwarded copy is a repeat.
    if (stopping) return;
    stopping = true;
    logLine(`Node ${options.url}: ${signal}, shutting down`);
    const force = setTimeout(() => {
      logLine(`Node ${options.url}: shutdown took over ${limits.shutdownForceMs} ms, exiting`);
      process.exit(1);
    }, limits.shutdownForceMs);
    force.unref();
    node.close().then(
      () => {
        logLine(`Node ${options.url}: stopped`);
        process.exit(0);
      },
      (err: unknown) => {
        logLine(`Node ${options.url}: shutdown failed: ${errorMessage(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * Brings a node up: directory, lock, engine, store, HTTP server (and, in a
 * cluster, the internode side). On failure it undoes what it did and rejects
 * with a one-line error.
 */
export async function startNode(options: ServeOptions, log: (line: string) => void): Promise<RunningNode> {
  const clockOffsetMs = clockOffsetFromEnv();
  const hintHandoffIntervalMs = hintHandoffIntervalFromEnv();
  await prepareDataDir(options.dataDir);
  const lock = await acquireDirLock(options.dataDir);
  let engine: Engine | undefined;
  let parts: ClusterParts | undefined;
  let ready = false;
  try {
    engine = await openStorage(options, log);
    const clock = new HybridClock(clockOffsetMs === 0 ? {} : { wallMs: () => Date.now() + clockOffsetMs });
    if (clockOffsetMs !== 0)
      log(`Node ${options.url}: wall clock offset by ${clockOffsetMs} ms (RINGKV_CLOCK_OFFSET_MS)`);
    parts =
      options.cluster.length > 1
        ? await clusterParts(options, { engine, clock, log, hintHandoffIntervalMs })
        : undefined;
    const store: Store = parts?.store ?? new LocalStore(engine, clock);
    const internode = parts?.internode;
    const server = new HttpServer({
      store,
      nodeUrl: options.url,
      cluster: options.cluster,
      keyBytesMax: options.keyBytesMax,
      valueBytesMax: options.valueBytesMax,
      log,
      fastPath: fastPathFromEnv(),
      readiness: () => (ready ? 'ready' : 'starting'),
      upgrade: internode?.handleUpgrade,
      internode:
        internode === undefined
          ? undefined
          : (req, res) => {
              if (!internode.handleHttp(req, res)) res.writeHead(400).end('Unknown internode request');
            },
    });
    await server.listen(options.port, options.host);
    parts?.handoff.start();
    parts?.antiEntropy.start();
    // Listening first: the peers this handshake wakes connect back at once.
    await parts?.transport.connect(options.cluster.filter((url) => url !== options.url));
    ready = true;
    const repair =
      parts === undefined
        ? undefined
        : { ...parts, log: (line: string) => log(`Node ${options.url}: ${line}`) };
    return {
      options,
      server,
      get ready() {
        return ready;
      },
      close: once(() => closeNode({ server, store, internode, repair, lock })),
    };
  } catch (err) {
    parts?.internode.destroy();
    await parts?.hints.close().catch(() => undefined);
    await parts?.transport.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    await lock.release().catch(() => undefined);
    throw err;
  }
}

interface ClusterParts {
  readonly store: ClusterStore;
  readonly transport: Transport & PeerLinks;
  readonly internode: InternodeServer;
  readonly hints: HintStore;
  readonly handoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
}

/** How often a failure of the same kind is logged at most: a dead peer must not flood the log. */
const HINT_LOG_INTERVAL_MS = 10_000;

/**
 * The pieces of a node in a cluster of two or more: ring, transport, replica,
 * hints, anti-entropy, internode server, store. Nothing runs yet: the caller
 * starts the loops once the node listens.
 */
async function clusterParts(
  options: ServeOptions,
  context: {
    engine: Engine;
    clock: HybridClock;
    log: (line: string) => void;
    hintHandoffIntervalMs: number;
  },
): Promise<ClusterParts> {
  const { engine, clock, log } = context;
  const nodeLog = (line: string): void => log(`Node ${options.url}: ${line}`);
  if (options.clusterSecret === undefined) {
    log(
      `Node ${options.url}: warning: no --cluster-secret, so internode requests are unauthenticated (anyone who reaches this port can write any version of any key)`,
    );
  }
  const birthVersion = await loadBirthVersion(options.dataDir, { engine, clock });
  const hints = await HintStore.open(join(options.dataDir, 'hints'), { sync: options.sync, log: nodeLog });
  const ring = new Ring(options.cluster);
  const transportKind = transportKindFromEnv();
  const skew = new ClockSkewMonitor({ boundMs: options.clockSkewMaxMs, log: nodeLog });
  let handoff: HintedHandoff | undefined;
  const transport = createTransport({
    kind: transportKind,
    secret: options.clusterSecret,
    selfUrl: options.url,
    wallMs: () => clock.wallMs(),
    onPeerUp: (peer) => handoff?.peerUp(peer),
    onClockSample: (peer, skewMs, rttMs) => skew.sample(peer, skewMs, rttMs),
  });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: options.clockSkewMaxMs });
  const responder = new AntiEntropyResponder({ selfUrl: options.url, ring, engine });
  const isPeer = (url: string): boolean => url !== options.url && ring.nodes.includes(url);
  const handler: InternodeHandler = {
    write: (entry) => replica.write(entry),
    read: (key) => replica.read(key),
    scan: (start, end, limit) => replica.scan(start, end, limit),
    antiEntropy: (body) => responder.handle(body),
    wallMs: () => clock.wallMs(),
    leaving: (peer) => {
      if (isPeer(peer)) transport.peerLeaving(peer);
    },
  };
  const internode = new InternodeServer(handler, {
    secret: options.clusterSecret,
    selfUrl: options.url,
    onError: (err) => log(`Internode request failed unexpectedly: ${errorMessage(err)}`),
    onPeerSeen: (peer) => {
      if (isPeer(peer)) transport.peerSeen(peer);
    },
  });
  handoff = new HintedHandoff({
    store: hints,
    transport,
    intervalMs: context.hintHandoffIntervalMs,
    log: nodeLog,
  });
  const antiEntropy = new AntiEntropy({
    selfUrl: options.url,
    ring,
    engine,
    transport,
    intervalMs: options.antiEntropyIntervalMs,
    birthVersion,
    clock,
    log: nodeLog,
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
    log: nodeLog,
    onReplicaWriteFailed: hintKeeper(options.url, hints, nodeLog),
    statusExtras: () => ({
      internodeProtocol: transportKind,
      internodeServer: internode.stats(),
      clockSkewMaxMs: options.clockSkewMaxMs,
      clockSkew: skew.status(),
      hints: { ...hints.stats(), handoff: handoff?.stats() },
      antiEntropy: { ...antiEntropy.stats(), responder: responder.stats() },
    }),
  });
  return { store, transport, internode, hints, handoff, antiEntropy };
}

/**
 * The coordinator's hook for failed replica writes: a peer that was down or
 * did not answer in time (late replicas included) gets a hint. The request
 * does not wait for the hint; a hint that cannot be kept (budget full, disk
 * error) is counted by the hint store and logged here, at most once per
 * interval per kind. Anti-entropy and read repair cover what is dropped.
 */
function hintKeeper(
  selfUrl: string,
  hints: HintStore,
  log: (line: string) => void,
): (peer: string, entry: Entry, err: unknown) => void {
  const lastLoggedMs = { dropped: 0, failed: 0 };
  const logAtMost = (kind: keyof typeof lastLoggedMs, line: string): void => {
    const nowMs = Date.now();
    if (nowMs - lastLoggedMs[kind] < HINT_LOG_INTERVAL_MS) return;
    lastLoggedMs[kind] = nowMs;
    log(line);
  };
  return (peer, entry, err) => {
    if (peer === selfUrl) return;
    if (!isRingkvError(err, 'RINGKV_UNAVAILABLE') && !isRingkvError(err, 'RINGKV_TIMEOUT')) return;
    void hints.add(peer, entry).then(
      (kept) => {
        if (!kept) logAtMost('dropped', `Hint for ${peer} dropped: the hint budget is full`);
      },
      (addErr: unknown) => {
        // Adds racing the shutdown's close are expected.
        if (!isRingkvError(addErr, 'RINGKV_CLOSED'))
          logAtMost('failed', `Cannot keep a hint for ${peer}: ${errorMessage(addErr)}`);
      },
    );
  };
}

interface _Repair {
  readonly transport: PeerLinks;
  readonly hints: HintStore;
  readonly handoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly log: (line: string) => void;
}

async function closeNode(parts: {
  server: HttpServer;
  store: Store;
  internode: InternodeServer | undefined;
  repair: _Repair | undefined;
  lock: DirLock;
}): Promise<void> {
  const { repair } = parts;
  try {
    // Leave first: clients and peers hear of it while this node still answers everything in flight.
    parts.server.beginLeaving();
    parts.internode?.leave();
    const leftMinMs = new Promise((resolve) => setTimeout(resolve, limits.shutdownLeavingMinMs));
    await repair?.transport.announceLeaving(Date.now() + limits.shutdownAnnounceMs);
    // Peers know: new connections are refused from here, and the open ones get their 503s meanwhile.
    parts.server.stopAccepting();
    await leftMinMs;
    // Upgraded internode sockets keep the HTTP server from closing: end them alongside.
    // The anti-entropy round under way ends meanwhile (or when the transport closes, below).
    await Promise.all([
      parts.server.close(limits.shutdownGraceMs),
      parts.internode?.close(),
      repair === undefined ? undefined : within(repair.antiEntropy.stop(), limits.shutdownAntiEntropyMs),
    ]);
    if (repair !== undefined) {
      // Requests are finished, so no hint is added after this: hand what is pending to reachable peers.
      const drained = await repair.handoff.drain(Date.now() + limits.shutdownHintDrainMs);
      if (drained.delivered > 0 || drained.remaining > 0) {
        repair.log(
          `Hints handed off on shutdown: ${drained.delivered}; ${drained.remaining} left on disk for the next start`,
        );
      }
      await repair.hints.close();
    }
    // Closes the transport (a cluster store) and the engine, making data durable.
    await parts.store.close();
  } finally {
    await parts.lock.release();
  }
}

/** Resolves when `work` does or after `ms`, whichever comes first; `work` failing is ignored. */
async function within(work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([work.catch(() => undefined), timeout]);
  clearTimeout(timer);
}

async function prepareDataDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'EEXIST' || code === 'ENOTDIR' ? 'not a directory' : errorMessage(err);
    throw new RingkvError('RINGKV_IO', `Cannot use data directory ${dir}: ${reason}`, { cause: err });
  }
}

async function openStorage(options: ServeOptions, log: (line: string) => void): Promise<Engine> {
  try {
    return await openEngine({
      dir: options.dataDir,
      sync: options.sync,
      memtableBytesMax: options.memtableBytesMax,
      blockCacheBytes: options.blockCacheBytes,
      log: (line) => log(`Node ${options.url}: ${line}`),
    });
  } catch (err) {
    if (isRingkvError(err)) throw err;
    throw new RingkvError('RINGKV_IO', `Cannot open storage in ${options.dataDir}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => {
    result ??= fn();
    return result;
  };
}

function logLine(line: string): void {
  process.stderr.write(`ringkv: ${line}\n`);
}
