/**
 * Real ringkv node processes for end-to-end tests: `ringkv serve` (and
 * `ringkv cluster`) started as children of the test with process.execPath and
 * the compiled CLI, found relative to this file.
 *
 * Every child started here is remembered; call killAllStarted() in an `after`
 * hook. Each is killed by its own PID, and a process 'exit' handler kills any
 * left over should a test file die first.
 *
 *   const node = await startNode({ dataDir: await makeTempDir() });
 *   const answer = await httpRequest(`${node.url}/v0/status`);
 *   await stopNode(node);            // SIGTERM, waits for the exit
 *
 * Readiness: startNode() waits for /v0/status to answer 200 (the node
 * listens), or with `readiness: 'health'` for /v0/health?ready=1 to answer
 * 200 (the node has recovered its log and tried every peer once).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { httpRequest } from './http-client.js';
import { freePort } from './ports.js';

/** The compiled CLI entry point (dist/src/cli/main.js or wherever this build went). */
export const MAIN_SCRIPT = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** bin/ringkv, the command users run: it sizes the thread pool, then loads MAIN_SCRIPT. */
export const BIN_SCRIPT = fileURLToPath(new URL('../../../bin/ringkv', import.meta.url));

/** bin/thread-pool.cjs: the thread pool's size for a ringkv process, which children started here get too. */
export const threadPool = createRequire(import.meta.url)('../../../bin/thread-pool.cjs') as {
  threadPoolSize(cores?: number): number;
  withThreadPoolSize(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
};

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface StartNodeOptions {
  readonly dataDir: string;
  /** Default: a free port. */
  readonly port?: number;
  /** Every node's URL, this one's included; default: a one-node cluster. */
  readonly cluster?: readonly string[];
  /** More `serve` flags, e.g. ['--sync', 'off']. */
  readonly args?: readonly string[];
  /** Flags for node itself, e.g. ['--max-old-space-size=48']. */
  readonly execArgv?: readonly string[];
  /** How long to wait for the node to be ready. */
  readonly readyTimeoutMs?: number;
  /**
   * What "ready" means: 'status' (default), /v0/status answers 200; 'health',
   * /v0/health?ready=1 answers 200.
   */
  readonly readiness?: Readiness;
  /** More environment variables for the node, e.g. { RINGKV_CLOCK_OFFSET_MS: '1000' }. */
  readonly env?: Readonly<Record<string, string>>;
  /** A group id for the process (root only), so that firewall rules can match its sockets (iptables -m owner). */
  readonly gid?: number;
  /** The host in the node's URL (default 127.0.0.1), e.g. its address in a network namespace. */
  readonly host?: string;
  /** A command the node runs under, e.g. ['ip', 'netns', 'exec', NAME] (it must exec the node: same PID). */
  readonly wrap?: readonly string[];
  /** The script node runs: MAIN_SCRIPT (default) or BIN_SCRIPT. */
  readonly script?: string;
  /** See spawnCli: 'unset' starts the node without UV_THREADPOOL_SIZE (and without the one the test has). */
  readonly threadPoolEnv?: 'given' | 'unset';
}

/** How startNode() decides a node is ready: see StartNodeOptions.readiness. */
export type Readiness = 'status' | 'health';

export class NodeProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Resolves when the process has exited and its output pipes are drained. */
  readonly closed: Promise<void>;
  #stdout = '';
  #stderr = '';
  #exit: ExitInfo | undefined;
  /** Set while the process is stopped with SIGSTOP (pauseNode), until resumeNode. */
  paused = false;

  constructor(child: ChildProcess, fields: { url: string; port: number; dataDir: string }) {
    this.child = child;
    this.url = fields.url;
    this.port = fields.port;
    this.dataDir = fields.dataDir;
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      this.#stdout += text;
    });
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.#stderr += text;
    });
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The exit, if it has happened. */
  get exit(): ExitInfo | undefined {
    return this.#exit;
  }
}

