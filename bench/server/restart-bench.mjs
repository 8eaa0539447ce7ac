/**
 * Rolling restart: a 3-node cluster of `ringkv serve` processes (each its
 * own process, so that one can be stopped and started), open-loop load at a
 * constant rate through every node with `&ack=2&from=3`, and each node in
 * turn stopped with SIGTERM, started again and waited for
 * (`/v0/health?ready=1`), with steady load between the restarts.
 *
 * The rate is half the cluster's breaking point: half of what this run's
 * rate search found (the cluster bench passes it in, or BENCH_RESTART_SEARCH=1
 * searches these nodes first), else BENCH_RESTART_PUT_RATE and
 * BENCH_RESTART_GET_RATE.
 *
 * The load generator acts as a client that knows every node (loadgen.mjs,
 * `failover`): a connection whose node refuses it or answers the leaving 503
 * with `Connection: close` sends the request to the next node, due when it
 * was, so the detour is in its latency. Failovers are counted apart from
 * errors. Latencies and errors are kept per 100 ms slot of due time and cut
 * into windows: steady (before the first restart, and between restarts),
 * restart (from the signal until the node is ready again), and rejoin (the
 * first BENCH_RESTART_REJOIN_S after it is ready).
 */
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  fetchStatusJson,
  freePorts,
  logTail,
  makeTempDir,
  removeTempDir,
  signalChild,
  startNode,
  stopChild,
} from '../lib/procs.mjs';
import { envFlag, envInt, envList, envNumber } from '../lib/settings.mjs';
import { fmtInt, fmtMs, log, mdTable } from '../lib/stats.mjs';
import { rateSearch, runLoad, startLoadRun } from '../load/driver.mjs';
import { Histogram } from '../load/histogram.mjs';
import {
  CPU_STATUS_FIELDS,
  expectFilled,
  fill,
  loadSettings,
  requestConfig,
  settle,
  WRITE_STATUS_FIELDS,
} from './common.mjs';
import { extraFlags, ringkvBin } from './targets.mjs';

const NODES = 3;
const SLOT_MS = 100;
const READY_TIMEOUT_MS = 60_000;
/** The longest a pass may run, whatever happens (its load generator's window is cut short by stop()). */
const PASS_MAX_MS = 600_000;

function restartSettings() {
  const ack = envInt('BENCH_CLUSTER_ACK', 2, { min: 1 });
  const from = envInt('BENCH_CLUSTER_FROM', 3, { min: 1 });
  return {
    keyCount: envInt('BENCH_RESTART_KEYS', 20000, { min: 1 }),
    ops: envList('BENCH_RESTART_OPS', ['put', 'get'], ['put', 'get']),
    steadyMs: Math.round(envNumber('BENCH_RESTART_STEADY_S', 5, { min: 0.5 }) * 1000),
    rejoinMs: Math.round(envNumber('BENCH_RESTART_REJOIN_S', 1, { min: 0 }) * 1000),
    search: envFlag('BENCH_RESTART_SEARCH', false),
    defaultRates: {
      put: envInt('BENCH_RESTART_PUT_RATE', 750, { min: 1 }),
      get: envInt('BENCH_RESTART_GET_RATE', 3000, { min: 1 }),
    },
    signal: envList('BENCH_RESTART_SIGNAL', ['SIGTERM'], ['SIGTERM', 'SIGKILL'])[0],
    querySuffix: `&ack=${ack}&from=${from}`,
  };
}

function getText(port, pathName) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve(null));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * Waits until the node answers /v0/health?ready=1 with 200 (polled every
 * 10 ms). A build without /v0/health (400 or 404) is waited for on
 * /v0/status instead; the result says which.
 */
