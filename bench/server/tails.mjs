/**
 * Tails at fixed loads (cluster part): latency percentiles at fixed fractions
 * of a breaking point, with what each node's event loop and garbage collector
 * did meanwhile, so that slow requests can be set against their causes.
 *
 * For one request kind and a breaking point B (from the rate search, or given
 * by BENCH_CLUSTER_BREAK_GET / _PUT so that two builds are loaded alike):
 *
 *   1. Windows at fraction * B for each fraction (0.25, 0.5, 0.75), round
 *      robin (25%, 50%, 75%, 25%, ...) for `rounds` rounds, so that the
 *      drifting load of a shared machine falls on every fraction alike.
 *   2. Each window reads every node's /v0/status (CPU) and the histograms
 *      ringkv_event_loop_delay_seconds, ringkv_nodejs_gc_duration_seconds
 *      and ringkv_http_request_duration_seconds of its /metrics 300 ms
 *      before its start (under the same load) and at its end; their
 *      differences, rates per second of the time between the two, are the
 *      window's: per node, the p99 of the requests it coordinated, timed
 *      inside it (from the head read to the answer written: what the
 *      client's p99 has beyond it is the client, loopback and wake-ups),
 *      event-loop delay p99 and GC pause p99 (any kind), major GCs per
 *      second, and the share of time in GC.
 *   3. Per fraction, every figure is the median over its windows; p99/p50 is
 *      the median of each window's own ratio (the goal: at most 3 at 50%).
 *
 * CPU per request is the nodes' CPU over the window (all processes and
 * threads) divided by the requests answered, also as a multiple of the
 * loopback message floor measured at the start of the run.
 *
 * Before the first window, `warmupMs` of load at the middle fraction, not
 * measured (against the ceiling cluster too): the first window after a fill
 * otherwise measured the read path's code being compiled, with about twice
 * the CPU per request of the later ones.
 *
 * With `ceilingPorts` (load/ceiling-cluster.mjs: the same messages between as
 * many processes, and no other work), each window has one beside it at the
 * same rate against that cluster (after it in odd rounds, before it in even
 * ones), so that the spread the machine gives a request waking several
 * processes with no work in it stands beside ringkv's, taken alike.
 */
import fs from 'node:fs';
import { diffHistograms, histogramQuantile, mergeSeries } from '../lib/prom-histograms.mjs';
import { fmtInt, fmtMs, log, mdTable, median } from '../lib/stats.mjs';
import { runLoad, statusRates } from '../load/driver.mjs';
import { CPU_STATUS_FIELDS, requestConfig } from './common.mjs';

const EVENT_LOOP = 'ringkv_event_loop_delay_seconds';
const GC = 'ringkv_nodejs_gc_duration_seconds';
const REQUEST = 'ringkv_http_request_duration_seconds';
export const TAIL_HISTOGRAMS = [EVENT_LOOP, GC, REQUEST];

