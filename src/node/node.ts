/**
 * Node: one ringkv node, assembled. It owns every resource (the data
 * directory's lock, the engine, the store and, in a cluster, the transport,
 * hints, anti-entropy and internode server, and the HTTP server) and the one
 * order in which they start and stop. The CLI (cli/serve.ts) keeps argv,
 * signals and messages; tests start nodes in-process through the same class.
 *
 * Start: the data directory is made if missing (after checking the port,
 * so that a refused start leaves nothing behind) and locked, the address is
 * checked (a port in use is refused before anything is written in the
 * directory), and the engine recovers its log; in a
 * cluster the parts are built (cluster-parts.ts); the HTTP server listens;
 * the hint handoff and anti-entropy loops start; then the node opens its link
 * to every peer at once (its handshake tells each peer it is back, so they
 * use it from their next request) and is ready once every peer was tried:
 * /v0/health?ready=1 and /v0/status answer 200 from then on.
 *
 * Stop, within API.md's 10 s: leave first (new client requests get 503 and
 * Connection: close; /v0/health?ready=1 answers 503; new connections are
 * refused; every peer with a link is told LEAVING and stops sending new
 * requests, routing reads to the other replicas); then let requests finish
 * (grace) while the anti-entropy round under way ends, client connections in
 * use getting their 503 and closing, idle ones closed once the node has been
 * leaving limits.shutdownIdleCloseMs;
 * then hand pending hints to the peers that are reachable (a failure there
 * is logged, and the stop goes on); then close the hint files, the transport
 * and the engine; release the lock.
 *
 *   const node = await Node.start(options, { log });
 *   ...
 *   await node.stop();
 */
import { claimTree, type IndexedEngine, treeFileIn } from '../cluster/antientropy/index.js';
import { HybridClock } from '../cluster/clock.js';
import { LocalStore } from '../cluster/local-store.js';
import type { Store } from '../cluster/store.js';
import type { TransportKind } from '../cluster/transport/index.js';
import { limits } from '../config/limits.js';
import type { ServeOptions } from '../config/options.js';
import { checkListenable, HttpServer } from '../http/index.js';
import {
  acquireDirLock,
  type DirLock,
  type Engine,
  nodeVfs,
  openEngine,
  pathExists,
  type Vfs,
  versionPhysicalMs,
} from '../storage/index.js';
import { errorMessage, isRingkvError, RingkvError } from '../util/errors.js';
import { type Log, lineLog } from '../util/log.js';
import { type ClusterParts, clusterParts, isClusterNode } from './cluster-parts.js';
import { NodeMetrics } from './metrics.js';
import { refuseInsideDataDir } from './snapshot-target.js';

export interface NodeSettings {
  /** Records of what an operator needs to know (util/log.ts); every record carries the node's URL. */
  readonly log: Log;
  /** Shifts the node's wall clock (tests and diagnostics: fake clock skew between nodes). */
  readonly clockOffsetMs?: number;
  /** How often hints are handed off (default limits.hintHandoffIntervalMs). */
  readonly hintHandoffIntervalMs?: number;
  /** Bytes per second taken from sources when streaming new ranges in a move (default: RINGKV_STREAM_BYTES_PER_SEC, or limits.streamBytesPerSecondMax). */
  readonly streamBytesPerSecond?: number;
  /** Whether plain entity requests take the HTTP fast path (default true). */
  readonly fastPath?: boolean;
  /** The internode protocol (default the binary one). */
  readonly transportKind?: TransportKind;
  /** The membership says this node was removed from its cluster (decommissioned): the caller stops it. */
  readonly onRemoved?: () => void;
  /** The file system of the cluster's files in the data directory: hints, BIRTH, the anti-entropy index (tests inject faults). */
  readonly clusterVfs?: Vfs;
}

export class Node {
  readonly options: ServeOptions;
  readonly server: HttpServer;
  readonly #store: Store;
  readonly #parts: ClusterParts | undefined;
  readonly #lock: DirLock;
  readonly #log: Log;
  #ready = false;
  #stopped: Promise<void> | undefined;

  private constructor(fields: {
    options: ServeOptions;
    server: HttpServer;
    store: Store;
    parts: ClusterParts | undefined;
    lock: DirLock;
    log: Log;
  }) {
    this.options = fields.options;
    this.server = fields.server;
    this.#store = fields.store;
    this.#parts = fields.parts;
    this.#lock = fields.lock;
    this.#log = fields.log;
  }