const started = new Set<NodeProcess>();

process.once('exit', () => {
  for (const node of started) {
    if (node.exit !== undefined) continue;
    if (node.paused) node.child.kill('SIGCONT');
    node.child.kill('SIGKILL');
  }
});

/** Spawns `ringkv <args>` without waiting for anything; the process is tracked for killAllStarted(). */
export function spawnCli(
  args: readonly string[],
  fields: {
    url?: string;
    port?: number;
    dataDir?: string;
    execArgv?: readonly string[];
    env?: Readonly<Record<string, string>>;
    gid?: number;
    wrap?: readonly string[];
    script?: string;
    /** The working directory (default: this process's). */
    cwd?: string;
    /** 'given' (default): UV_THREADPOOL_SIZE as bin/ringkv would set it, unless set; 'unset': only what `env` sets. */
    threadPoolEnv?: 'given' | 'unset';
  } = {},
): NodeProcess {
  const command = [
    ...(fields.wrap ?? []),
    process.execPath,
    ...(fields.execArgv ?? []),
    fields.script ?? MAIN_SCRIPT,
    ...args,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (fields.threadPoolEnv === 'unset') delete env.UV_THREADPOOL_SIZE;
  Object.assign(env, fields.env);
  const child = spawn(command[0]!, command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    // The thread pool bin/ringkv would give the node, unless the test or its caller set one.
    env: fields.threadPoolEnv === 'unset' ? env : threadPool.withThreadPoolSize(env),
    ...(fields.gid === undefined ? {} : { gid: fields.gid }),
    ...(fields.cwd === undefined ? {} : { cwd: fields.cwd }),
  });
  const node = new NodeProcess(child, {
    url: fields.url ?? '',
    port: fields.port ?? 0,
    dataDir: fields.dataDir ?? '',
  });
  started.add(node);
  return node;
}

/** Starts `ringkv serve` and waits until it is ready (options.readiness). */
export async function startNode(options: StartNodeOptions): Promise<NodeProcess> {
  const port = options.port ?? (await freePort());
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  const args = ['serve', '--url', url, '--data', options.dataDir];
  if (options.cluster !== undefined) args.push('--cluster', options.cluster.join(','));
  args.push(...(options.args ?? []));
  const node = spawnCli(args, {
    url,
    port,
    dataDir: options.dataDir,
    ...(options.execArgv === undefined ? {} : { execArgv: options.execArgv }),
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
    ...(options.wrap === undefined ? {} : { wrap: options.wrap }),
    ...(options.script === undefined ? {} : { script: options.script }),
    ...(options.threadPoolEnv === undefined ? {} : { threadPoolEnv: options.threadPoolEnv }),
  });
  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  if (options.readiness === 'health') await waitHealthReady(node, timeoutMs);
  else await waitReady(node, timeoutMs);
  return node;
}

