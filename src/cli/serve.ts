/**
 * `ringkv serve`: one node. The command turns argv into options, starts a
 * Node (node/node.ts owns the parts and their start and stop order), prints
 * one line when it is ready, and on SIGTERM or SIGINT stops it and exits 0,
 * or exits 1 if that takes longer than limits.shutdownForceMs. Started by
 * `ringkv cluster` (an IPC channel to it), it stops so too when that closes.
 *
 * Environment, for tests and diagnostics only: RINGKV_CLOCK_OFFSET_MS shifts
 * the node's wall clock (fake clock skew between nodes);
 * RINGKV_HINT_HANDOFF_INTERVAL_MS sets how often hints are handed off;
 * RINGKV_HTTP_FAST_PATH=off (benchmarks) serves every request through
 * node:http (http/fast/); RINGKV_INTERNODE=http sends internode traffic as
 * plain HTTP requests (benchmarks); RINGKV_STREAM_BYTES_PER_SEC bounds how
 * fast a node takes its new ranges in a move (tests slow it down to stop a
 * move halfway); RINGKV_NATIVE=off leaves the native block reader unloaded
 * (storage/sstable/native-reader.ts: lz4 blocks decompress on the event loop).
 */
import { transportKindFromEnv } from '../cluster/transport/index.js';
import { BLOCK_COMPRESSIONS, DEFAULT_BLOCK_COMPRESSION } from '../config/compression.js';
import { checkDistinctEndpoints } from '../config/endpoints.js';
import { limits } from '../config/limits.js';
import { nodeEnvSettings, SERVE_FLAG_NAMES, serveOptions } from '../config/options.js';
import { fastPathFromEnv } from '../http/index.js';
import { Node } from '../node/index.js';
import { nativeBlockReaderStatus } from '../storage/index.js';
import { errorMessage } from '../util/errors.js';
import { createLog, defaultLogFormat } from '../util/log.js';
import { parseFlags } from './args.js';

export const SERVE_USAGE = `Usage: ringkv serve --url URL --data DIR [flags]

  --url URL                    this node's URL (http://host:port); it listens on that host and port
  --data DIR                   this node's data directory (created if missing, locked while in use)
  --cluster URL,URL,...        every node of a new cluster, this one included (default: this node alone)
  --join URL                   join the running cluster this member belongs to (instead of --cluster)
  --replace URL                with --join: take the place of this dead member
  --sync on|off                fsync each write before acknowledging it (default on)
  --anti-entropy-interval MS   how often replicas are compared and repaired (default ${limits.antiEntropyIntervalMs}; 0 off)
  --max-key-bytes N            longer keys get 414 (default ${limits.keyBytesMax})
  --max-value-bytes N          larger values get 413 (default ${limits.valueBytesMax})
  --memtable-bytes N           largest memtable before a flush, each flushed at 75-100% of it (default ${limits.memtableBytesMax})
  --block-cache-bytes N        SSTable block cache (default ${limits.blockCacheBytes})
  --compression CODEC          SSTable block codec for new tables at level 2 and deeper: ${BLOCK_COMPRESSIONS.join(', ')} (default ${DEFAULT_BLOCK_COMPRESSION})
  --request-timeout MS         replicas that have not answered by then count as failed (default ${limits.requestTimeoutMs})
  --cluster-secret TEXT        shared secret nodes present to each other
  --max-clock-skew MS          largest wall-clock difference between nodes that writes stay ordered under (default ${limits.clockSkewMaxMs})
  --log-level LEVEL            debug, info, warn or error (default info)
  --log-format FORMAT          json (one object per line) or pretty (default: pretty on a terminal, json otherwise)
  --slow-request MS            log client requests slower than this (default ${limits.slowRequestMs}; 0 off)
`;

