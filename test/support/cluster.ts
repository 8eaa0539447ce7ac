/**
 * Real multi-node clusters for end-to-end tests: N `ringkv serve` processes on
 * free ports, each given every URL, started together; a node can be stopped,
 * killed and started again on its port and data directory.
 *
 *   const cluster = await startCluster({ count: 3, args: ['--sync', 'off'] });
 *   await stopNode(cluster.nodes[2]!);
 *   await cluster.restart(2);
 *   await cluster.restart(2, { readiness: 'health' });   // until /v0/health?ready=1 answers 200
 */
import { httpRequest, RawConnection } from './http-client.js';
import { type NodeProcess, type Readiness, sleep, startNode } from './node-process.js';
import { freePorts } from './ports.js';
import { makeTempDir } from './temp-dir.js';

export interface ClusterOptions {
  readonly count: number;
  /** More `serve` flags for every node. */
  readonly args?: readonly string[];
  /** Environment for node i. */
  readonly envFor?: (index: number) => Readonly<Record<string, string>> | undefined;
  /** The --cluster list node i is given (default: every URL, in port order). */
  readonly clusterFor?: (index: number, urls: readonly string[]) => readonly string[];
}

export interface TestCluster {
  readonly urls: readonly string[];
  /** The current process of each node (replaced by restart()). */
  readonly nodes: NodeProcess[];
  /**
   * Starts node `index` again on its port and data directory (after a stop or
   * kill), and waits until it is ready: by default until /v0/status answers,
   * with `readiness: 'health'` until /v0/health?ready=1 answers 200.
   */
  restart(index: number, options?: { readonly readiness?: Readiness }): Promise<NodeProcess>;
}

export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const ports = await freePorts(options.count);
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const dirs = await Promise.all(ports.map(() => makeTempDir('ringkv-cluster-')));
  const start = (index: number, readiness?: Readiness): Promise<NodeProcess> => {
    const env = options.envFor?.(index);
    return startNode({
      dataDir: dirs[index]!,
      port: ports[index]!,
      cluster: options.clusterFor?.(index, urls) ?? urls,
      args: options.args ?? [],
      ...(env === undefined ? {} : { env }),
      ...(readiness === undefined ? {} : { readiness }),
    });
  };
  const nodes = await Promise.all(urls.map((_, index) => start(index)));
  // A node that came up first may have marked the others down while they
  // started; it finds them again within one probe interval. Tests begin after.
  await waitLiveNodesSeeEachOther(nodes, urls);
  return {
    urls,
    nodes,
    restart: async (index, restartOptions = {}) => {
      // No wait for the peers here: tests of what happens right after a restart need that moment.
      const node = await start(index, restartOptions.readiness);
      nodes[index] = node;
      return node;
    },
  };
}

/** Waits (bounded) until every running node reports every other running node up. */
async function waitLiveNodesSeeEachOther(
  nodes: readonly NodeProcess[],
  urls: readonly string[],
): Promise<void> {
  const live = urls.filter((_, i) => nodes[i]!.exit === undefined);
  for (const url of live) {
    for (const peer of live) {
      if (peer !== url && !(await waitPeerState(url, peer, 'up'))) {
        throw new Error(`${url} still sees ${peer} down`);
      }
    }
  }
}

/** The entries of a range answer, read chunk by chunk (one chunk per entry: key '\n' value). */
export async function rangeEntries(
  port: number,
  path: string,
  host = '127.0.0.1',
): Promise<{ status: number; entries: [string, string][] }> {
  const conn = await RawConnection.open(port, host);
  try {
    await conn.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
    const answer = await conn.readAnswer();
    const entries = (answer.chunks ?? []).map((chunk): [string, string] => {
      const newline = chunk.indexOf(0x0a);
      return [chunk.subarray(0, newline).toString(), chunk.subarray(newline + 1).toString()];
    });
    return { status: answer.status, entries };
  } finally {
    conn.close();
  }
}

/** The node's /v0/status `store` object. */
export async function storeStatus(url: string): Promise<Record<string, unknown>> {
  const answer = await httpRequest(`${url}/v0/status`);
  return (JSON.parse(answer.body.toString()) as { store: Record<string, unknown> }).store;
}

/** Waits (bounded) until `url` sees `peer` as up or down; true once it does. */
export async function waitPeerState(
  url: string,
  peer: string,
  state: 'up' | 'down',
  timeoutMs = 5000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const peers = (await storeStatus(url)).peers as Record<string, string> | undefined;
    if (peers?.[peer] === state) return true;
    await sleep(50);
  }
  return false;
}