export async function waitNodeReady(node) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const { child } = node;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`node :${node.port} exited before it was ready:\n${logTail(child.logFile)}`);
    }
    const health = await getText(node.port, '/v0/health?ready=1');
    if (health?.status === 200) return 'health';
    if (health?.status === 400 || health?.status === 404) {
      if ((await fetchStatusJson(node.port)) !== null) return 'status';
    }
    await sleep(10);
  }
  throw new Error(
    `node :${node.port} not ready within ${READY_TIMEOUT_MS} ms:\n${logTail(node.child.logFile)}`,
  );
}

/** Three `ringkv serve` processes with one --cluster list; each can be stopped and started again. */
async function startNodes(work, env = {}) {
  const ports = await freePorts(NODES);
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const nodes = ports.map((port, i) => ({
    index: i,
    port,
    dir: path.join(work, `node-${i}`),
    logFile: path.join(work, `node-${i}.log`),
    child: null,
  }));
  const start = (node) => {
    const args = [
      'serve',
      '--url',
      urls[node.index],
      '--data',
      node.dir,
      '--cluster',
      urls.join(','),
      ...extraFlags(),
    ];
    node.child = startNode(ringkvBin(), args, { env, logFile: node.logFile });
  };
  for (const node of nodes) start(node);
  for (const node of nodes) await waitNodeReady(node);
  return {
    nodes,
    ports,
    /** Starts node i again on its port and directory and waits until it is ready. */
    async restart(node) {
      start(node);
      return waitNodeReady(node);
    },
    async stopAll() {
      await Promise.all(nodes.map((n) => (n.child === null ? null : stopChild(n.child, 15000))));
    },
  };
}

/** Stops a node with `signal`; resolves with its exit once it is gone (SIGKILL after 15 s). */
async function stopNode(node, signal) {
  if (signal === 'SIGTERM') return stopChild(node.child, 15000);
  signalChild(node.child, signal);
  return node.child.exited;
}

function sumErrors(target, errors) {
  for (const [k, v] of Object.entries(errors)) {
    if (k === 'status') {
      for (const [code, n] of Object.entries(v)) target.status[code] = (target.status[code] ?? 0) + n;
    } else target[k] = (target[k] ?? 0) + v;
  }
  return target;
}

function errorTotal(errors) {
  let n = 0;
  for (const [k, v] of Object.entries(errors))
    n += k === 'status' ? Object.values(v).reduce((a, b) => a + b, 0) : v;
  return n;
}

/** Figures of timeline slots [fromSlot, toSlot). */
export function windowFigures(result, fromSlot, toSlot) {
  const { slotMs, slots } = result.timeline;
  const chosen = slots.slice(fromSlot, Math.max(fromSlot, toSlot));
  const errors = { status: {} };
  const failovers = { refused: 0, leaving: 0 };
  let ok = 0;
  for (const s of chosen) {
    ok += s.ok;
    sumErrors(errors, s.errors);
    failovers.refused += s.failovers.refused;
    failovers.leaving += s.failovers.leaving;
  }
  const hist = Histogram.merge(chosen.map((s) => s.histogram));
  return {
    slots: chosen.length,
    lengthMs: chosen.length * slotMs,
    ok,
    errors,
    errorCount: errorTotal(errors),
    failovers,
    latency: hist.summary(),
    histogram: hist.toJSON(),
  };
}

/**
 * Windows of one pass: steady, then for each restart: restart, rejoin,
 * steady. They are cut at slot boundaries, a restart window widened to the
 * whole slots that hold its signal and its ready moment.
 */
