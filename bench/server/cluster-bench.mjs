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
 * Then (BENCH_CLUSTER_RESTART=1, the default) the rolling restart of
 * restart-bench.mjs, at half the breaking points the binary protocol's
 * searches found.
 */
import path from 'node:path';
import { measureLoopbackCost } from '../lib/loopback-cost.mjs';
import { makeTempDir, removeTempDir } from '../lib/procs.mjs';
import { envInt, envList, envString } from '../lib/settings.mjs';
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
import { startCluster } from './targets.mjs';

const TRANSPORTS = ['binary', 'http'];

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

export async function runClusterBench() {
  const settings = loadSettings();
  const nodes = envInt('BENCH_CLUSTER_NODES', 3, { min: 1 });
  const ack = envInt('BENCH_CLUSTER_ACK', 2, { min: 1 });
  const from = envInt('BENCH_CLUSTER_FROM', 3, { min: 1 });
  const keyCount = envInt('BENCH_CLUSTER_KEYS', 100000, { min: 1 });
  const queryRaw = envString('BENCH_CLUSTER_QUERY', `&ack=${ack}&from=${from}`);
  const querySuffix = queryRaw === 'none' ? '' : queryRaw;
  const transports = envList('BENCH_CLUSTER_INTERNODE', TRANSPORTS, TRANSPORTS);
  const withRestart = envInt('BENCH_CLUSTER_RESTART', 1, { min: 0 }) === 1;
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
      try {
        cluster = await startCluster({ dir, nodes, env, logFile: path.join(work, `${transport}.log`) });
        const ports = cluster.ports;
        const label = `cluster(${transport})`;
        await fill(settings, { ports, keyCount, querySuffix, label, runLoad });
        for (const port of ports) await expectFilled(port, `${label} node :${port}`, querySuffix);
        await settle(ports, label);
        const get = await rateSearch(
          `${label} GET`,
          requestConfig(settings, { op: 'get', ports, keyCount, querySuffix, statusPorts: ports }),
          settings.search,
          CPU_STATUS_FIELDS,
        );
        const put = await rateSearch(
          `${label} PUT`,
          requestConfig(settings, { op: 'put', ports, keyCount, querySuffix, statusPorts: ports }),
          settings.search,
          WRITE_STATUS_FIELDS,
        );
        results[transport] = { ports, get, put };
      } catch (err) {
        errors[transport] = err instanceof Error ? err.message : String(err);
        log(`cluster (${transport}) failed: ${errors[transport]}`);
      } finally {
        if (cluster !== null) {
          try {
            await cluster.stop();
          } catch (err) {
            errors[`${transport}-stop`] = err instanceof Error ? err.message : String(err);
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
    get: ratio(results.binary?.get.maxRate, results.http?.get.maxRate),
    put: ratio(results.binary?.put.maxRate, results.http?.put.maxRate),
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
    ...(restart === null ? [] : ['', '### Rolling restart', '', restart.markdown]),
    ...Object.entries(errors).map(([k, v]) => `\n**${k} failed**: ${v.split('\n')[0]}`),
  ].join('\n');
  return {
    figures: {
      settings: { ...settings, nodes, querySuffix, keyCount, transports },
      loopback,
      results,
      gain,
      restart: restart?.figures ?? null,
      errors,
    },
    markdown,
    failed: Object.keys(errors).length > 0,
  };
}
