/** Settings and helpers shared by the server, cluster and profile benchmarks. */
import http from 'node:http';
import { envInt, envNumber } from '../lib/settings.mjs';
import { fmtInt, fmtMs, log } from '../lib/stats.mjs';
import { loadConfig } from '../load/driver.mjs';
import { keyString } from '../load/request-template.mjs';
import { targetsOf } from './targets.mjs';

/**
 * Counters of /v0/status diffed over each measured window (summed over
 * nodes): engine.writes and engine.walSyncs, at the top level or under store.
 */
/**
 * Process CPU (µs, summed over the nodes) from /v0/status, and the nodes'
 * read and write system calls (from /proc, added by the load generator): the
 * bench reports both per request.
 */
export const CPU_STATUS_FIELDS = {
  cpuUser: 'cpu.user',
  cpuSystem: 'cpu.system',
  readSyscalls: 'syscalls.read',
  writeSyscalls: 'syscalls.write',
};

export const WRITE_STATUS_FIELDS = {
  writes: ['engine.writes', 'store.engine.writes'],
  walSyncs: ['engine.walSyncs', 'store.engine.walSyncs'],
  ...CPU_STATUS_FIELDS,
};

export function loadSettings() {
  return {
    connections: envInt('BENCH_CONNECTIONS', 64, { min: 1 }),
    windowMs: Math.round(envNumber('BENCH_WINDOW_S', 10, { min: 0.1 }) * 1000),
    warmupMs: Math.round(envNumber('BENCH_WARMUP_S', 2, { min: 0 }) * 1000),
    timeoutMs: envInt('BENCH_TIMEOUT_MS', 2000, { min: 1 }),
    valueBytes: envInt('BENCH_VALUE_BYTES', 128, { min: 1 }),
    search: {
      p99Ms: envNumber('BENCH_P99_MS', 10, { min: 0 }),
      startRate: envInt('BENCH_RATE_START', 2000, { min: 1 }),
      minRate: envInt('BENCH_RATE_MIN', 250, { min: 1 }),
      maxRate: envInt('BENCH_RATE_MAX', 200000, { min: 1 }),
      precision: envNumber('BENCH_RATE_PRECISION', 0.05, { min: 0.001 }),
      maxSteps: envInt('BENCH_MAX_STEPS', 12, { min: 1 }),
      pauseMs: envInt('BENCH_PAUSE_MS', 1000, { min: 0 }),
      // Windows per step: a step passes when most of them pass (the median window decides).
      trials: envInt('BENCH_TRIALS', 3, { min: 1 }),
    },
  };
}

/** The loadgen config for PUT or GET of `keyCount` keys against `ports`. */
export function requestConfig(settings, { op, ports, keyCount, querySuffix = '', statusPorts = [] }) {
  const put = op === 'put';
  return loadConfig({
    targets: targetsOf(ports),
    connections: settings.connections,
    method: put ? 'PUT' : 'GET',
    querySuffix,
    keyCount,
    valueBytes: settings.valueBytes,
    okStatuses: put ? [201] : [200],
    expectBodyBytes: put ? -1 : settings.valueBytes,
    warmupMs: settings.warmupMs,
    durationMs: settings.windowMs,
    timeoutMs: settings.timeoutMs,
    statusTargets: targetsOf(statusPorts),
  });
}

/** Writes keys 0..keyCount-1 once each through `ports` (closed loop, as fast as accepted). */
export async function fill(settings, { ports, keyCount, querySuffix = '', label, runLoad }) {
  const config = {
    ...requestConfig(settings, { op: 'put', ports, keyCount, querySuffix }),
    mode: 'fill',
  };
  const result = await runLoad(config);
  log(
    `${label}: filled ${fmtInt(result.ok)} keys in ${fmtInt(result.elapsedMs)} ms ` +
      `(${fmtInt(result.ratePerS)}/s, ${result.errorCount} errors)`,
  );
  if (result.errorCount > 0 || result.ok !== keyCount) {
    throw new Error(
      `${label}: fill failed: ${result.ok} of ${keyCount} stored, errors ${JSON.stringify(result.errors)}`,
    );
  }
  return result;
}

/** GET /v0/status of a node as JSON, or null. */
function statusOf(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/v0/status', agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString()));
        } catch {
          resolve(null);
        }
      });
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const SETTLE_POLL_MS = 500;
const SETTLE_QUIET_POLLS = 6;
const SETTLE_MAX_MS = 60_000;

/**
 * Waits until the nodes' engines are quiet after a fill: no frozen memtable,
 * and no flush or compaction finished for SETTLE_QUIET_POLLS polls in a row
 * (3 s), at most SETTLE_MAX_MS. A search step that starts while the fill's
 * compactions still run measures them, not the requests.
 */
export async function settle(ports, label) {
  const start = Date.now();
  let last = '';
  let quiet = 0;
  while (Date.now() - start < SETTLE_MAX_MS) {
    const states = await Promise.all(ports.map(statusOf));
    const engines = states.map((st) => st?.store?.engine ?? st?.engine ?? null);
    const now = JSON.stringify(engines.map((e) => [e?.flushes, e?.compactions, e?.immutableMemtables]));
    const idle = engines.every((e) => e !== null && e.immutableMemtables === 0);
    quiet = idle && now === last ? quiet + 1 : 0;
    last = now;
    if (quiet >= SETTLE_QUIET_POLLS) {
      log(`${label}: engines quiet after ${fmtInt(Date.now() - start)} ms`);
      return;
    }
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
  }
  log(`${label}: engines still busy after ${fmtInt(SETTLE_MAX_MS)} ms; measuring anyway`);
}

/** One markdown cell for a search: "12,345/s (p99 4.1 ms)", plus server CPU per request when measured. */
export function searchCell(search) {
  if (!search) return 'n/a';
  if (!search.best) return `none passed (from ${fmtInt(search.steps[0]?.rate)}/s)`;
  const rates = search.best.statusRates;
  const cpu = rates?.cpuMicrosPerRequest;
  const cpuText = cpu == null ? '' : `, server CPU ${fmtInt(cpu)} µs/request`;
  const writes = rates?.writeSyscallsPerRequest;
  const writesText = writes == null ? '' : `, ${writes.toFixed(1)} write calls/request`;
  return `${fmtInt(search.maxRate)}/s (p99 ${fmtMs(search.best.latency.p99Ms)} ms${cpuText}${writesText})`;
}

/**
 * Checks that a filled store still holds the first key after a restart: a
 * node that lost its data would otherwise turn a GET search into a column of
 * 404 errors with no word of why.
 */
export async function expectFilled(port, label, querySuffix = '') {
  const path = `/v0/entity?id=${keyString('k', 0)}${querySuffix}`;
  const status = await new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(null));
  });
  if (status !== 200) {
    throw new Error(
      `${label}: GET ${path} answered ${status} after the fill: the node did not keep its data`,
    );
  }
}