function cutWindows(result, restarts, rejoinMs) {
  const { slotMs, slots } = result.timeline;
  const begin = result.measureStartEpochMs;
  const slotAt = (epochMs, round) => Math.min(slots.length, Math.max(0, round((epochMs - begin) / slotMs)));
  const windows = [];
  let steadyFrom = 0;
  restarts.forEach((r, i) => {
    const down = Math.max(steadyFrom, slotAt(r.signalAt, Math.floor));
    const ready = Math.max(down, slotAt(r.readyAt, Math.ceil));
    const rejoined = Math.max(ready, slotAt(r.readyAt + rejoinMs, Math.ceil));
    windows.push({
      kind: 'steady',
      label: i === 0 ? 'steady, before' : `steady, after node ${restarts[i - 1].node}`,
      ...windowFigures(result, steadyFrom, down),
    });
    windows.push({
      kind: 'restart',
      label: `restart node ${r.node} (${r.signal} to ready)`,
      node: r.node,
      ...windowFigures(result, down, ready),
    });
    if (rejoinMs > 0) {
      windows.push({
        kind: 'rejoin',
        label: `node ${r.node} rejoined, first ${fmtMs(rejoinMs / 1000)} s`,
        node: r.node,
        ...windowFigures(result, ready, rejoined),
      });
    }
    steadyFrom = rejoined;
  });
  windows.push({
    kind: 'steady',
    label: `steady, after node ${restarts.at(-1)?.node ?? '-'}`,
    ...windowFigures(result, steadyFrom, slots.length),
  });
  return windows;
}

/** All windows of a kind together. */
function combine(windows, kind) {
  const chosen = windows.filter((w) => w.kind === kind);
  const errors = { status: {} };
  const failovers = { refused: 0, leaving: 0 };
  for (const w of chosen) {
    sumErrors(errors, w.errors);
    failovers.refused += w.failovers.refused;
    failovers.leaving += w.failovers.leaving;
  }
  const hist = Histogram.merge(chosen.map((w) => w.histogram));
  return {
    kind,
    label: `all ${kind} windows`,
    lengthMs: chosen.reduce((a, w) => a + w.lengthMs, 0),
    ok: chosen.reduce((a, w) => a + w.ok, 0),
    errors,
    errorCount: errorTotal(errors),
    failovers,
    latency: hist.summary(),
  };
}

function errorText(w) {
  if (w.errorCount === 0) return '0';
  const parts = [];
  for (const [k, v] of Object.entries(w.errors)) {
    if (k === 'status') for (const [code, n] of Object.entries(v)) parts.push(`${code} x${n}`);
    else if (v > 0) parts.push(`${k} x${v}`);
  }
  return `${w.errorCount} (${parts.join(', ')})`;
}

/** The columns of windowRow(). */
export const WINDOW_COLUMNS = [
  'window',
  'length',
  'answered',
  'errors',
  'failovers (refused / leaving)',
  'p50 ms',
  'p99 ms',
  'max ms',
];

export function windowRow(w) {
  const rate = w.lengthMs > 0 ? (w.ok / w.lengthMs) * 1000 : 0;
  return [
    w.label,
    `${(w.lengthMs / 1000).toFixed(1)} s`,
    `${fmtInt(w.ok)} (${fmtInt(rate)}/s)`,
    errorText(w),
    `${fmtInt(w.failovers.refused)} / ${fmtInt(w.failovers.leaving)}`,
    fmtMs(w.latency.p50Ms),
    fmtMs(w.latency.p99Ms),
    fmtMs(w.latency.maxMs),
  ];
}

