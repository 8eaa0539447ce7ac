/**
 * The torture's cluster: K real `ringkv serve` processes on loopback, each
 * with a fixed port, data directory and group id (so that netcut.ts can
 * match its sockets), started, killed, stopped, paused and started again by
 * the abuses. Every exit the harness did not ask for is a *crash*, kept
 * with the end of the node's log.
 *
 *   const cluster = await TortureCluster.create({ count: 3, root, args, clock });
 *   await cluster.startAll();
 *   await cluster.kill(1);
 *   const started = await cluster.launch(1, { cause: 'kill -9' });   // until /v0/health?ready=1
 *
 * A node may be started with its wall clock shifted (clock.ts): under
 * libfaketime when it is installed, else with RINGKV_CLOCK_OFFSET_MS.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ExitInfo,
  killNode,
  type NodeProcess,
  pauseNode,
  resumeNode,
  spawnCli,
  stopNode,
  waitHealthReady,
} from '../support/node-process.js';
import { freePorts } from '../support/ports.js';
import type { ClockShifter } from './clock.js';

/** How long a start may take to answer ready (recovery of a log, a busy machine). */
const READY_TIMEOUT_MS = 30_000;
/** Group ids for the nodes: far above any system group, and apart per torture process. */
const GID_BASE = 3_000_000;

export interface Member {
  readonly index: number;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly gid: number;
  process: NodeProcess | undefined;
  /** Set before the harness signals or starts the process, so that its exit is not counted as a crash. */
  expectingExit: boolean;
  /** The wall-clock shift of the running process, ms (0: none). */
  clockOffsetMs: number;
}

export interface Crash {
  readonly node: string;
  readonly exit: ExitInfo;
  readonly atMs: number;
  readonly during: string;
  /** The last lines the node wrote. */
  readonly logTail: string;
}

export type LaunchResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly exit: ExitInfo | undefined;
      readonly stderr: string;
      readonly reason: string;
    };

export interface ClusterSettings {
  readonly count: number;
  /** Data directories go under it, node-<i>. */
  readonly root: string;
  /** `serve` flags for every node. */
  readonly args: readonly string[];
  readonly clock: ClockShifter;
  /** What the run is doing now, for crash records. */
  readonly phase: () => string;
}

export class TortureCluster {
  readonly members: Member[];
  readonly crashes: Crash[] = [];
  /** Starts after the first, by cause ('kill -9', 'SIGTERM', ...). */
  readonly restarts: Record<string, number> = {};
  readonly #settings: ClusterSettings;

  private constructor(settings: ClusterSettings, ports: readonly number[]) {
    this.#settings = settings;
    const gidBase = GID_BASE + (process.pid % 100_000) * 8;
    this.members = ports.map((port, index) => ({
      index,
      url: `http://127.0.0.1:${port}`,
      port,
      dataDir: join(settings.root, `node-${index}`),
      gid: gidBase + index,
      process: undefined,
      expectingExit: false,
      clockOffsetMs: 0,
    }));
  }

  static async create(settings: ClusterSettings): Promise<TortureCluster> {
    return new TortureCluster(settings, await freePorts(settings.count));
  }

  get urls(): string[] {
    return this.members.map((m) => m.url);
  }

  running(index: number): boolean {
    const node = this.members[index]!.process;
    return node !== undefined && node.exit === undefined;
  }

  async startAll(): Promise<void> {
    const results = await Promise.all(
      this.members.map((m) => this.launch(m.index, { cause: 'first start' })),
    );
    const failed = results.find((r) => !r.ok);
    if (failed !== undefined && !failed.ok) throw new Error(`A node did not start: ${failed.reason}`);
  }

  /**
   * Starts node `index` on its port and data directory and waits until
   * /v0/health?ready=1 answers 200. An exit before that (a refused start) is
   * returned, not counted as a crash: the caller knows whether it expected one.
   */
  async launch(index: number, options: { cause: string; clockOffsetMs?: number }): Promise<LaunchResult> {
    const member = this.members[index]!;
    if (this.running(index)) throw new Error(`Node ${member.url} is already running`);
    const clockOffsetMs = options.clockOffsetMs ?? 0;
    const args = ['serve', '--url', member.url, '--data', member.dataDir, '--cluster', this.urls.join(',')];
    member.expectingExit = true;
    const node = spawnCli([...args, ...this.#settings.args], {
      url: member.url,
      port: member.port,
      dataDir: member.dataDir,
      env: this.#settings.clock.env(clockOffsetMs),
      gid: member.gid,
    });
    member.process = node;
    member.clockOffsetMs = clockOffsetMs;
    if (options.cause !== 'first start')
      this.restarts[options.cause] = (this.restarts[options.cause] ?? 0) + 1;
    try {
      await waitHealthReady(node, READY_TIMEOUT_MS);
    } catch (err) {
      if (node.exit === undefined) await killNode(node);
      await node.closed;
      const reason = err instanceof Error ? err.message : String(err);
      return { ok: false, exit: node.exit, stderr: node.stderr, reason: reason.slice(0, 2000) };
    }
    member.expectingExit = false;
    void node.exited.then((exit) => {
      if (member.expectingExit || member.process !== node) return;
      this.crashes.push({
        node: member.url,
        exit,
        atMs: Date.now(),
        during: this.#settings.phase(),
        logTail: node.stderr.split('\n').slice(-15).join('\n'),
      });
    });
    return { ok: true };
  }

  /** kill -9; resolves once the process is gone. */
  async kill(index: number): Promise<void> {
    const member = this.members[index]!;
    if (member.process === undefined) return;
    member.expectingExit = true;
    await killNode(member.process);
  }

  /** SIGTERM and wait for the exit (12 s, then kill -9 and a rejection). */
  async stop(index: number): Promise<ExitInfo> {
    const member = this.members[index]!;
    if (member.process === undefined) throw new Error(`Node ${member.url} was never started`);
    member.expectingExit = true;
    return stopNode(member.process);
  }

  pause(index: number): void {
    pauseNode(this.members[index]!.process!);
  }

  resume(index: number): void {
    const node = this.members[index]!.process;
    if (node !== undefined) resumeNode(node);
  }

  /** Removes the node's data directory (it must not be running) and leaves it empty. */
  async wipe(index: number): Promise<void> {
    if (this.running(index)) throw new Error(`Node ${this.members[index]!.url} is running`);
    const dir = this.members[index]!.dataDir;
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  }

  /** Stops every node: SIGTERM, kill -9 for any that do not exit in time. */
  async shutdown(): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        if (!this.running(m.index)) return;
        try {
          await this.stop(m.index);
        } catch {
          // stopNode killed it after its timeout.
        }
      }),
    );
  }
}
