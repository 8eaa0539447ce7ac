/**
 * One seeded simulation of a whole ringkv cluster in one process.
 *
 * 3 to 5 nodes (sim-node.ts: the production coordinator, replica, hints and
 * anti-entropy over an LsmEngine on a MemoryVfs, sync on), each with its
 * wall clock skewed by up to ±400 ms (so two differ by under limits.clockSkewMaxMs, 1 s), on
 * a simulated network (sim-network.ts) with seeded delays and losses, all in
 * virtual time (virtual-time.ts). Clients send PUT, GET and DELETE at
 * ack=2 from=3 through random coordinators, while a nemesis cuts the power
 * of nodes (then restarts them on what their file system kept), partitions
 * the network and heals it, and raises the loss rate for a while. Then the
 * network heals, every node comes back, hints are handed off and
 * anti-entropy runs, and the checks:
 *
 *   (a) lost: a quorum read of every key at the end returns what the history
 *       allows (history.ts): its last acknowledged write, or a write
 *       concurrent with it or indeterminate. With sync on, a replica
 *       acknowledges a write only once it is durable, so no crash, of any
 *       number of replicas, may lose an acknowledged write;
 *   (b) stale reads: every quorum read during the run returned what the
 *       history allows (the same rule, for its interval);
 *   (c) converged: every replica of every key, read from its own engine,
 *       holds the same version, kind and value, and no other node holds the
 *       key. The one divergence the design allows (docs/design/anti-entropy.md)
 *       is a replica that lacks a key entirely and comes after every holder
 *       in the key's replica list: anti-entropy cannot tell it from one a
 *       smaller `from` skipped, only a hint repairs it, and the hint is lost
 *       when its coordinator lost power before keeping it (within the request
 *       timeout of the write). Such a gap is counted, not failed, and only
 *       when a write of the key had such a coordinator. Replicas that hold
 *       one version with different values are reported apart
 *       (SimReport.sameVersion).
 *
 * Determinism: the seed decides the cluster (nodes, skews, sizes), the
 * schedule of requests and faults, every message's delay and fate, what each
 * crash keeps, and Math.random; virtual time makes the interleaving the same
 * on every run (virtual-time.ts says what that does and does not cover), and
 * the report's digest, a hash of every outcome, shows it. `npm run sim --
 * --seed S` replays seed S.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Ring } from '../../src/cluster/ring/index.js';
import { limits } from '../../src/config/limits.js';
import { type Entry, EntryKind, seededRandom } from '../../src/storage/index.js';
import { errorMessage, isRingkvError } from '../../src/util/errors.js';
import { silentLog } from '../../src/util/log.js';
import { describeViolation, History, type WriteRecord } from './history.js';
import { SimNetwork } from './sim-network.js';
import { type Exercised, noneExercised, SimNode } from './sim-node.js';
import { VirtualTime } from './virtual-time.js';

export interface SimOptions {
  readonly seed: number;
  /** Default: 3 to 5, from the seed. */
  readonly nodes?: number;
  /** Client requests in all (default 200). */
  readonly ops?: number;
  /** Keys the clients write and read (default 4 to 12, from the seed): fewer, more contention. */
  readonly keys?: number;
  readonly ack?: number;
  readonly from?: number;
  /** Default true. */
  readonly sync?: boolean;
  /** Whether the nemesis cuts the power of nodes (default true). */
  readonly crashes?: boolean;
  /** A broken network that answers replica writes as stored and drops them (the checks must fail). */
  readonly lieAboutWrites?: boolean;
}

export interface SimReport {
  readonly seed: number;
  readonly nodes: number;
  readonly ops: number;
  readonly keys: number;
  readonly writes: number;
  readonly acknowledged: number;
  readonly reads: number;
  readonly crashes: number;
  readonly partitions: number;
  readonly lossBursts: number;
  readonly drops: number;
  /** (a): final reads that returned what the history does not allow. */
  readonly lost: readonly string[];
  /** (b): reads during the run that did. */
  readonly staleReads: readonly string[];
  /** (c): replicas that differ where the design says they converge. */
  readonly divergent: readonly string[];
  /**
   * (c), one kind apart: replicas that hold one version of a key with
   * different values. Two coordinators stamped the same version (hybrid
   * clocks carry no node id) and one write reached some replicas and not
   * others; anti-entropy's value hashes (exchange.ts) must then copy the
   * larger value everywhere. Scripted in same-version.test.ts.
   */
  readonly sameVersion: readonly string[];
  /** (c): replicas missing a key whose hint was lost with its coordinator (allowed, see above). */
  readonly gaps: number;
  /** Anything else that should not happen: a failed restart, an unexpected error. */
  readonly errors: readonly string[];
  /** Production paths the run went through. */
  readonly exercised: Exercised;
  readonly virtualMs: number;
  readonly realMs: number;
  /** A hash of every outcome: equal for equal runs. */
  readonly digest: string;
  /** What happened, one line per request and fault, in virtual time. */
  readonly trace: readonly string[];
}

