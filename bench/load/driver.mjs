/**
 * The parent side of the load generator: runs one loadgen.mjs process per
 * measurement, and the rate search built on it.
 *
 * Rate search, for one target and one request kind:
 *   1. Start at `startRate`; while a step passes, double the rate (up to
 *      `maxRate`). A step is `trials` windows at one rate (default 3); a
 *      window passes with p99 <= p99Ms and zero errors, and the step passes
 *      when most of its windows do, i.e. when its median window does. Windows
 *      stop as soon as the majority is decided (2 of 3). On a shared machine a
 *      single window can fail on a pause that has nothing to do with the
 *      server, and one such window would otherwise end the search early.
 *   2. Once a step fails, bisect between the highest pass and the lowest
 *      failure until they are within `precision` of each other.
 *   3. The answer is the highest passing rate; every step is kept in the
 *      results so the curve can be read. At most `maxSteps` steps run.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkChild, stopChild } from '../lib/procs.mjs';
import { fmtInt, fmtMs, log } from '../lib/stats.mjs';

const LOADGEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loadgen.mjs');

/** Defaults for every loadgen config field; callers override what they need. */
export function loadConfig(overrides) {
  return {
    mode: 'rate',
    targets: [],
    connections: 64,
    method: 'GET',
    path: '/v0/entity?id=',
    keyPrefix: 'k',
    querySuffix: '',
    keyCount: 100000,
    valueBytes: 128,
    okStatuses: [200],
    expectBodyBytes: -1,
    rate: 1000,
    warmupMs: 2000,
    durationMs: 10000,
    timeoutMs: 2000,
    fillTimeoutMs: 600000,
    statusTargets: [],
    statusPath: '/v0/status',
    seed: 0x2545f491,
    ...overrides,
  };
}

/** Runs the load generator once in its own process; resolves with its result. */
export async function runLoad(config) {
  return startLoadRun(config).result;
}

/**
 * Starts the load generator in its own process: `result` resolves with its
 * result; `stop()` ends a rate run's window early (what is in flight is
 * still awaited), for runs whose length follows events, not the clock.
 */
export function startLoadRun(config) {
  const child = forkChild(LOADGEN, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const budgetMs =
    config.mode === 'fill'
      ? config.fillTimeoutMs + 10000
      : config.warmupMs + config.durationMs + 2 * config.timeoutMs + 30000;
  let timer;
  const result = (async () => {
    try {
      return await new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`Load generator exceeded ${budgetMs} ms`)), budgetMs);
        child.once('message', (msg) => {
          if (msg?.type === 'result') resolve(msg.result);
          else reject(new Error(`Load generator: ${msg?.message ?? 'unknown error'}`));
        });
        child.exited.then(({ code, signal }) =>
          reject(new Error(`Load generator exited (code ${code}, signal ${signal}) without a result`)),
        );
        child.send({ type: 'run', config });
      });
    } finally {
      clearTimeout(timer);
      await stopChild(child, 5000);
    }
  })();
  return {
    result,
    stop() {
      if (child.connected) child.send({ type: 'stop' });
    },
  };
}

