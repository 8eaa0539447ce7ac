/**
 * The abuses, one at a time, each followed by heal(): a node killed with
 * SIGKILL, stopped with SIGTERM, frozen with SIGSTOP, its files damaged
 * while it is down, bad input sent to it, its links to the peers cut
 * (iptables), or its clock shifted (libfaketime), within the cluster's skew
 * bound or, once, beyond it. What each found goes into RunStats; anything
 * the design says must not happen goes into `findings` as well.
 */
import { basename } from 'node:path';
import { rangeEntries } from '../support/cluster.js';
import { sleep } from '../support/node-process.js';
import { badInputProbes, type Probe, type ProbeClass, sendProbe } from './bad-input.js';
import type { ClockShifter } from './clock.js';
import type { TortureCluster } from './cluster.js';
import { applyDamage, type Damage, pickTableDamage, pickWalDamage } from './damage.js';
import type { History } from './history.js';
import type { NetCut } from './netcut.js';
import type { Random } from './random.js';
import { healthy, nodeView, waitAllUp } from './status.js';

export type AbuseName =
  | 'kill -9'
  | 'SIGTERM restart'
  | 'SIGSTOP'
  | 'damaged WAL'
  | 'damaged SSTable'
  | 'bad input'
  | 'partition'
  | 'clock skew'
  | 'clock skew beyond the bound';

/** A span in which a node ran on an emptied data directory, until anti-entropy had rebuilt it. */
export interface WipeWindow {
  readonly node: string;
  readonly startMs: number;
  endMs: number | undefined;
}

export interface RunStats {
  readonly abuses: Partial<Record<AbuseName, number>>;
  readonly corruption: {
    injected: number;
    refusedStart: number;
    /** Refusals whose message did not name the damaged file. */
    refusedUnnamed: number;
    detectedAtRead: number;
    undetected: number;
    readonly details: string[];
  };
  readonly probes: {
    sent: number;
    crashed: number;
    readonly byClass: Partial<Record<ProbeClass, number>>;
    /** Probes answered 2xx or 5xx: not failures, but worth a look. */
    readonly notable: string[];
    /** Every probe sent: its name, the node and what came back. */
    readonly outcomes: string[];
    readonly crashes: string[];
  };
  readonly skew: string[];
  readonly wipes: WipeWindow[];
  /** Broken promises of the design, each a line for the card. */
  readonly findings: string[];
  readonly timeline: string[];
}

export function newStats(): RunStats {
  return {
    abuses: {},
    corruption: {
      injected: 0,
      refusedStart: 0,
      refusedUnnamed: 0,
      detectedAtRead: 0,
      undetected: 0,
      details: [],
    },
    probes: { sent: 0, crashed: 0, byClass: {}, notable: [], outcomes: [], crashes: [] },
    skew: [],
    wipes: [],
    findings: [],
    timeline: [],
  };
}

export interface AbuseContext {
  readonly cluster: TortureCluster;
  readonly random: Random;
  readonly netcut: NetCut;
  readonly clock: ClockShifter;
  readonly history: History;
  readonly stats: RunStats;
  /** The cluster's --max-clock-skew, ms. */
  readonly skewBoundMs: number;
  setPhase(phase: string): void;
  /** A line of the timeline (stamped with the run's elapsed time). */
  note(line: string): void;
}

/** Nodes apart from their peers' view: a down node must be seen up again within this. */
const PEERS_UP_TIMEOUT_MS = 20_000;
/** How long a wiped node may take to pull its keys back before the run goes on. */
const REBUILD_TIMEOUT_MS = 45_000;
/** Probes sent per bad-input round; the order is shuffled once and cycled through. */
const PROBES_PER_ROUND = 25;

export class Abuses {
  readonly #ctx: AbuseContext;
  readonly #probes: Probe[];
  #nextProbe = 0;
  #beyondDone = false;

  constructor(ctx: AbuseContext) {
    this.#ctx = ctx;
    this.#probes = shuffle(badInputProbes(ctx.random), ctx.random);
  }

