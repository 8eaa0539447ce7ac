/**
 * `ringkv cluster`: N local nodes as one cluster, each its own `ringkv serve`
 * process (http://127.0.0.1:<base-port + i>, data in <data>/node-<i>, every
 * one given all N URLs). Prints the URLs once every node answers /v0/status
 * as itself (with its child's pid, not another process holding the port),
 * then runs until SIGINT or SIGTERM, which it forwards to the nodes, exiting
 * when they have. A node that dies on its own is reported and the others are
 * stopped: a cluster missing a member is not what was asked for. One that
 * exits before it is ready (its port taken, its data directory locked by a
 * process that took it after checkLocks) fails the command (exit 1) without
 * "ready". A node that exits 0 on its own once
 * ready, and whose stored membership says it was removed, left the cluster
 * (ringkv decommission): the others go on.
 *
 * Each node has an IPC channel to this process and stops (serve.ts) when it
 * closes: a `cluster` killed with SIGKILL leaves no node running unowned.
 * On a --data that holds a cluster already, the nodes started must be its
 * members (checkStoredMembers).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findMember,
  liveMembers,
  loadMembership,
  MemberState,
  type Membership,
} from '../cluster/membership/index.js';
import { checkDistinctEndpoints } from '../config/endpoints.js';
import { NODE_TUNING_FLAG_NAMES, nodeEnvSettings, type ServeFlags, serveOptions } from '../config/options.js';
import { acquireDirLock, nodeVfs, pathExists } from '../storage/index.js';
import { errorMessage, RingkvError } from '../util/errors.js';
import { parseFlags } from './args.js';

export const CLUSTER_USAGE = `Usage: ringkv cluster [--nodes 3] [--base-port 8080] [--data ./data] [serve flags]

  --nodes N          how many nodes (default 3)
  --base-port PORT   node i listens on PORT + i (default 8080)
  --data DIR         node i keeps its data in DIR/node-i (default ./data)

These serve flags are passed to every node: --sync, --anti-entropy-interval,
--max-key-bytes, --max-value-bytes, --memtable-bytes, --block-cache-bytes,
--compression, --request-timeout, --cluster-secret, --max-clock-skew,
--log-level, --log-format, --slow-request.

Prints "cluster of N ready" and the URLs once every node answers /v0/status as
its own process. A node directory locked by a running process is refused
before any node starts (exit 1). A node that exits before it is ready (its
port taken) stops the others: exit 1, without "ready"; so does one that dies or is
stopped later, unless it left the cluster (ringkv decommission). On a --data
that holds a cluster already, --nodes and --base-port must give its members.
`;

const PASSED_FLAGS = NODE_TUNING_FLAG_NAMES;

const NODES_MAX = 64;
/** Recovery of a large data directory can take a while before a node is ready. */
const READY_TIMEOUT_MS = 120_000;
const READY_POLL_MS = 100;
/** A /v0/status answer larger than this is not a node's. */
const STATUS_BYTES_MAX = 1024 * 1024;
/** Nodes exit within 10 s of SIGTERM; past this they are killed. */
const STOP_TIMEOUT_MS = 15_000;

interface Member {
  readonly name: string;
  readonly url: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  exited: boolean;
  exitCode: number | null;
  /** The signal that ended it, if one did (a node stopped before it took over its signals). */
  exitSignal: NodeJS.Signals | null;
  /** Its own process answered /v0/status (not another process on its port). */
  ready: boolean;
}