/** Polls /v0/status until 200; rejects (with the node's stderr) if it exits or the time runs out. */
export async function waitReady(node: NodeProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (node.exit !== undefined) {
      throw new Error(
        `Node ${node.url} exited (${JSON.stringify(node.exit)}) before ready: ${node.stderr.trim()}`,
      );
    }
    try {
      const answer = await httpRequest(`${node.url}/v0/status`, { timeoutMs: 1000 });
      if (answer.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(Math.min(25 * (attempt + 1), 200));
  }
  throw new Error(`Node ${node.url} not ready within ${timeoutMs} ms: ${node.stderr.trim()}`);
}

/**
 * Polls /v0/health?ready=1 until it answers 200: the node has recovered its
 * log and tried every peer once. Rejects (with the node's stderr and the last
 * answer seen) if the node exits or the time runs out.
 */
export async function waitHealthReady(node: NodeProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (node.exit !== undefined) {
      throw new Error(
        `Node ${node.url} exited (${JSON.stringify(node.exit)}) before ready: ${node.stderr.trim()}`,
      );
    }
    try {
      const answer = await httpRequest(`${node.url}/v0/health?ready=1`, { timeoutMs: 1000 });
      if (answer.status === 200) return;
      last = `${answer.status} ${answer.body.toString().slice(0, 200)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    // Short polls: tests measure what happens the moment a node is ready.
    await sleep(Math.min(10 * (attempt + 1), 50));
  }
  throw new Error(
    `Node ${node.url}: /v0/health?ready=1 not 200 within ${timeoutMs} ms (last: ${last}): ${node.stderr.trim()}`,
  );
}

/**
 * SIGSTOP: the process hangs with its sockets open (peers' connections stay
 * up, nothing is answered). killAllStarted() and the exit handler continue it
 * before killing it; call resumeNode() in a `finally`.
 */
export function pauseNode(node: NodeProcess): void {
  if (node.exit !== undefined) throw new Error(`Node ${node.url} has exited`);
  node.paused = true;
  node.child.kill('SIGSTOP');
}

/** SIGCONT for a node paused with pauseNode(); nothing if it is not paused. */
export function resumeNode(node: NodeProcess): void {
  if (!node.paused) return;
  node.paused = false;
  if (node.exit === undefined) node.child.kill('SIGCONT');
}

/**
 * Sends `signal` (default SIGTERM) and waits for the exit. If the process is
 * still there after `timeoutMs`, it is killed and this rejects.
 */
export async function stopNode(
  node: NodeProcess,
  options: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<ExitInfo> {
  if (node.exit !== undefined) return node.exit;
  node.child.kill(options.signal ?? 'SIGTERM');
  // A paused node takes the signal once continued.
  resumeNode(node);
  const timeoutMs = options.timeoutMs ?? 12_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  const exit = await Promise.race([node.exited, timedOut]);
  clearTimeout(timer);
  if (exit === undefined) {
    node.child.kill('SIGKILL');
    await node.exited;
    throw new Error(`Node ${node.url} did not exit within ${timeoutMs} ms of ${options.signal ?? 'SIGTERM'}`);
  }
  return exit;
}

/** kill -9 and wait for the exit (a paused node is continued first). */
export async function killNode(node: NodeProcess): Promise<ExitInfo> {
  if (node.exit !== undefined) return node.exit;
  resumeNode(node);
  node.child.kill('SIGKILL');
  return node.exited;
}

/** For `after` hooks: kills (by PID) every process this file started that is still running. */
export async function killAllStarted(): Promise<void> {
  const nodes = [...started];
  started.clear();
  await Promise.all(nodes.map((node) => killNode(node)));
}

/** Runs a short-lived `ringkv` command to its end (killing it after `timeoutMs`). */
export async function runCli(
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<ExitInfo & { stdout: string; stderr: string }> {
  const node = spawnCli(args);
  const timer = setTimeout(() => node.child.kill('SIGKILL'), timeoutMs);
  const exit = await node.exited;
  await node.closed;
  clearTimeout(timer);
  return { ...exit, stdout: node.stdout, stderr: node.stderr };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether a process with this PID exists (signal 0 tests, sends nothing). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits, polling every 50 ms for at most `timeoutMs`, for the process to be gone; whether it is. */
export async function waitGone(pid: number, timeoutMs = 5000): Promise<boolean> {
  for (let waited = 0; waited < timeoutMs && isRunning(pid); waited += 50) await sleep(50);
  return !isRunning(pid);
}

/** Waits (at most 15 s) until `ringkv cluster` printed its `count` URLs; returns them. */
export async function waitClusterUrls(cluster: NodeProcess, count: number): Promise<string[]> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const urls = cluster.stdout.split('\n').filter((line) => line.startsWith('http://'));
    if (urls.length === count) return urls;
    if (cluster.exit !== undefined) throw new Error(`cluster exited: ${cluster.stderr}`);
    await sleep(50);
  }
  throw new Error(`cluster did not print ${count} URLs: ${cluster.stdout} ${cluster.stderr}`);
}
