/**
 * Cluster benchmark: a local cluster (`ringkv cluster --nodes 3`), requests
 * with `&ack=2&from=3` spread over all nodes (connection i goes to node
 * i mod N), the same open-loop rate search as the server benchmark, for GET
 * and PUT on a store filled beforehand.
 *
 * It runs once per internode transport (BENCH_CLUSTER_INTERNODE): `binary`
 * is the default protocol; `http` starts the cluster with RINGKV_INTERNODE=http
 * in its environment, which makes the nodes talk plain HTTP to each other, so
 * the binary protocol's gain is measured rather than assumed.
 *
 * Per transport: start the cluster, fill K keys, wait until every
 * engine is quiet (common.mjs settle), search GET, search PUT
 * (overwriting the same keyspace), stop the cluster.
 *
 * Before the clusters start it measures what one loopback TCP message costs
 * this machine (loopback-cost.mjs), so that each request's CPU and system
 * calls can be read against that floor in the same run.
 *
 * With the binary protocol, after each search, the tails at fixed fractions
 * of its breaking point (tails.mjs): latency percentiles, event-loop delay
 * and GC pauses per node, CPU per request. BENCH_CLUSTER_BREAK_GET / _PUT
 * give a breaking point instead of searching it (two builds compared at the
 * same rates); BENCH_CLUSTER_OPS picks the request kinds.
 *
 * Beside those tails (BENCH_CLUSTER_CEILING=1, the default), the ceiling
 * cluster (load/ceiling-cluster.mjs: the same messages between as many
 * processes, nothing else), filled alike, takes a window at the same rate
 * beside each of ringkv's (after it in odd rounds, before it in even ones):
 * the spread of latencies the machine gives a request with no work in it.
 *
 * Then (BENCH_CLUSTER_RESTART=1, the default) the rolling restart of
 * restart-bench.mjs, at half the breaking points the binary protocol's
 * searches found.
 */
import path from 'node:path';
import { measureLoopbackCost } from '../lib/loopback-cost.mjs';
import { makeTempDir, removeTempDir } from '../lib/procs.mjs';
import { envFlag, envInt, envList, envNumber, envNumberList, envString } from '../lib/settings.mjs';
import { fmtInt, fmtPercent, log, mdTable, ratio } from '../lib/stats.mjs';
import { rateSearch, runLoad } from '../load/driver.mjs';
import {
  CPU_STATUS_FIELDS,
  expectFilled,
  fill,
  loadSettings,
  requestConfig,
  searchCell,
  settle,
  WRITE_STATUS_FIELDS,
} from './common.mjs';
import { runRestartBench } from './restart-bench.mjs';
import { runTails, tailsTable } from './tails.mjs';
import { startCeilingCluster, startCluster } from './targets.mjs';

const TRANSPORTS = ['binary', 'http'];
const OPS = ['get', 'put'];

/** The loopback floor of this run, and how many messages a request is (for the default query only). */
function floorText(loopback, { nodes, ack, from, querySuffix }) {
  const text =
    `The floor, measured at the start of this run: one 64-byte message over loopback TCP between two ` +
    `processes (a write on one side, a wake-up and a read on the other) cost ` +
    `${loopback.cpuMicrosPerMessage.toFixed(1)} µs of CPU, ${fmtPercent(loopback.systemShare)} of it in the kernel ` +
    `(the median of ${loopback.trials.length} exchanges; round trip ${loopback.roundTripMicros.toFixed(1)} µs). ` +
    `"write calls/request" counts the nodes' write system calls (sockets and WAL) per request.`;
  if (querySuffix !== `&ack=${ack}&from=${from}` || from > nodes || ack < 1) return text;
  // Sent when nothing batches: request and answer, plus a frame out and one back per remote replica asked.
  const putMessages = 2 + 2 * (from - 1);
  const getMessages = 2 + 2 * (ack - 1);
  return (
    `${text} When nothing batches them, a PUT with ack=${ack}&from=${from} is ${putMessages} messages (the ` +
    `client's request and answer, and a frame out and one back for each of the other ${from - 1} replicas) ` +
    `and a GET ${getMessages} (it asks ${ack} replicas, the coordinator's own copy first).`
  );
}