/** The number at a dotted path in `body`, trying each alternative path in turn. */
function pick(body, paths) {
  for (const dotted of Array.isArray(paths) ? paths : [paths]) {
    let v = body;
    for (const part of dotted.split('.')) v = v?.[part];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

/**
 * Sum of a numeric status field over the status snapshots of all nodes; null unless every one has it
 * (a node whose snapshot failed at one end of a window would turn the difference into nonsense).
 */
function sumField(snapshots, paths) {
  let total = 0;
  for (const snap of snapshots) {
    const v = pick(snap?.body, paths);
    if (v === undefined) return null;
    total += v;
  }
  return snapshots.length > 0 ? total : null;
}

/** Per-second rates of cumulative /v0/status counters over the measured window. */
export function statusRates(result, fields) {
  const { start, end } = result.status;
  if (!start?.length || !end?.length) return null;
  const seconds = (Math.max(...end.map((s) => s.atMs)) - Math.min(...start.map((s) => s.atMs))) / 1000;
  const out = {};
  for (const [name, field] of Object.entries(fields)) {
    const a = sumField(start, field);
    const b = sumField(end, field);
    out[name] = a === null || b === null || seconds <= 0 ? null : Math.round((b - a) / seconds);
  }
  return out;
}

export function passes(result, p99Ms) {
  return result.measured.errorCount === 0 && result.latency.count > 0 && result.latency.p99Ms <= p99Ms;
}

function describe(result) {
  const l = result.latency;
  const e = result.measured.errors;
  const statusErrors = Object.entries(e.status)
    .map(([k, v]) => `${k}x${v}`)
    .join(' ');
  const errs = result.measured.errorCount
    ? ` errors=${result.measured.errorCount} (${statusErrors} socket=${e.socket} timeout=${e.timeout} ` +
      `unfinished=${e.unfinished} connect=${e.connect} parse=${e.parse} body=${e.body})`
    : '';
  return (
    `ok=${fmtInt(result.achievedRate)}/s p50=${fmtMs(l.p50Ms)} p90=${fmtMs(l.p90Ms)} p99=${fmtMs(l.p99Ms)} ` +
    `p99.9=${fmtMs(l.p999Ms)} max=${fmtMs(l.maxMs)} ms, sendLag p99=${fmtMs(result.sendLag.p99Ms)} ms, ` +
    `gen cpu=${result.generatorCpuPercent}%${errs}`
  );
}

/** A compact record of one step for the results file (the full histogram is kept). */
function stepRecord(result, pass, extra) {
  return {
    rate: result.rate,
    pass,
    achievedRate: result.achievedRate,
    latency: result.latency,
    errors: result.measured.errors,
    errorCount: result.measured.errorCount,
    warmupErrors: result.warmup.errorCount,
    sendLag: result.sendLag,
    generatorCpuPercent: result.generatorCpuPercent,
    failedConnects: result.failedConnects,
    histogram: result.histogram,
    ...extra,
  };
}

/**
 * The window whose figures a step reports: the median by p99 (of two, the worse) of its windows
 * that agree with its verdict. Of all its windows, the median by p99 could be one that failed on
 * errors alone (its p99 between the others'), and a passing step would quote that window's figures.
 */
export function stepWindow(windows, pass) {
  const agreeing = windows.filter((w) => w.pass === pass);
  const byP99 = (agreeing.length > 0 ? agreeing : windows).toSorted(
    (a, b) => a.result.latency.p99Ms - b.result.latency.p99Ms,
  );
  return byP99[Math.floor(byP99.length / 2)];
}

/**
 * Finds the highest rate that passes. `base` is a loadConfig without `rate`;
 * `search` = { startRate, maxRate, precision, maxSteps, p99Ms, pauseMs };
 * `statusFields` maps names to /v0/status counters to report per step.
 */
export async function rateSearch(label, base, search, statusFields = {}) {
  const steps = [];
  let bestPass = null;
  let lowestFail = null;
  let rate = search.startRate;
  for (let i = 0; i < search.maxSteps; i++) {
    const trials = Math.max(1, search.trials ?? 1);
    const majority = Math.floor(trials / 2) + 1;
    const windows = [];
    let passed = 0;
    while (windows.length < trials && passed < majority && windows.length - passed < majority) {
      const result = await runLoad({ ...base, rate: Math.round(rate) });
      const windowPass = passes(result, search.p99Ms);
      if (windowPass) passed++;
      const rates = Object.keys(statusFields).length ? statusRates(result, statusFields) : null;
      if (rates?.cpuUser != null && rates.cpuSystem != null && result.achievedRate > 0) {
        // Server CPU (all its processes and threads) per answered request, in µs.
        rates.cpuMicrosPerRequest = Math.round((rates.cpuUser + rates.cpuSystem) / result.achievedRate);
      }
      if (rates?.readSyscalls != null && rates.writeSyscalls != null && result.achievedRate > 0) {
        // System calls (sockets and files, summed over the nodes) per answered request.
        rates.readSyscallsPerRequest = Math.round((10 * rates.readSyscalls) / result.achievedRate) / 10;
        rates.writeSyscallsPerRequest = Math.round((10 * rates.writeSyscalls) / result.achievedRate) / 10;
      }
      windows.push({ result, pass: windowPass, rates });
      const extra = rates
        ? ` ${Object.entries(rates)
            .filter(
              ([k, v]) => v != null && !['cpuUser', 'cpuSystem', 'readSyscalls', 'writeSyscalls'].includes(k),
            )
            .map(([k, v]) => {
              if (k === 'cpuMicrosPerRequest') return `cpu/request=${fmtInt(v)} µs`;
              if (k.endsWith('PerRequest'))
                return `${k.replace('SyscallsPerRequest', '')} calls/request=${v}`;
              return `${k}=${fmtInt(v)}/s`;
            })
            .join(' ')}`
        : '';
      const tag = trials > 1 ? ` [window ${windows.length}/${trials}]` : '';
      log(
        `${label}: rate ${fmtInt(rate)}/s${tag} ${windowPass ? 'PASS' : 'FAIL'} ${describe(result)}${extra}`,
      );
      if (search.pauseMs > 0) await new Promise((r) => setTimeout(r, search.pauseMs));
    }
    const pass = passed >= majority;
    const median = stepWindow(windows, pass);
    const step = stepRecord(median.result, pass, {
      ...(median.rates ? { statusRates: median.rates } : {}),
      windows: windows.map((w) => ({
        pass: w.pass,
        p99Ms: w.result.latency.p99Ms,
        errorCount: w.result.measured.errorCount,
      })),
    });
    steps.push(step);
    if (trials > 1)
      log(
        `${label}: rate ${fmtInt(rate)}/s ${pass ? 'PASS' : 'FAIL'} (${passed} of ${windows.length} windows)`,
      );
    if (pass) {
      if (bestPass === null || rate > bestPass.rate) bestPass = step;
    } else if (lowestFail === null || rate < lowestFail.rate) {
      lowestFail = step;
    }
    let next;
    if (lowestFail === null) {
      if (rate >= search.maxRate) break;
      next = Math.min(rate * 2, search.maxRate);
    } else {
      const lo = bestPass?.rate ?? 0;
      const hi = lowestFail.rate;
      if (lo === 0 && hi <= search.minRate) break;
      if (lo > 0 && (hi - lo) / lo <= search.precision) break;
      next = lo === 0 ? Math.max(search.minRate, hi / 2) : (lo + hi) / 2;
    }
    rate = next;
  }
  const summary = {
    label,
    maxRate: bestPass?.rate ?? 0,
    best: bestPass,
    lowestFail: lowestFail
      ? { rate: lowestFail.rate, latency: lowestFail.latency, errorCount: lowestFail.errorCount }
      : null,
    steps,
  };
  log(`${label}: highest passing rate ${fmtInt(summary.maxRate)}/s`);
  return summary;
}