/** Whether a run broke no check. */
export function passed(report: SimReport): boolean {
  return (
    report.lost.length === 0 &&
    report.staleReads.length === 0 &&
    report.divergent.length === 0 &&
    report.sameVersion.length === 0 &&
    report.errors.length === 0
  );
}

/** The command that replays a run. */
export function replayCommand(report: Pick<SimReport, 'seed' | 'nodes' | 'ops' | 'keys'>): string {
  return `npm run sim -- --seed ${report.seed} --nodes ${report.nodes} --ops ${report.ops} --keys ${report.keys}`;
}

/** One line per seed: what it did and what the checks found. */
export function summaryLine(report: SimReport): string {
  return [
    `seed ${report.seed}:`,
    `nodes=${report.nodes}`,
    `ops=${report.ops}`,
    `keys=${report.keys}`,
    `acked=${report.acknowledged}/${report.writes}`,
    `reads=${report.reads}`,
    `crashes=${report.crashes}`,
    `partitions=${report.partitions}`,
    `loss-bursts=${report.lossBursts}`,
    `drops=${report.drops}`,
    `lost=${report.lost.length}`,
    `stale=${report.staleReads.length}`,
    `converged=${report.divergent.length + report.sameVersion.length === 0 ? 'yes' : 'no'}`,
    `gaps=${report.gaps}`,
    `errors=${report.errors.length}`,
    `(${(report.virtualMs / 1000).toFixed(1)} s simulated in ${(report.realMs / 1000).toFixed(1)} s)`,
  ].join(' ');
}

/** What went wrong, for a failed run: every violation and how to replay it. */
export function failureReport(report: SimReport): string {
  const sections: string[] = [summaryLine(report)];
  const list = (title: string, lines: readonly string[]) => {
    if (lines.length === 0) return;
    sections.push(`${title}:`, ...lines.slice(0, 20).map((l) => `  ${l}`));
    if (lines.length > 20) sections.push(`  ... and ${lines.length - 20} more`);
  };
  list('lost (final reads)', report.lost);
  list('stale reads', report.staleReads);
  list('divergent replicas', report.divergent);
  list('replicas with one version and different values (two coordinators stamped it)', report.sameVersion);
  list('errors', report.errors);
  sections.push(`Replay with: ${replayCommand(report)}`);
  return sections.join('\n');
}

const START_MS = Date.UTC(2026, 0, 1);
/** A run that reaches this much virtual time is stuck (a few hundred requests take seconds). */
const VIRTUAL_LIMIT_MS = 30 * 60 * 1000;
const REPLICATION_FACTOR = 3;
const SAME_VERSION = 'one version with different values';
/** Each node's clock is off by at most this, so any two differ by less than the bound writes are ordered under. */
const CLOCK_OFFSET_MAX_MS = Math.floor(0.4 * limits.clockSkewMaxMs);
/** Anti-entropy rounds of every node at the end, at most, before replicas must have converged. */
const SETTLE_ROUNDS_MAX = 4;