  /**
   * Brings a node up and resolves once it is ready. On failure it undoes
   * what it did and rejects with a one-line error.
   */
  static async start(options: ServeOptions, settings: NodeSettings): Promise<Node> {
    const log = settings.log;
    const clockOffsetMs = settings.clockOffsetMs ?? 0;
    // A directory this start would make is not made for a port it cannot listen on. (One that
    // exists is locked first, so that a second process on it is told whose it is.)
    const portFirst = !(await pathExists(nodeVfs, options.dataDir));
    if (portFirst) await checkListenable(options.port, options.host);
    await prepareDataDir(options.dataDir);
    const lock = await acquireDirLock(options.dataDir);
    let engine: Engine | undefined;
    let indexed: IndexedEngine | undefined;
    let parts: ClusterParts | undefined;
    try {
      // Before the store opens: a start refused for its port (in use, not local) changes nothing here.
      if (!portFirst) await checkListenable(options.port, options.host);
      // Out of the directory before the store opens: if it refuses to, the remedy (a damaged log
      // truncated) may drop writes the saved tree holds, and the next start must rebuild it.
      const treeFile = await claimTree(treeFileIn(options.dataDir, settings.clusterVfs ?? nodeVfs));
      engine = await openStorage(options, log);
      const clock = new HybridClock({
        clockSkewMaxMs: options.clockSkewMaxMs,
        ...(clockOffsetMs === 0 ? {} : { wallMs: () => Date.now() + clockOffsetMs }),
      });
      if (clockOffsetMs !== 0) {
        log.warn('clock.offset', `Wall clock offset by ${clockOffsetMs} ms (RINGKV_CLOCK_OFFSET_MS)`, {
          offsetMs: clockOffsetMs,
        });
      }
      seedClock(clock, engine, log);
      const metrics = new NodeMetrics(options.url);
      parts = (await isClusterNode(options))
        ? await clusterParts(options, {
            engine,
            clock,
            log,
            transportKind: settings.transportKind ?? 'frame',
            hintHandoffIntervalMs: settings.hintHandoffIntervalMs ?? limits.hintHandoffIntervalMs,
            ...(settings.streamBytesPerSecond === undefined
              ? {}
              : { streamBytesPerSecond: settings.streamBytesPerSecond }),
            onClockSample: (peer, _skewMs, rttMs) => metrics.observeRtt(peer, rttMs),
            ...(settings.onRemoved === undefined ? {} : { onRemoved: settings.onRemoved }),
            ...(settings.clusterVfs === undefined ? {} : { vfs: settings.clusterVfs }),
            onEngine: (e) => {
              indexed = e;
            },
            treeFile,
          })
        : undefined;
      const store: Store = parts?.store ?? new LocalStore(engine, clock, { selfUrl: options.url });
      const internode = parts?.internode;
      // The node is built before it listens, so that readiness can read its state.
      let node: Node | undefined;
      const server = new HttpServer({
        store,
        nodeUrl: options.url,
        cluster: options.cluster,
        keyBytesMax: options.keyBytesMax,
        valueBytesMax: options.valueBytesMax,
        log: lineLog(log, 'http'),
        // TTLs are stamped with this clock (coordinator, LocalStore): reads judge them by it too.
        wallMs: () => clock.wallMs(),
        fastPath: settings.fastPath ?? true,
        readiness: () => (node?.ready === true ? 'ready' : 'starting'),
        metrics: () => metrics.exposition(),
        snapshot: async (dir) => {
          await refuseInsideDataDir(nodeVfs, dir, options.dataDir);
          return (parts?.engine ?? engine)!.snapshot(dir);
        },
        slowRequests: {
          slowMs: options.slowRequestMs,
          onSlow: (op, status, ms) =>
            log.warn('request.slow', `A ${op} took ${Math.round(ms)} ms (answered ${status})`, {
              op,
              status,
              ms: Math.round(ms),
            }),
        },
        upgrade: internode?.handleUpgrade,
        internode:
          internode === undefined
            ? undefined
            : (req, res) => {
                if (!internode.handleHttp(req, res)) res.writeHead(400).end('Unknown internode request');
              },
      });
      node = new Node({ options, server, store, parts, lock, log });
      metrics.watch({ server, engine: parts?.engine ?? engine, parts, ready: () => node?.ready === true });
      await server.listen(options.port, options.host);
      parts?.handoff.start();
      parts?.antiEntropy.start();
      // Listening first: the peers this handshake wakes connect back at once.
      await parts?.transport.connect(parts.membership.peers());
      // Caught up with the members (and, with --join, announced as joining) before it reports ready.
      await parts?.membership.start();
      node.#ready = true;
      return node;
    } catch (err) {
      await parts?.membership.stop();
      parts?.internode.destroy();
      await parts?.hints.close().catch(() => undefined);
      await parts?.transport.close().catch(() => undefined);
      // The index alone if the parts did not come together (the store closes below), else both.
      if (parts === undefined) await indexed?.abandon();
      await (parts?.engine ?? engine)?.close().catch(() => undefined);
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  /** Whether the node has recovered its log and tried every peer once. */
  get ready(): boolean {
    return this.#ready;
  }

  get url(): string {
    return this.options.url;
  }

  /** Nodes on the cluster's current ring (1 for a node on its own); it changes as nodes join and leave. */
  get clusterSize(): number {
    return this.#store.clusterSize;
  }

  /** Leaves, drains, closes the store and releases the lock (module comment). Safe to call twice. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    const parts = this.#parts;
    const server = this.server;
    try {
      // Leave first: clients and peers hear of it while this node still answers everything in flight.
      server.beginLeaving();
      // Refused at once: a connection the kernel completed but the server had not yet accepted is
      // reset when the listener closes, so the listener closes before clients told 503 reconnect.
      server.stopAccepting();
      parts?.internode.leave();
      await parts?.transport.announceLeaving(Date.now() + limits.shutdownAnnounceMs);
      // Upgraded internode sockets keep the HTTP server from closing: end them alongside.
      // The anti-entropy round under way ends meanwhile (or when the transport closes, below).
      await Promise.all([
        server.close(limits.shutdownGraceMs),
        parts?.internode.close(),
        parts === undefined ? undefined : within(parts.antiEntropy.stop(), limits.shutdownAntiEntropyMs),
        parts?.membership.stop(),
      ]);
      if (parts !== undefined) {
        await this.#drainHints(parts);
        await parts.hints.close();
      }
      // Closes the transport (a cluster store) and the engine, making data durable.
      await this.#store.close();
    } finally {
      await this.#lock.release();
    }
  }

  /**
   * Requests are finished, so no hint is added after this: hands what is
   * pending to reachable peers. A failure (a hint file that cannot be read)
   * is logged and the shutdown goes on: what was not delivered stays on disk
   * for the next start, and the store must still be closed and made durable.
   */
  async #drainHints(parts: ClusterParts): Promise<void> {
    try {
      const drained = await parts.handoff.drain(Date.now() + limits.shutdownHintDrainMs);
      if (drained.delivered > 0 || drained.remaining > 0) {
        this.#log.info(
          'hints.shutdown',
          `Hints handed off on shutdown: ${drained.delivered}; ${drained.remaining} left on disk for the next start`,
          { delivered: drained.delivered, remaining: drained.remaining },
        );
      }
    } catch (err) {
      this.#log.warn(
        'hints.shutdown-failed',
        `Hints not handed off on shutdown: ${errorMessage(err)}; those pending stay on disk for the next start`,
      );
    }
  }
}

