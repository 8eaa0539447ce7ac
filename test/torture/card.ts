/**
 * The report card: one screen that says what the run did and whether the
 * cluster kept its promises, printed at the end and written, with the
 * timeline and every detail, to bench/results/<stamp>-torture.md (and the
 * figures to .json), like the benchmarks' results.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { RunStats, WipeWindow } from './abuses.js';
import type { Crash } from './cluster.js';
import type { BadRead, Totals, WriteRecord } from './history.js';
import type { TortureOptions } from './options.js';
import type { Convergence, FinalCheck, ReplicaAgreement } from './verify.js';

export interface CardData {
  readonly options: TortureOptions;
  readonly startedAt: Date;
  readonly settings: string;
  readonly durationsMs: { total: number; abuse: number; convergence: number; check: number };
  readonly totals: Totals;
  readonly failovers: Record<string, number>;
  /** The load client's own summary: answers, failovers and failures per phase (summarize()). */
  readonly loadPhases: string;
  readonly badReads: readonly BadRead[];
  readonly stats: RunStats;
  readonly crashes: readonly Crash[];
  readonly restarts: Record<string, number>;
  readonly convergence: Convergence;
  readonly check: FinalCheck;
  readonly replicas: ReplicaAgreement | string;
  readonly skipped: readonly string[];
  /** Set when the run itself broke off. */
  readonly harnessError: string | undefined;
}

export interface Verdict {
  readonly pass: boolean;
  readonly reasons: string[];
  /** Stale reads while a replica ran on a wiped data directory (its writes acknowledged before the wipe). */
  readonly staleAfterWipe: number;
  readonly staleOther: number;
  readonly wrong: number;
}

/** A stale read is explained by a wipe when it came while a wiped replica was being rebuilt, of a write acknowledged before. */
function afterWipe(read: BadRead, wipes: readonly WipeWindow[]): boolean {
  return wipes.some(
    (w) =>
      read.sentAtMs >= w.startMs &&
      read.sentAtMs <= (w.endMs ?? Number.POSITIVE_INFINITY) &&
      (read.expected === undefined || read.expected.doneAtMs <= w.startMs),
  );
}

export function verdict(data: CardData): Verdict {
  const stale = data.badReads.filter((r) => r.kind === 'stale');
  const staleAfterWipe = stale.filter((r) => afterWipe(r, data.stats.wipes)).length;
  const staleOther = stale.length - staleAfterWipe;
  const wrong = data.badReads.filter((r) => r.kind === 'wrong').length;
  const reasons: string[] = [];
  if (data.harnessError !== undefined) reasons.push(`the run broke off: ${data.harnessError}`);
  if (data.check.lost.length > 0) reasons.push(`${data.check.lost.length} acknowledged writes lost`);
  if (data.check.unreadable.length > 0)
    reasons.push(`${data.check.unreadable.length} keys unreadable at the end`);
  if (staleOther + staleAfterWipe > 0) reasons.push(`${staleOther + staleAfterWipe} stale reads`);
  if (wrong > 0) reasons.push(`${wrong} reads of data nobody wrote`);
  if (data.stats.probes.crashed > 0)
    reasons.push(`${data.stats.probes.crashed} bad-input probes crashed a node`);
  if (data.crashes.length > 0) reasons.push(`${data.crashes.length} nodes crashed`);
  if (data.stats.findings.length > 0) reasons.push(`${data.stats.findings.length} findings`);
  // Healed, with hints and anti-entropy given their time, the replicas must agree: a promise too.
  if (!data.convergence.converged) reasons.push(`did not converge: ${data.convergence.detail}`);
  if (typeof data.replicas !== 'string' && data.replicas.differing > 0)
    reasons.push(`${data.replicas.differing} keys differ between the nodes' own copies`);
  return { pass: reasons.length === 0, reasons, staleAfterWipe, staleOther, wrong };
}

const n = (value: number): string => value.toLocaleString('en-US');
const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