/** One pass: load at `rate` while each node in turn is restarted. */
async function rollingPass(cluster, settings, rs, op, rate) {
  const label = `restart ${op.toUpperCase()} at ${fmtInt(rate)}/s`;
  const config = {
    ...requestConfig(settings, {
      op,
      ports: cluster.ports,
      keyCount: rs.keyCount,
      querySuffix: rs.querySuffix,
    }),
    rate,
    durationMs: PASS_MAX_MS,
    timelineMs: SLOT_MS,
    failover: true,
  };
  const run = startLoadRun(config);
  const restarts = [];
  let failure = null;
  try {
    await sleep(settings.warmupMs + rs.steadyMs);
    for (const node of cluster.nodes) {
      const signalAt = Date.now();
      const exit = await stopNode(node, rs.signal);
      const exitAt = Date.now();
      const readiness = await cluster.restart(node);
      const readyAt = Date.now();
      const r = {
        node: node.index,
        port: node.port,
        signal: rs.signal,
        exit,
        signalAt,
        exitAt,
        readyAt,
        readiness,
        exitMs: exitAt - signalAt,
        startMs: readyAt - exitAt,
      };
      restarts.push(r);
      log(
        `${label}: node ${node.index} ${rs.signal}: exited in ${fmtInt(r.exitMs)} ms (${JSON.stringify({ code: exit.code, signal: exit.signal })}), ready (${readiness}) ${fmtInt(r.startMs)} ms after`,
      );
      await sleep(rs.steadyMs);
    }
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  } finally {
    run.stop();
  }
  const result = await run.result;
  if (failure !== null) throw new Error(`${label}: ${failure}`);
  const windows = cutWindows(result, restarts, rs.rejoinMs);
  const totals = ['steady', 'restart', 'rejoin']
    .map((kind) => combine(windows, kind))
    .filter((w) => w.lengthMs > 0);
  const e = result.measured.errors;
  log(
    `${label}: ${fmtInt(result.measured.ok)} answered, ${result.measured.errorCount} errors, failovers ` +
      `${result.measured.failovers.refused} refused / ${result.measured.failovers.leaving} leaving; ` +
      totals
        .map((t) => `${t.kind} p50 ${fmtMs(t.latency.p50Ms)} p99 ${fmtMs(t.latency.p99Ms)} ms`)
        .join(', ') +
      (result.measured.errorCount ? ` (errors ${JSON.stringify(e)})` : ''),
  );
  // The per-slot timeline stays out of the results file: the windows carry its figures.
  const { timeline: _timeline, histogram: _histogram, status: _status, ...rest } = result;
  return {
    op,
    rate,
    restarts,
    windows: windows.map(({ histogram: _h, ...w }) => w),
    totals,
    load: rest,
  };
}

/**
 * The rolling-restart case. `rates` ({ put, get }, requests/s) and
 * `rateSource` come from the cluster bench's search when it runs this;
 * otherwise BENCH_RESTART_SEARCH or the BENCH_RESTART_*_RATE settings decide.
 */