export async function clusterCommand(args: readonly string[]): Promise<void> {
  const flags = parseFlags(args, ['nodes', 'base-port', 'data', ...PASSED_FLAGS]);
  if (flags.help) {
    process.stdout.write(CLUSTER_USAGE);
    return;
  }
  const nodeCount = wholeNumber(flags.nodes ?? '3', '--nodes', 1, NODES_MAX);
  const basePort = wholeNumber(flags['base-port'] ?? '8080', '--base-port', 1, 65_536 - nodeCount);
  const dataDir = flags.data ?? './data';
  // An empty --data would put the nodes' directories in the working directory.
  if (dataDir === '') throw new RingkvError('RINGKV_CONFIG', 'Missing --data: an empty path');
  const passed: string[] = [];
  for (const name of PASSED_FLAGS) {
    const value = flags[name];
    // One argument: a value that starts with '-' (a secret may) is the flag's, not taken for another flag.
    if (value !== undefined) passed.push(`--${name}=${value}`);
  }
  const urls = Array.from({ length: nodeCount }, (_, i) => `http://127.0.0.1:${basePort + i}`);
  // The nodes' flags checked here, as the nodes will: a bad one is this command's one-line usage
  // error (exit 2), not one line per node and a cluster stopped.
  const serveFlags: ServeFlags = { url: urls[0], data: join(dataDir, 'node-0'), cluster: urls.join(',') };
  for (const name of PASSED_FLAGS) (serveFlags as Record<string, string | undefined>)[name] = flags[name];
  await checkDistinctEndpoints(serveOptions(serveFlags).cluster);
  // The nodes inherit this environment: its knobs are checked here too.
  nodeEnvSettings();
  await checkDataDirs(dataDir, nodeCount);
  await checkLocks(dataDir, nodeCount);
  await checkStoredMembers(dataDir, urls);
  const mainScript = fileURLToPath(new URL('./main.js', import.meta.url));

  let stopping = false;
  // Handlers first: a signal while the nodes are spawned is handled once they all are, not fatal.
  let members: Member[] = [];
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    for (const member of members) if (!member.exited) member.child.kill(signal);
    const force = setTimeout(() => {
      for (const member of members) if (!member.exited) member.child.kill('SIGKILL');
    }, STOP_TIMEOUT_MS);
    force.unref();
    void Promise.all(members.map(waitExit)).then(() => {
      clearTimeout(force);
      if (members.some((m) => m.exitCode !== 0 && !stoppedAsAsked(m))) process.exitCode = 1;
      process.exit();
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  members = urls.map((url, i) => {
    const args = [
      ...process.execArgv,
      mainScript,
      'serve',
      '--url',
      url,
      '--data',
      join(dataDir, `node-${i}`),
      '--cluster',
      urls.join(','),
      ...passed,
    ];
    // The IPC channel is how a node learns that this process is gone (serve.ts).
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const member: Member = {
      name: `node-${i}`,
      url,
      dataDir: join(dataDir, `node-${i}`),
      child,
      exited: false,
      exitCode: null,
      exitSignal: null,
      ready: false,
    };
    child.on('exit', async (code, signal) => {
      member.exited = true;
      member.exitCode = code;
      member.exitSignal = signal;
      if (!stopping && !member.ready) {
        // Its port taken, its data directory locked, ...: its own stderr said why, above.
        logLine(
          `${member.name} (${url}) exited before it was ready (${signal ?? `code ${code}`}): stopping the cluster`,
        );
        process.exitCode = 1;
        stop('SIGTERM');
      } else if (!stopping && code === 0 && (await wasRemoved(member))) {
        logLine(`${member.name} (${url}) left the cluster (exit 0); the others go on`);
        if (members.every((m) => m.exited)) process.exit();
      } else if (!stopping) {
        // Exit 0 of a member still listed: stopped by a signal from elsewhere, a member missing all the same.
        logLine(
          `${member.name} (${url}) exited unexpectedly (${signal ?? `code ${code}`}): stopping the cluster`,
        );
        process.exitCode = 1;
        stop('SIGTERM');
      }
    });
    child.on('error', (err) => logLine(`${member.name} (${url}): ${errorMessage(err)}`));
    return member;
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const member of members) {
    while (!stopping && !member.exited && !(await isOwnNode(member))) {
      if (Date.now() > deadline) {
        logLine(
          `${member.name} (${member.url}) did not become ready in ${READY_TIMEOUT_MS} ms: stopping the cluster`,
        );
        process.exitCode = 1;
        stop('SIGTERM');
        return;
      }
      await sleep(READY_POLL_MS);
    }
    if (!stopping && !member.exited) member.ready = true;
  }
  if (stopping || members.some((m) => m.exited)) return;
  process.stdout.write(`ringkv: cluster of ${nodeCount} ready\n${urls.join('\n')}\n`);
}

/**
 * Refuses (exit 2) to start other nodes than the members of the cluster
 * --data holds already, as the newest membership stored in a node's
 * directory lists them. A node that is not one has an empty directory, and
 * `--cluster` would give it a first view of its own, which the members never
 * take (membership.ts): it refuses to start if it meets them, and runs apart
 * from them if it starts before they listen. A member left out would be
 * down for good.
 */
async function checkStoredMembers(dataDir: string, urls: readonly string[]): Promise<void> {
  let stored: { view: Membership; dir: string } | undefined;
  for (let i = 0; i < urls.length; i++) {
    const dir = join(dataDir, `node-${i}`);
    // A damaged file is left to its node, which refuses it, naming it.
    const view = await loadMembership(nodeVfs, dir).catch(() => undefined);
    if (view !== undefined && (stored === undefined || view.epoch > stored.view.epoch))
      stored = { view, dir };
  }
  if (stored === undefined) return;
  const members = liveMembers(stored.view).map((m) => m.url);
  if (members.length === urls.length && urls.every((url) => members.includes(url))) return;
  throw new RingkvError(
    'RINGKV_CONFIG',
    `Refused: ${dataDir} holds a cluster of ${members.length} (${members.join(', ')}; stored in ${stored.dir}), and --nodes and --base-port give other nodes (${urls.join(', ')}): a node it lacks would start a cluster of its own. Start its members; grow or shrink it with ringkv serve --join and ringkv decommission`,
  );
}

/**
 * Refuses (exit 1, as a node would) a --data, or a node's directory in it,
 * that is there but not a directory: checked before any node starts, since
 * the nodes before it would start and write their files first.
 */
async function checkDataDirs(dataDir: string, nodeCount: number): Promise<void> {
  const dirs = [dataDir, ...Array.from({ length: nodeCount }, (_, i) => join(dataDir, `node-${i}`))];
  for (const dir of dirs) {
    const info = await nodeVfs.stat(dir).catch(() => undefined);
    if (info !== undefined && !info.isDirectory) {
      throw new RingkvError('RINGKV_IO', `Cannot use data directory ${dir}: not a directory`);
    }
  }
}

/**
 * Refuses (exit 1, with the line that node would print) a node directory
 * that a running process holds, before any node starts: each lock is taken
 * and given back at once. A process that takes one after this check still
 * stops its node at start, as any lock held would.
 */
async function checkLocks(dataDir: string, nodeCount: number): Promise<void> {
  for (let i = 0; i < nodeCount; i++) {
    const dir = join(dataDir, `node-${i}`);
    // A directory not made yet holds no lock, and this check makes none.
    if (!(await pathExists(nodeVfs, dir))) continue;
    const lock = await acquireDirLock(dir);
    await lock.release();
  }
}

/** Whether the member's stored membership says it was removed: it left the cluster, and exited 0. */
async function wasRemoved(member: Member): Promise<boolean> {
  const view = await loadMembership(nodeVfs, member.dataDir).catch(() => undefined);
  return view !== undefined && findMember(view, member.url)?.state === MemberState.Removed;
}

/**
 * A member ended by the stop's signal itself (or by the terminal's Ctrl-C,
 * which reaches the nodes too, in the same process group): one still
 * starting, whose handlers were not installed yet. A node takes its signals
 * before it opens its store (serve.ts), so it had written nothing: stopped
 * as asked, not a failure.
 */
function stoppedAsAsked(member: Member): boolean {
  return member.exitCode === null && (member.exitSignal === 'SIGTERM' || member.exitSignal === 'SIGINT');
}

function waitExit(member: Member): Promise<void> {
  if (member.exited) return Promise.resolve();
  return new Promise((resolve) => member.child.once('exit', () => resolve()));
}

/**
 * Whether the member's own process answers /v0/status at its URL: 200 with
 * the child's pid. Another process on that port (another cluster, a
 * leftover node) answers with its own pid, or not as a node at all.
 */
function isOwnNode(member: Member): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${member.url}/v0/status`, { timeout: 1000, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(false);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > STATUS_BYTES_MAX) {
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        try {
          const status = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { pid?: unknown };
          resolve(status.pid === member.child.pid);
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
      res.on('aborted', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  if (!/^[1-9][0-9]{0,5}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new RingkvError(
      'RINGKV_CONFIG',
      `Bad ${flag}: expected a whole number in ${min}..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function logLine(line: string): void {
  process.stderr.write(`ringkv: ${line}\n`);
}
