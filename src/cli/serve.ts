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
 * peers on the same port, and a ClusterStore that coordinates requests.
 *
 * RINGKV_CLOCK_OFFSET_MS (tests and diagnostics only) shifts the node's wall
 * clock, to fake clock skew between nodes.
 */
import { mkdir } from 'node:fs/promises';
import { HybridClock } from '../cluster/clock.js';
import { LocalStore } from '../cluster/local-store.js';
import { ClusterStore, createReplica } from '../cluster/replication/index.js';
import { Ring } from '../cluster/ring/index.js';
import type { Store } from '../cluster/store.js';
import {
  createTransport,
  InternodeServer,
  type Transport,
  transportKindFromEnv,
} from '../cluster/transport/index.js';
import { limits } from '../config/limits.js';
import { clockOffsetFromEnv, SERVE_FLAG_NAMES, type ServeOptions, serveOptions } from '../config/options.js';
import { HttpServer } from '../http/index.js';
import { acquireDirLock, type DirLock } from '../storage/dir-lock.js';
import { type Engine, openEngine } from '../storage/index.js';
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
  await prepareDataDir(options.dataDir);
  const lock = await acquireDirLock(options.dataDir);
  let engine: Engine | undefined;
  let parts: ClusterParts | undefined;
  try {
    engine = await openStorage(options);
    const clock = new HybridClock(clockOffsetMs === 0 ? {} : { wallMs: () => Date.now() + clockOffsetMs });
    if (clockOffsetMs !== 0)
      log(`Node ${options.url}: wall clock offset by ${clockOffsetMs} ms (RINGKV_CLOCK_OFFSET_MS)`);
    parts = options.cluster.length > 1 ? clusterParts(options, engine, clock, log) : undefined;
    const store: Store = parts?.store ?? new LocalStore(engine, clock);
    const internode = parts?.internode;
    const server = new HttpServer({
      store,
      nodeUrl: options.url,
      cluster: options.cluster,
      keyBytesMax: options.keyBytesMax,
      valueBytesMax: options.valueBytesMax,
      log,
      upgrade: internode?.handleUpgrade,
      internode:
        internode === undefined
          ? undefined
          : (req, res) => {
              if (!internode.handleHttp(req, res)) res.writeHead(400).end('Unknown internode request');
            },
    });
    await server.listen(options.port, options.host);
    return { options, server, close: once(() => closeNode({ server, store, internode, lock })) };
  } catch (err) {
    parts?.internode.destroy();
    await parts?.transport.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    await lock.release().catch(() => undefined);
    throw err;
  }
}

interface ClusterParts {
  readonly store: ClusterStore;
  readonly transport: Transport;
  readonly internode: InternodeServer;
}

/** The pieces of a node in a cluster of two or more: ring, transport, replica, internode server, store. */
function clusterParts(
  options: ServeOptions,
  engine: Engine,
  clock: HybridClock,
  log: (line: string) => void,
): ClusterParts {
  if (options.clusterSecret === undefined) {
    log(
      `Node ${options.url}: warning: no --cluster-secret, so internode requests are unauthenticated (anyone who reaches this port can write any version of any key)`,
    );
  }
  const ring = new Ring(options.cluster);
  const transportKind = transportKindFromEnv();
  const transport = createTransport({ kind: transportKind, secret: options.clusterSecret });
  const replica = createReplica(engine, clock, { clockSkewMaxMs: options.clockSkewMaxMs });
  const internode = new InternodeServer(replica, {
    secret: options.clusterSecret,
    selfUrl: options.url,
    onError: (err) => log(`Internode request failed unexpectedly: ${errorMessage(err)}`),
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
    log: (line) => log(`Node ${options.url}: ${line}`),
    statusExtras: () => ({ internodeProtocol: transportKind, internodeServer: internode.stats() }),
  });
  return { store, transport, internode };
}

async function closeNode(parts: {
  server: HttpServer;
  store: Store;
  internode: InternodeServer | undefined;
  lock: DirLock;
}): Promise<void> {
  try {
    // Upgraded internode sockets keep the HTTP server from closing: end them alongside.
    await Promise.all([parts.server.close(limits.shutdownGraceMs), parts.internode?.close()]);
    // Closes the transport (a cluster store) and the engine, making data durable.
    await parts.store.close();
  } finally {
    await parts.lock.release();
  }
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

async function openStorage(options: ServeOptions): Promise<Engine> {
  try {
    return await openEngine({
      dir: options.dataDir,
      sync: options.sync,
      memtableBytesMax: options.memtableBytesMax,
      blockCacheBytes: options.blockCacheBytes,
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