export async function runRestartBench({ rates = null, rateSource = null } = {}) {
  const settings = loadSettings();
  const rs = restartSettings();
  const work = makeTempDir('restart');
  const passes = {};
  const errors = {};
  const notes = [];
  let chosen = null;
  let source = rateSource;
  let searches = null;
  let cluster = null;
  try {
    cluster = await startNodes(work);
    const label = 'restart cluster';
    await fill(settings, {
      ports: cluster.ports,
      keyCount: rs.keyCount,
      querySuffix: rs.querySuffix,
      label,
      runLoad,
    });
    for (const port of cluster.ports) await expectFilled(port, `${label} node :${port}`, rs.querySuffix);
    await settle(cluster.ports, label);
    if (rates !== null) {
      chosen = { ...rates };
    } else if (rs.search) {
      searches = {};
      chosen = {};
      for (const op of rs.ops) {
        searches[op] = await rateSearch(
          `${label} ${op.toUpperCase()}`,
          requestConfig(settings, {
            op,
            ports: cluster.ports,
            keyCount: rs.keyCount,
            querySuffix: rs.querySuffix,
            statusPorts: cluster.ports,
          }),
          settings.search,
          op === 'put' ? WRITE_STATUS_FIELDS : CPU_STATUS_FIELDS,
        );
        chosen[op] = searches[op].maxRate / 2;
      }
      source = "half of the breaking point found by this run's search on these nodes";
    } else {
      chosen = { put: rs.defaultRates.put, get: rs.defaultRates.get };
      source = 'BENCH_RESTART_PUT_RATE / BENCH_RESTART_GET_RATE (no search in this run)';
    }
    for (const op of rs.ops) {
      let rate = Math.round(chosen[op] ?? 0);
      if (!(rate > 0)) {
        rate = rs.defaultRates[op];
        notes.push(
          `${op.toUpperCase()}: no breaking point was found, so it ran at BENCH_RESTART_${op.toUpperCase()}_RATE (${fmtInt(rate)}/s).`,
        );
      }
      try {
        passes[op] = await rollingPass(cluster, settings, rs, op, rate);
      } catch (err) {
        errors[op] = err instanceof Error ? err.message : String(err);
        log(`restart (${op}) failed: ${errors[op]}`);
      }
    }
  } catch (err) {
    errors.setup = err instanceof Error ? err.message : String(err);
    log(`restart failed: ${errors.setup}`);
  } finally {
    if (cluster !== null) await cluster.stopAll().catch(() => undefined);
    removeTempDir(work);
  }

  const sections = [
    `Rolling restart: ${NODES} \`ringkv serve\` processes, open-loop load through every node with \`${rs.querySuffix}\`, ` +
      `${settings.connections} connections, ${fmtInt(rs.keyCount)} keys filled beforehand, ${settings.valueBytes}-byte values. ` +
      `After ${rs.steadyMs / 1000} s of steady load, each node in turn gets ${rs.signal}, is started again and waited for ` +
      `(\`/v0/health?ready=1\`), then ${rs.steadyMs / 1000} s of steady load. Rates: ${source}. ` +
      `The client fails over to the next node when a node refuses the connection or answers 503 with ` +
      `\`Connection: close\` ("failovers": refused / leaving; not errors); latency counts from when each request was due, ` +
      `detours included. Errors: any other answer than the expected one, connections closed without an answer, ` +
      `timeouts (${settings.timeoutMs} ms).`,
  ];
  for (const op of rs.ops) {
    const pass = passes[op];
    if (!pass) continue;
    sections.push(
      '',
      `**${op.toUpperCase()} at ${fmtInt(pass.rate)}/s**; nodes: ${pass.restarts
        .map(
          (r) =>
            `${r.node} exited ${fmtInt(r.exitMs)} ms after ${r.signal}, ready ${fmtInt(r.startMs)} ms after its start`,
        )
        .join('; ')}.`,
      '',
      mdTable(WINDOW_COLUMNS, [...pass.windows, ...pass.totals].filter((w) => w.lengthMs > 0).map(windowRow)),
    );
    const errorsSeen = pass.load.errorLog ?? [];
    if (errorsSeen.length > 0) {
      const nodeOf = (port) => pass.restarts.find((r) => r.port === port)?.node ?? `:${port}`;
      const at = (epochMs) => ((epochMs - pass.load.measureStartEpochMs) / 1000).toFixed(2);
      const shown = errorsSeen.slice(0, 10).map((e) => {
        const what =
          e.kind === 'status'
            ? `${e.status}${e.text ? ` "${e.text.slice(0, 120)}"` : ''}`
            : `${e.kind}${e.error ? ` ${e.error}` : ''}`;
        return `${what} from node ${nodeOf(e.port)} at ${(e.atMs / 1000).toFixed(2)} s`;
      });
      const more = errorsSeen.length > shown.length ? `; and ${errorsSeen.length - shown.length} more` : '';
      sections.push(
        '',
        `Errors, by time since the window began: ${shown.join('; ')}${more}. The restarts began at ` +
          `${pass.restarts.map((r) => `${at(r.signalAt)} s (node ${r.node}, ready at ${at(r.readyAt)} s)`).join(', ')}.`,
      );
    }
  }
  for (const note of notes) sections.push('', note);
  for (const [k, v] of Object.entries(errors)) sections.push('', `**${k} failed**: ${v.split('\n')[0]}`);
  return {
    figures: {
      settings: { ...settings, restart: rs },
      rates: chosen,
      rateSource: source,
      searches,
      passes,
      notes,
      errors,
    },
    markdown: sections.join('\n'),
    failed: Object.keys(errors).length > 0,
  };
}