/** Runs one seed; never throws for what the checks find (they are in the report). */
export async function runSimulation(options: SimOptions): Promise<SimReport> {
  const time = new VirtualTime({ startMs: START_MS, seed: options.seed });
  const startedMs = performance.now();
  const run = new _Run(options, time);
  time.install();
  try {
    await time.run(run.main(), START_MS + VIRTUAL_LIMIT_MS);
  } catch (err) {
    run.errors.push(
      `The simulation stopped: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
  } finally {
    time.uninstall();
  }
  return run.report(performance.now() - startedMs);
}

interface _WriteMeta {
  readonly coordinator: string;
  readonly invokeMs: number;
  /** Its coordinator lost power while a replica's failure might still have been on its way to a hint. */
  hintMayBeLost: boolean;
}

class _Run {
  readonly #options: SimOptions;
  readonly #time: VirtualTime;
  readonly #random: () => number;
  readonly #nodeCount: number;
  readonly #ops: number;
  readonly #ack: number;
  readonly #from: number;
  readonly #keys: readonly string[];
  readonly #clients: number;
  readonly #urls: readonly string[];
  readonly #network: SimNetwork;
  readonly #nodes: readonly SimNode[];
  readonly #history = new History();
  readonly #writeMeta = new Map<WriteRecord, _WriteMeta>();
  /** Writes under way per coordinator, abandoned if it loses power. */
  readonly #inFlight = new Map<string, Set<WriteRecord>>();
  readonly #faults: Promise<void>[] = [];
  readonly #digest = createHash('sha256');
  readonly trace: string[] = [];
  readonly lost: string[] = [];
  readonly staleReads: string[] = [];
  readonly divergent: string[] = [];
  readonly sameVersion: string[] = [];
  readonly errors: string[] = [];
  readonly exercised = noneExercised();
  #gaps = 0;
  #issued = 0;
  #crashes = 0;
  #partitions = 0;
  #lossBursts = 0;
  #clientsDone = false;
  #baseLossRate: number;

  constructor(options: SimOptions, time: VirtualTime) {
    this.#options = options;
    this.#time = time;
    const random = seededRandom(options.seed);
    this.#random = random;
    const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
    // Drawn whether given or not, so that giving them (as a replay does) leaves the rest of the run as it was.
    const [nodes, keys] = [between(3, 5), between(4, 12)];
    this.#nodeCount = options.nodes ?? nodes;
    this.#ops = options.ops ?? 200;
    this.#ack = options.ack ?? 2;
    this.#from = options.from ?? REPLICATION_FACTOR;
    this.#keys = Array.from({ length: options.keys ?? keys }, (_, i) => `key-${i}`);
    this.#clients = between(3, 6);
    this.#urls = Array.from({ length: this.#nodeCount }, (_, i) => `http://sim-${i}:7000`);
    this.#baseLossRate = random() * 0.02;
    this.#network = new SimNetwork(this.#urls, {
      random: seededRandom(between(1, 2 ** 31)),
      delayMsMax: between(1, 15),
      lossRate: this.#baseLossRate,
    });
    this.#network.lieAboutWrites = options.lieAboutWrites === true;
    const memtableBytes = 4096 * between(1, 8);
    const antiEntropyIntervalMs = between(1000, 5000);
    const hintHandoffIntervalMs = between(200, 1000);
    this.#nodes = this.#urls.map(
      (url) =>
        new SimNode({
          url,
          cluster: this.#urls,
          clockOffsetMs: between(-CLOCK_OFFSET_MAX_MS, CLOCK_OFFSET_MAX_MS),
          sync: options.sync ?? true,
          memtableBytes,
          antiEntropyIntervalMs,
          hintHandoffIntervalMs,
          network: this.#network,
          log: silentLog,
          exercised: this.exercised,
          onPowerLoss: () => this.#powerLost(url),
        }),
    );
  }

  async main(): Promise<void> {
    for (const node of this.#nodes) await node.start();
    const clients = Array.from({ length: this.#clients }, (_, i) => this.#client(i));
    const nemesis = this.#nemesis();
    await Promise.all(clients);
    this.#clientsDone = true;
    await nemesis;
    await Promise.all(this.#faults);
    await this.#settle();
    await this.#checkConvergence();
    await this.#finalReads();
    for (const node of this.#nodes) node.collect();
  }

  report(realMs: number): SimReport {
    const writes = this.#history.writes;
    return {
      seed: this.#options.seed,
      nodes: this.#nodeCount,
      ops: this.#ops,
      keys: this.#keys.length,
      writes: writes.length,
      acknowledged: writes.filter((w) => w.outcome === 'ok').length,
      reads: this.#history.reads.length,
      crashes: this.#crashes,
      partitions: this.#partitions,
      lossBursts: this.#lossBursts,
      drops: this.#network.counters.dropped,
      lost: this.lost,
      staleReads: this.staleReads,
      divergent: this.divergent,
      sameVersion: this.sameVersion,
      gaps: this.#gaps,
      errors: this.errors,
      exercised: this.exercised,
      virtualMs: this.#time.elapsedMs,
      realMs,
      digest: this.#digest.copy().digest('hex').slice(0, 16),
      trace: this.trace,
    };
  }

  /** A line of the trace, also hashed into the digest. */
  #note(line: string): void {
    const text = `${String(this.#time.elapsedMs).padStart(6)} ms  ${line}`;
    this.trace.push(text);
    this.#digest.update(text);
    this.#digest.update('\n');
  }

  #pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#random() * items.length)]!;
  }

  async #client(client: number): Promise<void> {
    while (this.#issued < this.#ops) {
      const op = this.#issued++;
      await this.#time.sleep(Math.floor(this.#random() * 40));
      const live = this.#nodes.filter((n) => n.state === 'up');
      if (live.length === 0) continue;
      const node = this.#pick(live);
      const key = this.#pick(this.#keys);
      const roll = this.#random();
      // Values up to 3 KiB, so that memtables fill and flush, and tables compact, between crashes.
      const value = `v${op}${'.'.repeat(Math.floor(this.#random() ** 2 * 3000))}`;
      if (roll < 0.4) await this.#get(client, op, node, key);
      else await this.#write(client, op, node, key, roll < 0.85 ? value : undefined);
    }
  }

  async #get(client: number, op: number, node: SimNode, key: string): Promise<void> {
    const invokeSeq = this.#history.tick();
    const life = node.lives;
    const store = node.store!;
    let entry: Entry | undefined;
    try {
      entry = await store.get(Buffer.from(key), { ack: this.#ack, from: this.#from });
    } catch (err) {
      if (node.lives === life && node.state === 'up') this.#unexpected(err, `GET ${key}`);
      this.#note(`c${client} #${op} GET ${key} via ${_short(node.url)}: ${_code(err)}`);
      return;
    }
    // An answer from a coordinator that lost power meanwhile never reached its client.
    if (node.lives !== life || node.state !== 'up') return;
    const value = _valueOf(entry);
    const violation = this.#history.completeRead(key, invokeSeq, value, node.url);
    this.#note(`c${client} #${op} GET ${key} via ${_short(node.url)}: ${_shown(value)}`);
    if (violation !== undefined) this.staleReads.push(describeViolation(violation, _shown));
  }

  async #write(client: number, op: number, node: SimNode, key: string, value: string | undefined) {
    const record = this.#history.invokeWrite(key, value);
    this.#writeMeta.set(record, { coordinator: node.url, invokeMs: this.#time.nowMs, hintMayBeLost: false });
    const inFlight = this.#inFlight.get(node.url) ?? new Set();
    this.#inFlight.set(node.url, inFlight);
    inFlight.add(record);
    const life = node.lives;
    const store = node.store!;
    const what = value === undefined ? `DELETE ${key}` : `PUT ${key}=${_shown(value)}`;
    try {
      if (value === undefined) await store.delete(Buffer.from(key), { ack: this.#ack, from: this.#from });
      else await store.put(Buffer.from(key), Buffer.from(value), { ack: this.#ack, from: this.#from });
      inFlight.delete(record);
      if (node.lives !== life || node.state !== 'up') return;
      this.#history.acknowledge(record);
      this.#note(`c${client} #${op} ${what} via ${_short(node.url)}: ok`);
    } catch (err) {
      inFlight.delete(record);
      if (node.lives !== life || node.state !== 'up') return;
      this.#unexpected(err, what);
      this.#history.abandon(record, 'failed');
      this.#note(`c${client} #${op} ${what} via ${_short(node.url)}: ${_code(err)}`);
    }
  }

  /** A request failing otherwise than 504 on a node that is up: a bug (HTTP would answer 500). */
  #unexpected(err: unknown, what: string): void {
    if (!isRingkvError(err, 'RINGKV_NOT_ENOUGH_REPLICAS')) {
      this.errors.push(`${what} failed unexpectedly: ${errorMessage(err)}`);
    }
  }

  /** Faults, one every 0.1 to 1 s while the clients run; each undoes itself after a while. */
  async #nemesis(): Promise<void> {
    while (!this.#clientsDone) {
      await this.#time.sleep(100 + Math.floor(this.#random() * 900));
      if (this.#clientsDone) return;
      const roll = this.#random();
      if (roll < 0.4 && this.#options.crashes !== false) this.#crashSome();
      else if (roll < 0.7 && !this.#network.partitioned) this.#partitionSome();
      else if (roll < 0.9 && this.#network.lossRate === this.#baseLossRate) this.#lossBurst();
    }
  }

  /**
   * A power loss: at once, or (half the time) armed to come inside one of
   * the node's next 1..25 file operations, or after 500 ms if it makes
   * none; the node restarts after a while.
   */
  #crashSome(): void {
    const live = this.#nodes.filter((n) => n.state === 'up' && !n.armed);
    // At least one node stays up for the clients. Two or more of a key's replicas may be down at once.
    if (live.length <= 1 || this.#nodes.filter((n) => n.state === 'up').length <= 1) return;
    const node = this.#pick(live);
    const downMs = 50 + Math.floor(this.#random() * 1500);
    const [seed, lateSeed] = [Math.floor(this.#random() * 2 ** 31), Math.floor(this.#random() * 2 ** 31)];
    const amid = this.#random() < 0.5 ? 1 + Math.floor(this.#random() * 25) : 0;
    this.#crashes++;
    this.#note(`power loss on ${_short(node.url)} ${amid > 0 ? `at its file operation +${amid}` : 'now'}`);
    const life = node.lives;
    let crashed: Promise<void>;
    if (amid === 0) {
      node.crash(seed);
      crashed = Promise.resolve();
    } else {
      crashed = Promise.race([node.crashAtOperation(amid, seed), this.#time.sleep(500)]).then(() => {
        if (node.lives === life && node.state === 'up') node.crash(lateSeed);
      });
    }
    this.#faults.push(
      crashed.then(async () => {
        this.#note(`${_short(node.url)} is down for ${downMs} ms`);
        await this.#time.sleep(downMs);
        try {
          await node.start();
          this.#note(`${_short(node.url)} restarted (life ${node.lives})`);
        } catch (err) {
          this.errors.push(`${node.url} failed to restart after a power loss: ${errorMessage(err)}`);
        }
      }),
    );
  }

  /** The power went at `node`: its writes under way are indeterminate, hints it had yet to keep are lost. */
  #powerLost(url: string): void {
    for (const write of this.#inFlight.get(url) ?? []) this.#history.abandon(write, 'lost-coordinator');
    this.#inFlight.delete(url);
    const windowMs = limits.requestTimeoutMs + 100;
    for (const meta of this.#writeMeta.values()) {
      if (meta.coordinator === url && this.#time.nowMs - meta.invokeMs <= windowMs) meta.hintMayBeLost = true;
    }
  }

  #partitionSome(): void {
    const side = this.#urls.filter(() => this.#random() < 0.5);
    if (side.length === 0 || side.length === this.#urls.length) return;
    const other = this.#urls.filter((url) => !side.includes(url));
    const lastsMs = 100 + Math.floor(this.#random() * 2500);
    const noticedMs = Math.floor(this.#random() * lastsMs);
    this.#partitions++;
    this.#note(`partition ${side.map(_short).join(',')} | ${other.map(_short).join(',')} for ${lastsMs} ms`);
    this.#network.partition([side, other]);
    this.#faults.push(
      this.#time.sleep(noticedMs).then(async () => {
        this.#network.detectPartition();
        await this.#time.sleep(lastsMs - noticedMs);
        this.#network.heal();
        this.#note('partition healed');
      }),
    );
  }

  #lossBurst(): void {
    const rate = 0.1 + this.#random() * 0.3;
    const lastsMs = 100 + Math.floor(this.#random() * 900);
    this.#lossBursts++;
    this.#note(`loss rate ${rate.toFixed(2)} for ${lastsMs} ms`);
    this.#network.lossRate = rate;
    this.#faults.push(
      this.#time.sleep(lastsMs).then(() => {
        this.#network.lossRate = this.#baseLossRate;
      }),
    );
  }

  /** Heals the network, lets hints go and runs anti-entropy rounds until the replicas agree. */
  async #settle(): Promise<void> {
    this.#network.heal();
    this.#network.lossRate = 0;
    this.#note('settling: network healed, no losses');
    await this.#time.sleep(3000);
    for (let round = 1; round <= SETTLE_ROUNDS_MAX; round++) {
      for (const node of this.#nodes) await node.parts?.antiEntropy.runOnce();
      await this.#time.sleep(500);
      if ((await this.#divergence()).length === 0) return;
    }
  }

  /** (c): every replica of every key holds the same entry, and no other node holds it. */
  async #checkConvergence(): Promise<void> {
    for (const line of await this.#divergence()) {
      if (line.startsWith('gap ')) this.#gaps++;
      else if (line.includes(SAME_VERSION)) this.sameVersion.push(line);
      else this.divergent.push(line);
    }
    const converged = this.divergent.length + this.sameVersion.length === 0;
    this.#note(`converged: ${converged ? 'yes' : 'no'}, gaps: ${this.#gaps}`);
  }

  /** The replicas that differ; lines starting with "gap " are the allowed kind (module comment). */
  async #divergence(): Promise<string[]> {
    const ring = new Ring(this.#urls);
    const found: string[] = [];
    for (const key of this.#history.keys()) {
      const replicas = ring.replicas(Buffer.from(key), REPLICATION_FACTOR);
      const held: (string | undefined)[] = [];
      for (const url of this.#urls) {
        const engine = this.#nodes[this.#urls.indexOf(url)]!.engine;
        if (engine === undefined) {
          found.push(`${key}: ${_short(url)} is down at the end`);
          continue;
        }
        const state = _stateOf(await engine.get(Buffer.from(key)));
        this.#digest.update(`${key} ${url} ${state}\n`);
        if (replicas.includes(url)) held[replicas.indexOf(url)] = state;
        else if (state !== undefined) found.push(`${key}: ${_short(url)}, not a replica, holds ${state}`);
      }
      const holders = held.flatMap((state, i) => (state === undefined ? [] : [i]));
      if (holders.length === 0) continue;
      const states = new Set(holders.map((i) => held[i]));
      if (states.size > 1) {
        const versions = new Set([...states].map((state) => state!.split(':')[0]));
        const what = versions.size === 1 ? SAME_VERSION : 'different versions';
        found.push(`${key}: ${what}: ${replicas.map((u, i) => `${_short(u)}=${held[i] ?? '-'}`).join(' ')}`);
        continue;
      }
      const lastHolder = Math.max(...holders);
      for (let i = 0; i < replicas.length; i++) {
        if (held[i] !== undefined) continue;
        const excused =
          i > lastHolder &&
          this.#history.writesOf(key).some((w) => this.#writeMeta.get(w)?.hintMayBeLost === true);
        found.push(
          `${excused ? 'gap ' : ''}${key}: ${_short(replicas[i]!)} lacks it (${replicas.map((u, j) => `${_short(u)}=${held[j] ?? '-'}`).join(' ')})`,
        );
      }
    }
    return found;
  }

  /** (a): a quorum read of every key through a random node returns what the history allows. */
  async #finalReads(): Promise<void> {
    for (const key of this.#history.keys()) {
      const node = this.#pick(this.#nodes.filter((n) => n.state === 'up'));
      const invokeSeq = this.#history.tick();
      let value: string | undefined;
      try {
        value = _valueOf(await node.store!.get(Buffer.from(key), { ack: this.#ack, from: this.#from }));
      } catch (err) {
        this.errors.push(`Final read of ${key} through ${node.url} failed: ${errorMessage(err)}`);
        continue;
      }
      this.#note(`final GET ${key} via ${_short(node.url)}: ${_shown(value)}`);
      const violation = this.#history.completeRead(key, invokeSeq, value, node.url);
      if (violation !== undefined) this.lost.push(describeViolation(violation, _shown));
    }
  }
}

function _valueOf(entry: Entry | undefined): string | undefined {
  return entry === undefined || entry.kind !== EntryKind.Value ? undefined : entry.value.toString();
}

/** A value as the trace and the reports show it: `v<op>` and its padding's length. */
function _shown(value: string | undefined): string {
  if (value === undefined) return '404';
  const padding = value.length - value.replace(/\.+$/, '').length;
  return padding === 0 ? value : `${value.slice(0, value.length - padding)}+${padding}`;
}

/** An entry as the convergence check compares it: version, kind and value. */
function _stateOf(entry: Entry | undefined): string | undefined {
  if (entry === undefined) return undefined;
  return `${entry.version}:${entry.kind === EntryKind.Value ? _shown(entry.value.toString()) : 'deleted'}`;
}

function _short(url: string): string {
  return url.replace(/^http:\/\/sim-(\d+):\d+$/, 'n$1');
}

function _code(err: unknown): string {
  return isRingkvError(err) ? err.code : errorMessage(err);
}