  /** The abuses this machine allows, and why the others are skipped. */
  available(): { names: AbuseName[]; skipped: string[] } {
    const names: AbuseName[] = [
      'kill -9',
      'SIGTERM restart',
      'SIGSTOP',
      'damaged WAL',
      'damaged SSTable',
      'bad input',
    ];
    const skipped: string[] = [];
    if (this.#ctx.netcut.unavailable === undefined) names.push('partition');
    else skipped.push(`partition: ${this.#ctx.netcut.unavailable}`);
    if (this.#ctx.clock.unavailable === undefined) names.push('clock skew', 'clock skew beyond the bound');
    else skipped.push(`clock skew (within and beyond the bound): ${this.#ctx.clock.unavailable}`);
    return { names, skipped };
  }

  /** Probes not sent yet in this run. */
  get probesLeft(): number {
    return Math.max(0, this.#probes.length - this.#nextProbe);
  }

  get beyondDone(): boolean {
    return this.#beyondDone;
  }

  async run(name: AbuseName): Promise<void> {
    const { stats, random, cluster } = this.#ctx;
    stats.abuses[name] = (stats.abuses[name] ?? 0) + 1;
    const target = random.int(0, cluster.members.length - 1);
    switch (name) {
      case 'kill -9':
        return this.#kill(target);
      case 'SIGTERM restart':
        return this.#terminate(target);
      case 'SIGSTOP':
        return this.#freeze(target);
      case 'damaged WAL':
        return this.#damage(target, 'wal');
      case 'damaged SSTable':
        return this.#damage(target, 'sst');
      case 'bad input':
        return this.sendProbes(target, PROBES_PER_ROUND);
      case 'partition':
        return this.#partition(target);
      case 'clock skew':
        return this.#skew(target, false);
      case 'clock skew beyond the bound':
        this.#beyondDone = true;
        return this.#skew(target, true);
    }
  }

  /** Starts any node that is down, continues any paused one, removes every cut; waits for the peers to see each other. */
  async heal(): Promise<void> {
    const { cluster, netcut } = this.#ctx;
    netcut.heal();
    for (const member of cluster.members) {
      cluster.resume(member.index);
      if (!cluster.running(member.index)) await this.#start(member.index, 'heal');
    }
    if (!(await waitAllUp(cluster.urls, PEERS_UP_TIMEOUT_MS))) {
      this.#finding(
        `Nodes did not all see each other up within ${PEERS_UP_TIMEOUT_MS / 1000} s after healing`,
      );
    }
  }

  async #kill(index: number): Promise<void> {
    const { cluster, random } = this.#ctx;
    const url = cluster.members[index]!.url;
    this.#ctx.setPhase(`kill -9 ${url}`);
    await cluster.kill(index);
    const downMs = random.int(200, 3000);
    await sleep(downMs);
    const startedAt = Date.now();
    await this.#start(index, 'kill -9');
    this.#ctx.note(`kill -9 ${url}, down ${downMs} ms, ready again in ${Date.now() - startedAt} ms`);
  }

  async #terminate(index: number): Promise<void> {
    const { cluster, random } = this.#ctx;
    const url = cluster.members[index]!.url;
    this.#ctx.setPhase(`SIGTERM ${url}`);
    const exit = await this.#stop(index);
    const downMs = random.int(0, 1500);
    await sleep(downMs);
    await this.#start(index, 'SIGTERM');
    this.#ctx.note(`SIGTERM ${url}: exit ${exit}, down ${downMs} ms, restarted`);
  }

