/**
 * One node of the cluster simulation: the production parts (node/cluster-parts.ts:
 * ClusterStore, Replica, HintStore and its handoff, AntiEntropy and its
 * responder) over an LsmEngine, all on the node's own MemoryVfs, with a
 * HybridClock whose wall clock is the virtual time plus the node's skew, and
 * a SimLinks transport on the simulated network. start() follows Node.start's
 * order without the HTTP server: recover the engine, build the parts, start
 * the hint handoff and anti-entropy loops, then connect to the peers.
 *
 * crash() is a power loss, now or (crashAtOperation) amid a file operation:
 * the MemoryVfs keeps what a crash may leave (its old instance fails every
 * call from then on), the network forgets the node, and the old parts are
 * stopped without waiting, since a dead process runs nothing more. start()
 * again recovers from what survived.
 */
import { claimTree, treeFileIn } from '../../src/cluster/antientropy/index.js';
import { HybridClock } from '../../src/cluster/clock.js';
import type { ClusterStore } from '../../src/cluster/replication/index.js';
import { serveOptions } from '../../src/config/options.js';
import { type ClusterParts, clusterParts } from '../../src/node/cluster-parts.js';
import { type Engine, MemoryVfs, openEngine, seededRandom } from '../../src/storage/index.js';
import type { Log } from '../../src/util/log.js';
import type { SimNetwork } from './sim-network.js';

export interface SimNodeSettings {
  readonly url: string;
  readonly cluster: readonly string[];
  /** Added to the virtual time for this node's wall clock. */
  readonly clockOffsetMs: number;
  readonly sync: boolean;
  readonly memtableBytes: number;
  readonly antiEntropyIntervalMs: number;
  readonly hintHandoffIntervalMs: number;
  readonly network: SimNetwork;
  readonly log: Log;
  /** Where the node adds up what it went through, at each crash and at collect(). */
  readonly exercised: Exercised;
  /** Called as the power goes, before anything else hears of it. */
  readonly onPowerLoss?: () => void;
}

/** Production paths a run went through, summed over every node and life: what the simulation exercised. */
export interface Exercised {
  flushes: number;
  compactions: number;
  /** Logs whose torn last record recovery cut off after a power loss (WAL and hint files). */
  tornTails: number;
  hintsDelivered: number;
  antiEntropyRepairs: number;
  readRepairs: number;
  /** Writes re-stamped after a replica answered a conflict (ordering under clock skew). */
  conflictRetries: number;
}

export function noneExercised(): Exercised {
  return {
    flushes: 0,
    compactions: 0,
    tornTails: 0,
    hintsDelivered: 0,
    antiEntropyRepairs: 0,
    readRepairs: 0,
    conflictRetries: 0,
  };
}

/** What one life of a node holds, from start() to its crash. */
interface _Life {
  readonly engine: Engine;
  readonly parts: ClusterParts;
}

const DATA_DIR = '/data';

export class SimNode {
  readonly url: string;
  readonly #settings: SimNodeSettings;
  #vfs = new MemoryVfs();
  #life: _Life | undefined;
  #state: 'down' | 'starting' | 'up' = 'down';
  #armed = false;
  /** Lives begun: 1 after the first start. */
  lives = 0;

  constructor(settings: SimNodeSettings) {
    this.url = settings.url;
    this.#settings = settings;
  }

  get state(): 'down' | 'starting' | 'up' {
    return this.#state;
  }

  /** The coordinator of this life; undefined unless up. */
  get store(): ClusterStore | undefined {
    return this.#state === 'up' ? this.#life?.parts.store : undefined;
  }

  get parts(): ClusterParts | undefined {
    return this.#state === 'up' ? this.#life?.parts : undefined;
  }

  /** The local engine, read directly (no coordinator) by the convergence check. */
  get engine(): Engine | undefined {
    return this.#state === 'up' ? this.#life?.engine : undefined;
  }