/**
 * Starts the clock at the newest version on disk: after a restart with the
 * wall clock set back, new writes must not be stamped below what is stored,
 * or a write answered 201 would lose to an older one. A version further
 * ahead than the clock follows (its drift bound) is logged instead; a
 * single node then stamps writes of such keys above them (local-store.ts).
 */
function seedClock(clock: HybridClock, engine: Engine, log: Log): void {
  const stored = engine.maxVersion?.() ?? 0n;
  if (stored === 0n || clock.observe(stored)) return;
  const aheadMs = versionPhysicalMs(stored) - clock.wallMs();
  log.warn(
    'clock.behind-data',
    `The newest stored version is ${aheadMs} ms ahead of this node's clock: writes made before the clock catches up may be ordered below it`,
    { aheadMs },
  );
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
    await nodeVfs.mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'EEXIST' || code === 'ENOTDIR' ? 'not a directory' : errorMessage(err);
    throw new RingkvError('RINGKV_IO', `Cannot use data directory ${dir}: ${reason}`, { cause: err });
  }
}

async function openStorage(options: ServeOptions, log: Log): Promise<Engine> {
  try {
    return await openEngine({
      dir: options.dataDir,
      sync: options.sync,
      memtableBytesMax: options.memtableBytesMax,
      // Replicas take the same writes: each freezes its memtables at sizes of its own, not all at once.
      memtableBytesJitter: limits.memtableBytesJitter,
      blockCacheBytes: options.blockCacheBytes,
      compression: options.compression,
      log: lineLog(log, 'engine'),
      summary: (line) => log.info('engine.background', line),
    });
  } catch (err) {
    if (isRingkvError(err)) throw err;
    throw new RingkvError('RINGKV_IO', `Cannot open storage in ${options.dataDir}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}