  async #freeze(index: number): Promise<void> {
    const { cluster, random } = this.#ctx;
    const url = cluster.members[index]!.url;
    const frozenMs = random.int(2000, 6000);
    this.#ctx.setPhase(`SIGSTOP ${url}`);
    cluster.pause(index);
    try {
      await sleep(frozenMs);
    } finally {
      cluster.resume(index);
    }
    const alive = await healthy(url, 5000);
    if (!alive) this.#finding(`${url} did not answer /v0/health within 5 s of SIGCONT`);
    this.#ctx.note(`SIGSTOP ${url} for ${frozenMs} ms, then SIGCONT: ${alive ? 'answers' : 'NOT answering'}`);
  }

  /**
   * Stops the node (SIGTERM or kill -9), flips a byte in a WAL record or an
   * SSTable, starts it. A refused start must name the file; then the data
   * directory is wiped and the node rebuilt by its peers. A start that
   * succeeds must find the damage when the bytes are read (a full local
   * scan: 503 or a cut stream, and the file in the log) and must never
   * serve a value nobody wrote.
   */
  async #damage(index: number, kind: 'wal' | 'sst'): Promise<void> {
    const { cluster, random, stats } = this.#ctx;
    const member = cluster.members[index]!;
    const how = random.chance(0.5) ? 'SIGTERM' : 'kill -9';
    this.#ctx.setPhase(`damaged ${kind === 'wal' ? 'WAL' : 'SSTable'} on ${member.url}`);
    if (how === 'SIGTERM') await this.#stop(index);
    else await cluster.kill(index);
    const damage =
      kind === 'wal'
        ? await pickWalDamage(member.dataDir, random)
        : await pickTableDamage(member.dataDir, random);
    if (damage === undefined) {
      this.#ctx.note(
        `damage on ${member.url} (${how}): no ${kind === 'wal' ? 'WAL record' : 'SSTable'} to damage`,
      );
      await this.#start(index, how);
      return;
    }
    await applyDamage(damage);
    stats.corruption.injected++;
    const where = `${damage.what} at offset ${damage.offset}, after ${how}`;
    const started = await cluster.launch(index, { cause: `${how} + damage` });
    if (!started.ok) {
      const named = started.stderr.includes(damage.file) || started.stderr.includes(basename(damage.file));
      stats.corruption.refusedStart++;
      if (!named) {
        stats.corruption.refusedUnnamed++;
        this.#finding(`Start refused without naming ${damage.file}: ${lastLine(started.stderr)}`);
      }
      stats.corruption.details.push(
        `${where}: start refused${named ? ', file named' : ''}: ${lastLine(started.stderr)}`,
      );
      this.#ctx.note(
        `damaged ${where} on ${member.url}: start refused (${named ? 'names the file' : 'file NOT named'}); wiped, rebuilding`,
      );
      await this.#rebuildWiped(index);
      return;
    }
    await this.#checkDamageAtRead(index, damage, where);
  }

  async #checkDamageAtRead(index: number, damage: Damage, where: string): Promise<void> {
    const { cluster, stats } = this.#ctx;
    const member = cluster.members[index]!;
    // Let the load and read repair touch the node for a moment, then read every byte it holds.
    await sleep(1000);
    const scan = await this.#scanLocal(index);
    const named = (member.process?.stderr ?? '')
      .split('\n')
      .some((line) => /corrupt/i.test(line) && line.includes(basename(damage.file)));
    const view = await nodeView(member.url);
    const counted =
      (view?.corruption ?? 0) + (view?.flushFailures ?? 0) + (view?.compactionFailures ?? 0) > 0;
    const detected = !scan.complete || named || counted;
    if (damage.what.startsWith('WAL')) {
      this.#finding(`${where} on ${member.url}: the node started (a damaged WAL record must stop the start)`);
    }
    if (detected) {
      stats.corruption.detectedAtRead++;
      stats.corruption.details.push(
        `${where}: started, found at read time (${scan.complete ? 'scan complete' : `scan cut: ${scan.error}`}${named ? ', file named in the log' : ''}${counted ? ', counted in /v0/status' : ''})`,
      );
      this.#ctx.note(`damaged ${where} on ${member.url}: started; found when read; wiped, rebuilding`);
      await this.#stop(index);
      await this.#rebuildWiped(index);
    } else {
      stats.corruption.undetected++;
      stats.corruption.details.push(
        `${where}: started, a full scan read ${scan.entries} entries and no damage`,
      );
      this.#ctx.note(
        `damaged ${where} on ${member.url}: started, nothing found by a full scan (left in place)`,
      );
    }
  }

  /** Reads the node's whole local store; every load value it serves must be one that was written. */
  async #scanLocal(index: number): Promise<{ complete: boolean; entries: number; error: string }> {
    const { cluster, history } = this.#ctx;
    const member = cluster.members[index]!;
    try {
      const { status, entries } = await rangeEntries(member.port, '/v0/entities?start=%00');
      for (const [key, value] of entries) {
        if (key.startsWith('load-') && !history.wasWritten(key, value)) {
          this.#finding(`${member.url} served ${JSON.stringify(value)} for ${key}, which nobody wrote`);
        }
      }
      return {
        complete: status === 200,
        entries: entries.length,
        error: status === 200 ? '' : `status ${status}`,
      };
    } catch (err) {
      return { complete: false, entries: 0, error: err instanceof Error ? err.message : String(err) };
    }
  }

  /** Wipes the (stopped) node's data directory, starts it, and waits for anti-entropy to bring its keys back. */
  async #rebuildWiped(index: number): Promise<void> {
    const { cluster, stats } = this.#ctx;
    const member = cluster.members[index]!;
    await cluster.wipe(index);
    const window: WipeWindow = { node: member.url, startMs: Date.now(), endMs: undefined };
    stats.wipes.push(window);
    const started = await cluster.launch(index, { cause: 'wiped' });
    if (!started.ok) {
      this.#finding(
        `${member.url} did not start on an empty data directory: ${lastLine(started.stderr) || started.reason}`,
      );
      throw new Error(`${member.url} cannot start even on an empty data directory; the run cannot go on`);
    }
    const rebuilt = await this.#waitRebuilt(member.url);
    window.endMs = Date.now();
    this.#ctx.note(
      `${member.url} ${rebuilt ? 'rebuilt' : 'NOT rebuilt'} by anti-entropy in ${window.endMs - window.startMs} ms`,
    );
  }

  /** Two anti-entropy rounds on the node in a row that pulled nothing new (bounded). */
  async #waitRebuilt(url: string): Promise<boolean> {
    const deadline = Date.now() + REBUILD_TIMEOUT_MS;
    let last: { rounds: number; pulled: number } | undefined;
    let quietRounds = 0;
    for (let attempt = 0; Date.now() < deadline && attempt < 1000; attempt++) {
      const view = await nodeView(url);
      if (view !== undefined) {
        const now = { rounds: view.antiEntropy.rounds, pulled: view.antiEntropy.pulled };
        if (last !== undefined && now.rounds > last.rounds) {
          quietRounds = now.pulled === last.pulled && now.rounds >= 2 ? quietRounds + 1 : 0;
          if (quietRounds >= 2) return true;
        }
        if (last === undefined || now.rounds > last.rounds) last = now;
      }
      await sleep(250);
    }
    return false;
  }

  /** Sends the next `count` probes to one node; after each, the node must still be alive and answer. */
  async sendProbes(index: number, count: number): Promise<void> {
    const { cluster, stats } = this.#ctx;
    const member = cluster.members[index]!;
    this.#ctx.setPhase(`bad input to ${member.url}`);
    const classes: Partial<Record<ProbeClass, number>> = {};
    let sent = 0;
    for (let i = 0; i < count && i < this.#probes.length; i++) {
      const probe = this.#probes[this.#nextProbe % this.#probes.length]!;
      this.#nextProbe++;
      const outcome = await sendProbe(member.port, probe);
      sent++;
      stats.probes.sent++;
      stats.probes.byClass[outcome.class] = (stats.probes.byClass[outcome.class] ?? 0) + 1;
      classes[outcome.class] = (classes[outcome.class] ?? 0) + 1;
      stats.probes.outcomes.push(`${probe.name} -> ${member.url}: ${outcome.class} (${outcome.detail})`);
      if (outcome.class === 'accepted' || outcome.class === 'server-error') {
        stats.probes.notable.push(`${probe.name}: ${outcome.detail}`);
      }
      const alive = member.process?.exit === undefined && (await healthy(member.url, 3000));
      if (!alive) {
        stats.probes.crashed++;
        const exit = member.process?.exit;
        const line = `${probe.name} -> ${member.url} ${exit === undefined ? 'stopped answering' : `exited ${JSON.stringify(exit)}`}: ${lastLine(member.process?.stderr ?? '')}`;
        stats.probes.crashes.push(line);
        this.#finding(`Bad input crashed a node: ${line}`);
        if (exit === undefined) await cluster.kill(index);
        await this.#start(index, 'crash');
      }
    }
    this.#ctx.note(`bad input to ${member.url}: ${sent} probes, ${JSON.stringify(classes)}`);
  }

  async #partition(index: number): Promise<void> {
    const { cluster, netcut, random } = this.#ctx;
    const target = cluster.members[index]!;
    const peers = cluster.members.filter((m) => m.index !== index);
    const cutMs = random.int(2000, 6000);
    this.#ctx.setPhase(`partition ${target.url}`);
    try {
      netcut.cut(target, peers);
      await sleep(cutMs);
    } finally {
      netcut.heal();
    }
    this.#ctx.note(
      `partition: ${target.url} cut off from its peers for ${cutMs} ms (clients still reach it)`,
    );
  }

  /**
   * Restarts a node with its clock shifted: within the bound (200-700 ms
   * either way), or beyond it (three times the bound), where the design
   * has each peer log the skew and show it in /v0/status. Then restarts it on
   * the true time.
   */
  async #skew(index: number, beyond: boolean): Promise<void> {
    const { cluster, random, skewBoundMs, stats } = this.#ctx;
    const member = cluster.members[index]!;
    const sign = random.chance(0.5) ? 1 : -1;
    const offsetMs = sign * (beyond ? 3 * skewBoundMs : random.int(200, 700));
    const label = `clock ${offsetMs > 0 ? '+' : ''}${offsetMs} ms on ${member.url}`;
    this.#ctx.setPhase(label);
    await this.#stop(index);
    await this.#start(index, 'clock shift', offsetMs);
    const heldMs = random.int(4000, 8000);
    await sleep(heldMs);
    const peers = cluster.members.filter((m) => m.index !== index);
    const seen: string[] = [];
    let beyondSeen = 0;
    let logged = 0;
    for (const peer of peers) {
      const view = await nodeView(peer.url);
      const skew = view?.skewMs[member.url];
      seen.push(`${peer.url} measures ${skew === undefined ? '?' : `${skew} ms`}`);
      if (view?.beyondBound.includes(member.url)) beyondSeen++;
      if (loggedSkew(peer.process?.stderr ?? '', member.url)) logged++;
    }
    const verdict = beyond
      ? `beyond the bound: ${beyondSeen} of ${peers.length} peers list it in beyondBound, ${logged} logged clock.skew`
      : `within the bound: ${beyondSeen} peers call it beyond (expected 0)`;
    if (beyond && (beyondSeen < peers.length || logged < peers.length)) {
      this.#finding(`${label}: not every peer reported the skew beyond the bound (${verdict})`);
    }
    if (!beyond && beyondSeen > 0)
      this.#finding(`${label}: a peer reported a skew within the bound as beyond it`);
    stats.skew.push(`${label} for ${heldMs} ms: ${seen.join(', ')}; ${verdict}`);
    await this.#stop(index);
    await this.#start(index, 'clock shift');
    this.#ctx.note(`${label} for ${heldMs} ms (${verdict}), then back on the true time`);
  }

  /** SIGTERM; an exit other than 0 is a finding. Returns the exit for the timeline. */
  async #stop(index: number): Promise<string> {
    const { cluster } = this.#ctx;
    const url = cluster.members[index]!.url;
    try {
      const exit = await cluster.stop(index);
      if (exit.code !== 0) this.#finding(`${url} exited ${JSON.stringify(exit)} after SIGTERM (expected 0)`);
      return exit.code === null ? String(exit.signal) : String(exit.code);
    } catch (err) {
      this.#finding(`${url}: ${err instanceof Error ? err.message : String(err)}`);
      return 'killed after the timeout';
    }
  }

  /** Starts a node that must start; if it refuses, that is a finding, and it is wiped and rebuilt. */
  async #start(index: number, cause: string, clockOffsetMs = 0): Promise<void> {
    const { cluster } = this.#ctx;
    const started = await cluster.launch(index, { cause, clockOffsetMs });
    if (started.ok) return;
    const url = cluster.members[index]!.url;
    this.#finding(`${url} did not start after ${cause}: ${lastLine(started.stderr) || started.reason}`);
    await this.#rebuildWiped(index);
  }

  #finding(line: string): void {
    this.#ctx.stats.findings.push(line);
    this.#ctx.note(`FINDING: ${line}`);
  }
}

/** Whether a node's log has a clock.skew record about `peer` passing the bound. */
function loggedSkew(log: string, peer: string): boolean {
  return log
    .split('\n')
    .some((line) => line.includes('"clock.skew"') && line.includes(peer) && line.includes('beyond'));
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').slice(0, 400);
}

function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