/** The tails section: how the rows were measured, then the table. */
function tailsText(tails, settings, rounds, warmupMs, ceilingSync) {
  const sources = [...new Set(tails.map((t) => t.op))].map((op) => {
    const t = tails.find((x) => x.op === op);
    return `${op.toUpperCase()} ${fmtInt(t.breakingPoint)}/s (${t.given ? 'given' : "this run's search"})`;
  });
  return [
    `Constant rates at fixed fractions of the breaking point (${sources.join(', ')}), binary protocol, ` +
      `${rounds} window(s) of ${settings.windowMs / 1000} s per rate, taken round robin` +
      (warmupMs > 0
        ? ` after ${warmupMs / 1000} s of load at the middle fraction, not measured (without it, the first window ` +
          `after the fill measured the request path's code being compiled)`
        : '') +
      `; each figure is the median ` +
      `over its windows (p99/p50 the median of each window's own ratio). Per node, from the difference of its ` +
      `/metrics histograms over each window (read from 300 ms before it, per second of that time): the p99 of the requests it coordinated, timed inside it from the ` +
      `head read to the answer written (interpolated in buckets of 1, 2.5, 5 and 10 ms), ` +
      `the event loop's delay p99 (how late a 10 ms timer ran), the p99 ` +
      `of its GC pauses of any kind, major GCs per second and the share of time in GC pauses. CPU: the ` +
      `nodes' CPU over the window per request answered, and as a multiple of one loopback message.` +
      (tails.some((t) => t.s.ceiling !== null)
        ? ` Last column: beside each window, one at the same rate against the ceiling cluster ` +
          `(bench/load/ceiling-cluster.mjs: as many processes, each a node:http server over a Map, exchanging ` +
          `the same frames over loopback TCP with no storage engine` +
          (ceilingSync
            ? `; each copy of a write made durable as ringkv's are with --sync on, by one O_DSYNC write() to a ` +
              `zero-filled log with group commit, and counted only then`
            : `; writes kept in memory only`) +
          `), after ringkv's in odd rounds and before it in even ` +
          `ones, medians over its windows alike; the ringkv nodes stay up meanwhile, without requests (their ` +
          `background work, a flush after PUTs for one, may run).`
        : ''),
    '',
    tailsTable(tails),
  ].join('\n');
}

