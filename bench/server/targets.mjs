/**
 * The processes a server benchmark measures: a ringkv node, a local ringkv
 * cluster, the ceiling server, or the ceiling cluster. Each start* returns a handle whose stop()
 * sends SIGTERM and waits (bounded), and whose ports are where it listens.
 */
import fs from 'node:fs';
import path from 'node:path';
import { freePorts, logTail, startNode, stopChild, waitReady } from '../lib/procs.mjs';
import { BENCH_DIR, ROOT_DIR } from '../lib/results.mjs';
import { envString } from '../lib/settings.mjs';
import { log } from '../lib/stats.mjs';

export function ringkvBin() {
  return envString('BENCH_RINGKV_BIN', path.join(ROOT_DIR, 'bin', 'ringkv'));
}

/** Extra flags for every `ringkv serve` a bench starts, space separated (BENCH_NODE_FLAGS), e.g. "--anti-entropy-interval 0". */
export function extraFlags() {
  const v = envString('BENCH_NODE_FLAGS', '');
  return v.trim() ? v.trim().split(/\s+/) : [];
}

/** Extra flags for node itself when it runs ringkv (BENCH_NODE_ARGS), e.g. "--max-semi-space-size=32". */
function nodeArgsFromEnv() {
  const v = envString('BENCH_NODE_ARGS', '');
  return v.trim() ? v.trim().split(/\s+/) : [];
}

function handle(child, ports, label) {
  return {
    child,
    ports,
    label,
    pid: child.pid,
    async stop() {
      const { code, signal } = await stopChild(child, 15000);
      if (code !== 0 && code !== null) {
        throw new Error(`${label} (pid ${child.pid}) exited with code ${code}:\n${logTail(child.logFile)}`);
      }
      if (signal !== null)
        log(`warning: ${label} (pid ${child.pid}) did not stop on SIGTERM in time (${signal})`);
      return { code, signal };
    },
  };
}

/** `ringkv serve` on a free port; `nodeArgs` go to node itself (--cpu-prof, ...). */
export async function startRingkv({ dir, sync, port, nodeArgs = [], logFile, env = {} }) {
  const p = port ?? (await freePorts(1))[0];
  const args = [
    'serve',
    '--url',
    `http://127.0.0.1:${p}`,
    '--data',
    dir,
    '--sync',
    sync ? 'on' : 'off',
    ...extraFlags(),
  ];
  const child = startNode(ringkvBin(), args, { nodeArgs: [...nodeArgsFromEnv(), ...nodeArgs], env, logFile });
  await waitReady(child, [p]);
  return handle(child, [p], `ringkv node :${p}`);
}

/** `ringkv cluster --nodes N --base-port P --data DIR`; env goes to the cluster process (RINGKV_INTERNODE). */
export async function startCluster({ dir, nodes, env = {}, logFile }) {
  const ports = await freePorts(nodes);
  const args = [
    'cluster',
    '--nodes',
    String(nodes),
    '--base-port',
    String(ports[0]),
    '--data',
    dir,
    ...extraFlags(),
  ];
  // ringkv cluster passes its own node flags on to the nodes it starts.
  const child = startNode(ringkvBin(), args, { nodeArgs: nodeArgsFromEnv(), env, logFile });
  await waitReady(child, ports, 120000);
  return handle(child, ports, `ringkv cluster :${ports[0]}..${ports.at(-1)}`);
}

export async function startCeiling({ logFile }) {
  const [p] = await freePorts(1);
  const child = startNode(path.join(BENCH_DIR, 'load', 'ceiling-server.mjs'), [String(p)], { logFile });
  await waitReady(child, [p]);
  return handle(child, [p], `ceiling server :${p}`);
}

/**
 * The ceiling cluster (load/ceiling-cluster.mjs): `nodes` processes; ports are their HTTP ports.
 * With `logDir`, each node makes its copies of writes durable in a log there (created if missing), of
 * `logBytes` (default: the ceiling's own).
 */
export async function startCeilingCluster({ nodes, logFile, logDir, logBytes }) {
  if (logDir !== undefined) fs.mkdirSync(logDir, { recursive: true });
  const all = await freePorts(2 * nodes);
  const httpPorts = all.slice(0, nodes);
  const peerPorts = all.slice(nodes);
  const child = startNode(
    path.join(BENCH_DIR, 'load', 'ceiling-cluster.mjs'),
    [
      '--http',
      httpPorts.join(','),
      '--peer',
      peerPorts.join(','),
      ...(logDir === undefined ? [] : ['--log-dir', logDir]),
      ...(logBytes === undefined ? [] : ['--log-bytes', String(logBytes)]),
    ],
    { logFile },
  );
  const target = handle(child, httpPorts, `ceiling cluster :${httpPorts[0]}..${httpPorts.at(-1)}`);
  try {
    await waitReady(child, httpPorts);
  } catch (err) {
    await target.stop().catch(() => {});
    throw err;
  }
  return target;
}

export function targetsOf(ports) {
  return ports.map((port) => ({ host: '127.0.0.1', port }));
}