/** Idle and total jiffies of the machine (Linux /proc/stat), or null. */
function machineTimes() {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // idle + iowait: time no process wanted a core.
    return { idle: cpu[3] + (cpu[4] ?? 0), total: cpu.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/** A node's figures when a window cannot give them. */
const NO_NODE_FIGURES = Object.freeze({
  eventLoopDelayP99Ms: null,
  requestP99Ms: null,
  gcPauseP99Ms: null,
  gcPauseMaxBucketMs: null,
  gcPerS: null,
  majorGcPerS: null,
  gcShare: null,
});

/**
 * What one node did in one window, from its two snapshots; `op` is the request kind measured. None
 * when either snapshot lacks its histograms: subtracted from nothing, the end's counts would be the
 * node's whole life since it started, quoted as the window's.
 */
export function nodeFigures(start, end, seconds, op) {
  const startHistograms = start?.body?.histograms;
  const endHistograms = end?.body?.histograms;
  if (!startHistograms || !endHistograms) return { ...NO_NODE_FIGURES };
  const diff = diffHistograms(startHistograms, endHistograms);
  // The node's own time for the requests it coordinated: from their head read to their answer written.
  const requests = mergeSeries(diff[REQUEST], (labels) => labels.includes(`op="${op}"`));
  const loop = mergeSeries(diff[EVENT_LOOP]);
  const gcAll = mergeSeries(diff[GC]);
  const gcMajor = mergeSeries(diff[GC], (labels) => labels.includes('kind="major"'));
  const ms = (v) => (v === null ? null : v * 1000);
  return {
    eventLoopDelayP99Ms: ms(histogramQuantile(loop, 0.99)),
    requestP99Ms: ms(histogramQuantile(requests, 0.99)),
    gcPauseP99Ms: ms(histogramQuantile(gcAll, 0.99)),
    gcPauseMaxBucketMs: ms(maxBucket(gcAll)),
    gcPerS: gcAll === null || seconds <= 0 ? null : gcAll.count / seconds,
    majorGcPerS: gcMajor === null || seconds <= 0 ? null : gcMajor.count / seconds,
    gcShare: gcAll === null || seconds <= 0 ? null : gcAll.sum / seconds,
  };
}

/** The upper bound of the highest non-empty bucket: the longest pause, to the bucket. */
function maxBucket(series) {
  if (series === null) return null;
  let prev = 0;
  let bound = null;
  series.cumulative.forEach((c, i) => {
    if (c > prev) bound = series.bounds[i];
    prev = c;
  });
  return bound;
}

function windowFigures(result, op, loopback, idleShare) {
  const { start, end } = result.status;
  // Per second over the time between the node's two snapshots (the first is read shortly
  // before the window: load/loadgen.mjs), not over the window alone.
  const seconds = (i) =>
    start[i]?.atMs != null && end[i]?.atMs != null
      ? (end[i].atMs - start[i].atMs) / 1000
      : result.windowMs / 1000;
  const nodes = end.map((snap, i) => nodeFigures(start[i], snap, seconds(i), op));
  const rates = statusRates(result, CPU_STATUS_FIELDS);
  const cpu =
    rates?.cpuUser != null && rates.cpuSystem != null && result.achievedRate > 0
      ? (rates.cpuUser + rates.cpuSystem) / result.achievedRate
      : null;
  return {
    rate: result.rate,
    ...latencyFigures(result, idleShare),
    cpuMicrosPerRequest: cpu,
    cpuPerFloorMessage: cpu !== null && loopback ? cpu / loopback.cpuMicrosPerMessage : null,
    nodes,
  };
}

/** What the client saw in one window, and the machine's idle share: all a ceiling window has (no /metrics). */
function latencyFigures(result, idleShare) {
  const l = result.latency;
  return {
    achievedRate: result.achievedRate,
    errorCount: result.measured.errorCount,
    p50Ms: l.p50Ms,
    p99Ms: l.p99Ms,
    p999Ms: l.p999Ms,
    maxMs: l.maxMs,
    p99OverP50: l.p50Ms > 0 ? l.p99Ms / l.p50Ms : null,
    sendLagP99Ms: result.sendLag.p99Ms,
    machineIdleShare: idleShare,
  };
}
const LATENCY_KEYS = [
  'achievedRate',
  'p50Ms',
  'p99Ms',
  'p999Ms',
  'maxMs',
  'p99OverP50',
  'sendLagP99Ms',
  'machineIdleShare',
];

function medianOf(windows, pick) {
  const values = windows.map(pick).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  return values.length ? median(values) : null;
}

/** Each of `keys` as its median over `windows`, read through `of` (a window's own figures or a part of them). */
function mediansOf(windows, keys, of = (w) => w) {
  return Object.fromEntries(keys.map((k) => [k, medianOf(windows, (w) => of(w)?.[k])]));
}

function summarize(fraction, rate, windows) {
  const nodeCount = Math.max(0, ...windows.map((w) => w.nodes.length));
  const keys = [
    'eventLoopDelayP99Ms',
    'requestP99Ms',
    'gcPauseP99Ms',
    'gcPauseMaxBucketMs',
    'gcPerS',
    'majorGcPerS',
    'gcShare',
  ];
  return {
    fraction,
    rate,
    windowCount: windows.length,
    errorCount: windows.reduce((n, w) => n + w.errorCount, 0),
    ...mediansOf(windows, [...LATENCY_KEYS, 'cpuMicrosPerRequest', 'cpuPerFloorMessage']),
    nodes: Array.from({ length: nodeCount }, (_, i) => mediansOf(windows, keys, (w) => w.nodes[i])),
    ceiling: windows.some((w) => w.ceiling !== undefined)
      ? {
          errorCount: windows.reduce((n, w) => n + (w.ceiling?.errorCount ?? 0), 0),
          ...mediansOf(windows, LATENCY_KEYS, (w) => w.ceiling),
        }
      : null,
    windows,
  };
}

/**
 * Runs the windows for one request kind; resolves to one summary per
 * fraction (see the module comment).
 */
export async function runTails(
  label,
  {
    settings,
    op,
    ports,
    keyCount,
    querySuffix,
    breakingPoint,
    fractions,
    rounds,
    loopback,
    ceilingPorts,
    warmupMs = 0,
  },
) {
  const config = requestConfig(settings, { op, ports, keyCount, querySuffix, statusPorts: ports });
  config.metricsHistograms = TAIL_HISTOGRAMS;
  const ceilingConfig =
    ceilingPorts === undefined
      ? undefined
      : requestConfig(settings, { op, ports: ceilingPorts, keyCount, querySuffix });
  if (warmupMs > 0) {
    // Not measured: the request path's code runs hot before the first window (module comment).
    const rate = Math.max(1, Math.round(breakingPoint * fractions[Math.floor(fractions.length / 2)]));
    for (const c of ceilingConfig === undefined ? [config] : [config, ceilingConfig]) {
      await runLoad({ ...c, statusTargets: [], metricsHistograms: undefined, durationMs: warmupMs, rate });
    }
    log(`${label}: warmed up for ${warmupMs / 1000} s at ${fmtInt(rate)}/s (not measured)`);
  }
  const byFraction = fractions.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, fraction] of fractions.entries()) {
      const rate = Math.max(1, Math.round(breakingPoint * fraction));
      // The ceiling's window goes after ringkv's in odd rounds and before it in even ones, so that
      // neither always follows the other (ringkv's nodes may flush after a window of PUTs).
      const ceilingFirst = ceilingConfig !== undefined && round % 2 === 1;
      const before = ceilingFirst ? await measured(ceilingConfig, rate) : undefined;
      const { result, idleShare } = await measured(config, rate);
      const w = windowFigures(result, op, loopback, idleShare);
      const ceiling =
        before ?? (ceilingConfig === undefined ? undefined : await measured(ceilingConfig, rate));
      if (ceiling !== undefined) w.ceiling = latencyFigures(ceiling.result, ceiling.idleShare);
      byFraction[i].push(w);
      log(
        `${label}: ${Math.round(fraction * 100)}% of ${fmtInt(breakingPoint)}/s = ${fmtInt(rate)}/s ` +
          `[round ${round + 1}/${rounds}] p50=${fmtMs(w.p50Ms)} p99=${fmtMs(w.p99Ms)} p99.9=${fmtMs(w.p999Ms)} ` +
          `ms (x${w.p99OverP50?.toFixed(1)}) errors=${w.errorCount} node p99=${nodesText(w.nodes, 'requestP99Ms')} loop p99=${nodesText(w.nodes, 'eventLoopDelayP99Ms')} ` +
          `gc p99=${nodesText(w.nodes, 'gcPauseP99Ms')} major/s=${nodesText(w.nodes, 'majorGcPerS', 2)} ` +
          `cpu/request=${fmtInt(w.cpuMicrosPerRequest)} µs machine idle=${w.machineIdleShare === null ? 'n/a' : `${Math.round(w.machineIdleShare * 100)}%`}` +
          (w.ceiling === undefined
            ? ''
            : ` | ceiling cluster p50=${fmtMs(w.ceiling.p50Ms)} p99=${fmtMs(w.ceiling.p99Ms)} ms (x${w.ceiling.p99OverP50?.toFixed(1)}) errors=${w.ceiling.errorCount} machine idle=${w.ceiling.machineIdleShare === null ? 'n/a' : `${Math.round(w.ceiling.machineIdleShare * 100)}%`}`),
      );
      if (settings.search.pauseMs > 0) await new Promise((r) => setTimeout(r, settings.search.pauseMs));
    }
  }
  return fractions.map((fraction, i) =>
    summarize(fraction, Math.max(1, Math.round(breakingPoint * fraction)), byFraction[i]),
  );
}