export async function serveCommand(args: readonly string[]): Promise<void> {
  const flags = parseFlags(args, SERVE_FLAG_NAMES);
  if (flags.help) {
    process.stdout.write(SERVE_USAGE);
    return;
  }
  const options = serveOptions(flags);
  const fromEnv = nodeEnvSettings();
  // Before anything is written: a node listed twice under two spellings would be its own peer, and
  // one that joins through itself, or replaces itself or the member it joins through, cannot start.
  await checkDistinctEndpoints(options.cluster);
  if (options.join !== undefined) {
    await checkDistinctEndpoints([options.url, options.join], { flag: '--join' });
    if (options.replace !== undefined) {
      await checkDistinctEndpoints([options.url, options.replace], { flag: '--replace' });
      await checkDistinctEndpoints([options.join, options.replace], { flag: '--replace' });
    }
  }
  const log = createLog({
    node: options.url,
    level: options.logLevel,
    format: options.logFormat ?? defaultLogFormat(),
  });
  // Signals are taken from the start: one during recovery or the first peer handshakes stops the
  // node as soon as it is up, instead of killing it mid-start.
  let node: Node | undefined;
  let stopping = false;
  const stopNode = (running: Node): void => {
    running.stop().then(
      () => {
        log.info('node.stopped', 'Stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error('node.stop-failed', `Shutdown failed: ${errorMessage(err)}`);
        process.exit(1);
      },
    );
  };
  // 'removed': the cluster took this node out (ringkv decommission); 'parent-exited': the `ringkv cluster`
  // that started it is gone. Either way it stops as on a signal and exits 0.
  const stop = (signal: NodeJS.Signals | 'removed' | 'parent-exited') => {
    // A terminal's Ctrl-C reaches both `ringkv cluster` and its children; the forwarded copy is a repeat.
    if (stopping) return;
    stopping = true;
    log.info('node.stopping', `${signal}: shutting down`, { signal });
    const force = setTimeout(() => {
      log.error('node.stop-forced', `Shutdown took over ${limits.shutdownForceMs} ms: exiting`);
      process.exit(1);
    }, limits.shutdownForceMs);
    force.unref();
    if (node !== undefined) stopNode(node);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A node that `ringkv cluster` started has an IPC channel to it, which closes when that process is
  // gone, killed with SIGKILL too: the node stops as on SIGTERM rather than run on, owned by nobody.
  if (process.channel !== undefined) {
    process.channel.unref();
    process.once('disconnect', () => stop('parent-exited'));
  }
  node = await Node.start(options, {
    log,
    ...fromEnv,
    fastPath: fastPathFromEnv(),
    transportKind: transportKindFromEnv(),
    onRemoved: () => stop('removed'),
  });
  process.stdout.write(
    `ringkv: node ${options.url} ready (data ${options.dataDir}, ${node.clusterSize} node cluster, sync ${options.sync ? 'on' : 'off'}, pid ${process.pid})\n`,
  );
  // No record before this one: a start that fails prints its one plain line only (cli/main.ts).
  log.info('node.ready', `Ready: ${node.clusterSize} node cluster, sync ${options.sync ? 'on' : 'off'}`, {
    data: options.dataDir,
    cluster: options.cluster,
    sync: options.sync,
    pid: process.pid,
    // How uncached lz4 blocks are read (storage/sstable/native-reader.ts) and the pool they use (bin/thread-pool.cjs).
    nativeBlockReader: nativeBlockReaderStatus,
    threadPool: threadPoolSizeInUse(process.env.UV_THREADPOOL_SIZE),
  });
  if (stopping) stopNode(node);
}

/** The pool libuv starts for UV_THREADPOOL_SIZE as it reads it: unset, 4; else atoi(), at least 1, at most 1024. */
export function threadPoolSizeInUse(setting: string | undefined): number {
  if (setting === undefined) return 4;
  const parsed = Number.parseInt(setting, 10);
  return Math.min(1024, Math.max(1, Number.isNaN(parsed) ? 0 : parsed));
}