function counts(record: Readonly<Record<string, number | undefined>>): string {
  const parts = Object.entries(record)
    .filter(([, v]) => (v ?? 0) > 0)
    .sort(([, a], [, b]) => (b ?? 0) - (a ?? 0))
    .map(([k, v]) => `${k} x${n(v ?? 0)}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

function sum(record: Readonly<Record<string, number | undefined>>): number {
  return Object.values(record).reduce<number>((a, b) => a + (b ?? 0), 0);
}

/** The card itself, as plain text (fixed-width labels). */
export function renderCard(data: CardData, v: Verdict): string {
  const { totals, stats, durationsMs: d } = data;
  const c = stats.corruption;
  const p = stats.probes;
  const failed = sum(totals.failed);
  const lines: [string, string][] = [
    [
      'run',
      `${data.startedAt.toISOString()}, commit ${commitText()}, Node ${process.version}, ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    ],
    ['command', data.options.command],
    ['cluster', data.settings],
    [
      'duration',
      `${s(d.total)} (abuse ${s(d.abuse)}, convergence ${s(d.convergence)}, final check ${s(d.check)})`,
    ],
    ['operations', `${n(totals.requests)} (${counts(totals.byMethod)})`],
    [
      'acknowledged',
      `${n(totals.acknowledgedWrites)} writes; ${n(totals.answered)} requests answered as expected`,
    ],
    ['failed', `${n(failed)}${failed > 0 ? ` (${counts(totals.failed)})` : ''}`],
    [
      'failovers',
      `${n(sum(data.failovers))}${sum(data.failovers) > 0 ? ` (${counts(data.failovers)})` : ''}`,
    ],
    [
      'lost',
      `${n(data.check.lost.length)} of ${n(data.check.keys)} keys read at quorum at the end (${n(data.check.unreadable.length)} unreadable)`,
    ],
    [
      'stale reads',
      `${n(v.staleOther + v.staleAfterWipe)}${v.staleAfterWipe > 0 ? ` (${n(v.staleAfterWipe)} while a wiped replica was rebuilt)` : ''}; reads of data nobody wrote: ${n(v.wrong)}`,
    ],
    [
      'corruption',
      `${n(c.injected)} damaged files: ${n(c.refusedStart + c.detectedAtRead)} detected (${n(c.refusedStart)} start refused naming the file${c.refusedUnnamed > 0 ? `, ${c.refusedUnnamed} NOT named` : ''}, ${n(c.detectedAtRead)} at read time), ${n(c.undetected)} not met by a full scan; ${n(stats.wipes.length)} data dirs wiped and rebuilt`,
    ],
    [
      'nodes',
      `${n(data.crashes.length)} crashed; ${n(sum(data.restarts))} restarts (${counts(data.restarts)})`,
    ],
    ['bad input', `${n(p.sent)} probes, ${n(p.crashed)} crashed a node (${counts(p.byClass)})`],
    ['abuses', counts(stats.abuses)],
    [
      'converged',
      data.convergence.converged
        ? `yes, in ${s(data.convergence.ms)}`
        : `NO after ${s(data.convergence.ms)}: ${data.convergence.detail}`,
    ],
    [
      'replicas',
      typeof data.replicas === 'string'
        ? data.replicas
        : `${n(data.replicas.differing)} keys differ between the nodes' own copies${data.replicas.scanErrors.length > 0 ? ` (scan errors: ${data.replicas.scanErrors.join('; ')})` : ''}`,
    ],
    ['skipped', data.skipped.length === 0 ? 'nothing' : data.skipped.join('; ')],
    ['verdict', v.pass ? 'PASS' : `FAIL: ${v.reasons.join('; ')}`],
  ];
  const width = Math.max(...lines.map(([label]) => label.length));
  return [
    'ringkv torture report card',
    ...lines.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`),
  ].join('\n');
}

/** A write for the details: 'PUT "v" (answered 201 by URL 12 ms before)', 'DELETE (...)' or 'none'. */
function describeWrite(write: WriteRecord | undefined, beforeMs: number): string {
  if (write === undefined) return 'none';
  const what = write.value === null ? 'DELETE' : `PUT ${JSON.stringify(write.value)}`;
  return `${what} (answered ${write.outcome} by ${write.node} ${beforeMs - write.doneAtMs} ms before)`;
}

/** Everything behind the card, for the .md file. */
function renderDetails(data: CardData): string {
  const out: string[] = [];
  const section = (title: string, items: readonly string[], limit = 50): void => {
    if (items.length === 0) return;
    out.push(`## ${title}`, '');
    for (const item of items.slice(0, limit)) out.push(`- ${item.replace(/\n/g, ' / ')}`);
    if (items.length > limit) out.push(`- ... and ${items.length - limit} more (in the JSON file)`);
    out.push('');
  };
  section('Findings', data.stats.findings);
  if (data.loadPhases !== '') out.push('## Load by phase', '', '```', data.loadPhases, '```', '');
  section(
    'Lost writes',
    data.check.lost.map(
      (l) =>
        `${l.key}: read ${l.read}, acceptable ${JSON.stringify(l.acceptable)}, last acknowledged: ${describeWrite(l.lastAcknowledged, Date.now())}`,
    ),
  );
  section('Unreadable keys', data.check.unreadable);
  section(
    'Stale reads and wrong data',
    data.badReads.map(
      (r) =>
        `${r.kind} ${r.key} via ${r.node} during "${r.phase}": read ${r.read === null ? '404 (absent)' : JSON.stringify(r.read)}, last acknowledged before it: ${describeWrite(r.expected, r.sentAtMs)}`,
    ),
  );
  section(
    'Crashes',
    data.crashes.map((c) => `${c.node} during "${c.during}": ${JSON.stringify(c.exit)}; log: ${c.logTail}`),
  );
  section('Corruption', data.stats.corruption.details);
  section('Bad-input crashes', data.stats.probes.crashes);
  section('Bad-input probes answered 2xx or 5xx', data.stats.probes.notable);
  section('Clock skew', data.stats.skew);
  section('Every bad-input probe', data.stats.probes.outcomes, 500);
  if (typeof data.replicas !== 'string') section('Replica differences (examples)', data.replicas.examples);
  section('Timeline', data.stats.timeline, 500);
  return out.join('\n');
}

/** Writes <stamp>-torture.md (card, details, timeline) and .json; returns the .md path. */
export function writeResults(data: CardData, v: Verdict, card: string): string {
  const stamp = data.startedAt.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  mkdirSync(data.options.resultsDir, { recursive: true });
  const base = join(data.options.resultsDir, `${stamp}-torture`);
  const md = [
    `# ringkv torture (${stamp})`,
    '',
    `command: \`${data.options.command}\``,
    '',
    '```',
    card,
    '```',
    '',
    renderDetails(data),
  ].join('\n');
  writeFileSync(`${base}.md`, `${md}\n`);
  const { options, ...rest } = data;
  writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ mode: 'torture', commit: commitText(), options, verdict: v, ...rest }, null, 2)}\n`,
  );
  return `${base}.md`;
}

let commitCache: string | undefined;

function commitText(): string {
  if (commitCache !== undefined) return commitCache;
  const git = (args: string[]): string =>
    execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const sha = git(['rev-parse', '--short=10', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--untracked-files=no']).length > 0;
    commitCache = `${sha}${dirty ? ' (with uncommitted changes)' : ''}`;
  } catch {
    commitCache = 'unknown';
  }
  return commitCache;
}