/** One window at `rate`, and the machine's idle share over it (warm-up included): other work on a shared machine shows there. */
async function measured(config, rate) {
  const before = machineTimes();
  const result = await runLoad({ ...config, rate });
  const after = machineTimes();
  const idleShare =
    before && after && after.total > before.total
      ? (after.idle - before.idle) / (after.total - before.total)
      : null;
  return { result, idleShare };
}

/** "1.2/0.9/1.4": one figure per node. */
function nodesText(nodes, key, digits) {
  return nodes
    .map((n) => {
      const v = n?.[key];
      if (v === null || v === undefined) return 'n/a';
      return digits === undefined ? fmtMs(v) : v.toFixed(digits);
    })
    .join('/');
}

/** The markdown table of runTails' summaries, one row per request kind and fraction. */
export function tailsTable(rows) {
  return mdTable(
    [
      'request',
      'load',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'p99/p50',
      'p99 ms inside the node (per node)',
      'event-loop delay p99 ms (per node)',
      'GC pause p99 ms (per node)',
      'major GCs/s (per node)',
      'time in GC (per node)',
      'CPU µs/request (x floor)',
      'machine idle',
      'ceiling cluster p50 / p99 / p99.9 ms (p99/p50), machine idle',
    ],
    rows.map(({ op, breakingPoint, s }) => [
      op.toUpperCase(),
      `${Math.round(s.fraction * 100)}% of ${fmtInt(breakingPoint)}/s = ${fmtInt(s.rate)}/s${s.errorCount ? ` (${s.errorCount} errors)` : ''}`,
      fmtMs(s.p50Ms),
      fmtMs(s.p99Ms),
      fmtMs(s.p999Ms),
      s.p99OverP50 === null ? 'n/a' : `${s.p99OverP50.toFixed(1)}x`,
      nodesText(s.nodes, 'requestP99Ms'),
      nodesText(s.nodes, 'eventLoopDelayP99Ms'),
      nodesText(s.nodes, 'gcPauseP99Ms'),
      nodesText(s.nodes, 'majorGcPerS', 2),
      s.nodes.map((n) => (n.gcShare === null ? 'n/a' : `${(n.gcShare * 100).toFixed(1)}%`)).join('/'),
      s.cpuMicrosPerRequest === null
        ? 'n/a'
        : `${fmtInt(s.cpuMicrosPerRequest)}${s.cpuPerFloorMessage === null ? '' : ` (${s.cpuPerFloorMessage.toFixed(1)}x)`}`,
      s.machineIdleShare === null ? 'n/a' : `${Math.round(s.machineIdleShare * 100)}%`,
      s.ceiling === null
        ? 'n/a'
        : `${fmtMs(s.ceiling.p50Ms)} / ${fmtMs(s.ceiling.p99Ms)} / ${fmtMs(s.ceiling.p999Ms)}` +
          ` (${s.ceiling.p99OverP50 === null ? 'n/a' : `${s.ceiling.p99OverP50.toFixed(1)}x`})` +
          (s.ceiling.machineIdleShare === null ? '' : `, ${Math.round(s.ceiling.machineIdleShare * 100)}%`) +
          (s.ceiling.errorCount ? ` (${s.ceiling.errorCount} errors)` : ''),
    ]),
  );
}