  /** Recovers the engine and the hints from the vfs and joins the network. */
  async start(): Promise<void> {
    if (this.#state !== 'down') throw new Error(`${this.url} is ${this.#state}, cannot start`);
    this.#state = 'starting';
    this.lives++;
    const s = this.#settings;
    const vfs = this.#vfs;
    const options = serveOptions({
      url: s.url,
      data: DATA_DIR,
      cluster: s.cluster.join(','),
      sync: s.sync ? 'on' : 'off',
      'anti-entropy-interval': String(s.antiEntropyIntervalMs),
      'memtable-bytes': String(s.memtableBytes),
      'block-cache-bytes': String(256 * 1024),
    });
    // As Node.start does: the anti-entropy tree file is claimed before the store opens.
    const treeFile = await claimTree(treeFileIn(options.dataDir, vfs));
    const engine = await openEngine({
      dir: options.dataDir,
      sync: options.sync,
      memtableBytesMax: options.memtableBytesMax,
      blockCacheBytes: options.blockCacheBytes,
      vfs,
      log: (line) => {
        if (/torn/.test(line)) s.exercised.tornTails++;
        s.log.info('engine', line);
      },
    });
    const clock = new HybridClock({ wallMs: () => Date.now() + s.clockOffsetMs });
    const parts = await clusterParts(options, {
      engine,
      clock,
      log: {
        ...s.log,
        info: (event, msg, fields) => {
          if (event === 'hints' && /torn/.test(msg)) s.exercised.tornTails++;
          s.log.info(event, msg, fields);
        },
      },
      transportKind: 'frame',
      hintHandoffIntervalMs: s.hintHandoffIntervalMs,
      vfs,
      createTransport: (settings) => s.network.linksFor(s.url, settings),
      treeFile,
    });
    this.#life = { engine, parts };
    this.#state = 'up';
    parts.handoff.start();
    parts.antiEntropy.start();
    s.network.up(s.url, parts.store.replica);
    await parts.transport.connect(s.cluster.filter((url) => url !== s.url));
  }

  /** Whether a power loss is armed (crashAtOperation) and has not come yet. */
  get armed(): boolean {
    return this.#armed;
  }

  /** Power loss now; `seed` decides what the file system keeps of what was not synced. */
  crash(seed: number): void {
    if (this.#state !== 'up') throw new Error(`${this.url} is ${this.#state}, cannot crash`);
    this.#powerOff(this.#vfs.crash(seededRandom(seed)));
  }

  /**
   * Power loss at the `operation`-th state-changing file call from now
   * (before it, or while it is under way): inside a WAL append, between a
   * write and its sync, amid a flush, a compaction or a hint append.
   * Resolves once it came; never, if crash() came first.
   */
  async crashAtOperation(operation: number, seed: number): Promise<void> {
    if (this.#state !== 'up') throw new Error(`${this.url} is ${this.#state}, cannot crash`);
    const vfs = this.#vfs;
    this.#armed = true;
    // Awaited directly, so that the node is down before the failed call's callers hear of it.
    const after = await vfs.crashAtOperation(vfs.operations + operation, seededRandom(seed));
    if (this.#vfs === vfs) this.#powerOff(after);
  }

  #powerOff(after: MemoryVfs): void {
    const life = this.#life!;
    this.#life = undefined;
    this.#state = 'down';
    this.#armed = false;
    this.#vfs = after;
    this.#settings.network.down(this.url);
    this.#settings.onPowerLoss?.();
    this.#addUp(life);
    // What the dead process would never do again: its loops, timers and calls in flight end here.
    const ignore = (): undefined => undefined;
    void life.parts.handoff.stop().catch(ignore);
    void life.parts.antiEntropy.stop().catch(ignore);
    void life.parts.hints.close().catch(ignore);
    void life.parts.store.close().catch(ignore);
  }

  /** Adds what the current life went through to the settings' Exercised (once, at the end of a run). */
  collect(): void {
    if (this.#life !== undefined) this.#addUp(this.#life);
  }

  #addUp(life: _Life): void {
    const into = this.#settings.exercised;
    const engine = life.engine.stats();
    const coordinator = life.parts.store.status().coordinator as {
      readRepairs: number;
      conflictRetries: number;
    };
    const antiEntropy = life.parts.antiEntropy.stats();
    into.flushes += engine.flushes;
    into.compactions += engine.compactions;
    into.hintsDelivered += life.parts.handoff.stats().delivered;
    into.antiEntropyRepairs += antiEntropy.pulled + antiEntropy.pushed;
    into.readRepairs += coordinator.readRepairs;
    into.conflictRetries += coordinator.conflictRetries;
  }
}