export async function runClusterBench() {
  const settings = loadSettings();
  const nodes = envInt('BENCH_CLUSTER_NODES', 3, { min: 1 });
  const ack = envInt('BENCH_CLUSTER_ACK', 2, { min: 1 });
  const from = envInt('BENCH_CLUSTER_FROM', 3, { min: 1 });
  const keyCount = envInt('BENCH_CLUSTER_KEYS', 100000, { min: 1 });
  const queryRaw = envString('BENCH_CLUSTER_QUERY', `&ack=${ack}&from=${from}`);
  const querySuffix = queryRaw === 'none' ? '' : queryRaw;
  const transports = envList('BENCH_CLUSTER_INTERNODE', TRANSPORTS, TRANSPORTS);
  const withRestart = envFlag('BENCH_CLUSTER_RESTART', true);
  const ops = envList('BENCH_CLUSTER_OPS', OPS, OPS);
  const fractions = envNumberList('BENCH_CLUSTER_FRACTIONS', [0.25, 0.5, 0.75]);
  const tailRounds = envInt('BENCH_CLUSTER_FRACTION_ROUNDS', 3, { min: 1 });
  const withCeiling = envFlag('BENCH_CLUSTER_CEILING', true);
  // The ceiling's copies made durable, as ringkv's are with --sync on (its default, and the bench's).
  const ceilingSync = envFlag('BENCH_CLUSTER_CEILING_SYNC', true);
  const tailsWarmupMs = Math.round(envNumber('BENCH_CLUSTER_TAILS_WARMUP_S', 10, { min: 0 }) * 1000);
  const givenBreak = {
    get: envInt('BENCH_CLUSTER_BREAK_GET', 0, { min: 0 }),
    put: envInt('BENCH_CLUSTER_BREAK_PUT', 0, { min: 0 }),
  };
  const tails = [];
  const work = makeTempDir('cluster');
  const results = {};
  const errors = {};
  log(
    `cluster: nodes=${nodes} query=${querySuffix || '(none)'} keys=${fmtInt(keyCount)} ` +
      `transports=${transports.join(',')} window=${settings.windowMs} ms`,
  );
  let loopback = null;
  try {
    loopback = await measureLoopbackCost();
    log(
      `cluster: one loopback message costs ${loopback.cpuMicrosPerMessage.toFixed(1)} µs of CPU ` +
        `(${fmtPercent(loopback.systemShare)} in the kernel), round trip ${loopback.roundTripMicros.toFixed(1)} µs`,
    );
  } catch (err) {
    // The floor is context for the figures, not one of them: the cluster is measured anyway.
    errors.loopback = err instanceof Error ? err.message : String(err);
    log(`cluster: loopback floor not measured: ${errors.loopback}`);
  }
  try {
    for (const transport of transports) {
      const dir = path.join(work, transport);
      const env = { RINGKV_INTERNODE: transport === 'http' ? 'http' : undefined };
      let cluster = null;
      let ceiling = null;
      try {
        if (withCeiling && transport === 'binary' && fractions.length > 0) {
          // Context for ringkv's tails, not one of its figures: if it fails, ringkv is measured anyway.
          try {
            ceiling = await startCeilingCluster({
              nodes,
              logFile: path.join(work, 'ceiling.log'),
              logDir: ceilingSync ? path.join(work, 'ceiling-logs') : undefined,
            });
            const label = 'ceiling cluster';
            await fill(settings, { ports: ceiling.ports, keyCount, querySuffix, label, runLoad });
          } catch (err) {
            errors.ceiling = err instanceof Error ? err.message : String(err);
            log(`cluster: ceiling cluster not measured: ${errors.ceiling}`);
            await ceiling?.stop().catch(() => {});
            ceiling = null;
          }
        }
        cluster = await startCluster({ dir, nodes, env, logFile: path.join(work, `${transport}.log`) });
        const ports = cluster.ports;
        const label = `cluster(${transport})`;
        await fill(settings, { ports, keyCount, querySuffix, label, runLoad });
        for (const port of ports) await expectFilled(port, `${label} node :${port}`, querySuffix);
        await settle(ports, label);
        const searches = { ports };
        for (const op of ops) {
          const search =
            givenBreak[op] > 0 && transport === 'binary'
              ? null
              : await rateSearch(
                  `${label} ${op.toUpperCase()}`,
                  requestConfig(settings, { op, ports, keyCount, querySuffix, statusPorts: ports }),
                  settings.search,
                  op === 'put' ? WRITE_STATUS_FIELDS : CPU_STATUS_FIELDS,
                );
          if (search !== null) searches[op] = search;
          const breakingPoint = givenBreak[op] > 0 ? givenBreak[op] : (search?.maxRate ?? 0);
          if (transport !== 'binary' || fractions.length === 0 || breakingPoint <= 0) continue;
          const summaries = await runTails(`${label} ${op.toUpperCase()} tails`, {
            settings,
            op,
            ports,
            keyCount,
            querySuffix,
            breakingPoint,
            fractions,
            rounds: tailRounds,
            loopback,
            ceilingPorts: ceiling?.ports,
            warmupMs: tailsWarmupMs,
          });
          for (const s of summaries) tails.push({ op, breakingPoint, given: givenBreak[op] > 0, s });
        }
        results[transport] = searches;
      } catch (err) {
        errors[transport] = err instanceof Error ? err.message : String(err);
        log(`cluster (${transport}) failed: ${errors[transport]}`);
      } finally {
        for (const [name, target] of [
          [transport, cluster],
          ['ceiling', ceiling],
        ]) {
          if (target === null) continue;
          try {
            await target.stop();
          } catch (err) {
            errors[`${name}-stop`] = err instanceof Error ? err.message : String(err);
          }
        }
        removeTempDir(dir);
      }
    }
  } finally {
    removeTempDir(work);
  }

  let restart = null;
  if (withRestart) {
    // Half of each breaking point the binary protocol's searches found; the restart bench's defaults where none.
    const half = (search) => (search?.maxRate > 0 ? search.maxRate / 2 : undefined);
    const binary = results.binary;
    try {
      restart = await runRestartBench(
        binary === undefined
          ? {}
          : {
              rates: { put: half(binary.put), get: half(binary.get) },
              rateSource: "half of the breaking point this run's binary-protocol search found",
            },
      );
      if (restart.failed) errors.restart = 'see the rolling restart section';
    } catch (err) {
      errors.restart = err instanceof Error ? err.message : String(err);
      log(`cluster: rolling restart failed: ${errors.restart}`);
    }
  }

  const gain = {
    get: ratio(results.binary?.get?.maxRate, results.http?.get?.maxRate),
    put: ratio(results.binary?.put?.maxRate, results.http?.put?.maxRate),
  };
  const rows = transports.map((t) => [
    t === 'http' ? 'plain HTTP (RINGKV_INTERNODE=http)' : 'binary protocol',
    searchCell(results[t]?.get),
    searchCell(results[t]?.put),
  ]);
  const markdown = [
    `${nodes}-node local cluster (\`ringkv cluster --nodes ${nodes}\`), requests \`${querySuffix || '(no ack/from)'}\` ` +
      `spread over every node, ${settings.connections} connections, open loop, highest rate with ` +
      `p99 <= ${settings.search.p99Ms} ms and no errors in most of ${settings.search.trials} windows of ${settings.windowMs / 1000} s per rate, ` +
      `${fmtInt(keyCount)} keys filled beforehand, ${settings.valueBytes}-byte values.`,
    '',
    mdTable(['internode transport', 'GET', 'PUT'], rows),
    '',
    `Binary protocol / plain HTTP: GET ${fmtPercent(gain.get)}, PUT ${fmtPercent(gain.put)}.`,
    ...(loopback === null ? [] : ['', floorText(loopback, { nodes, ack, from, querySuffix })]),
    ...(tails.length === 0
      ? []
      : [
          '',
          '### Tails at fixed loads',
          '',
          tailsText(tails, settings, tailRounds, tailsWarmupMs, ceilingSync),
        ]),
    ...(restart === null ? [] : ['', '### Rolling restart', '', restart.markdown]),
    ...Object.entries(errors).map(([k, v]) => `\n**${k} failed**: ${v.split('\n')[0]}`),
  ].join('\n');
  return {
    figures: {
      settings: {
        ...settings,
        nodes,
        querySuffix,
        keyCount,
        transports,
        ops,
        fractions,
        tailRounds,
        withCeiling,
        tailsWarmupMs,
        givenBreak,
      },
      loopback,
      results,
      tails,
      gain,
      restart: restart?.figures ?? null,
      errors,
    },
    markdown,
    failed: Object.keys(errors).length > 0,
  };
}
