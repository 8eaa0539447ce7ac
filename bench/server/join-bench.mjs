/**
 * Join: a fourth node joins a loaded 3-node cluster. Three `ringkv serve`
 * processes are filled with BENCH_JOIN_KEYS keys (1,000,000 by default, of
 * BENCH_VALUE_BYTES) at `ack=2&from=3`, so every node holds every key; then
 * open-loop PUT and GET load at constant rates through the three nodes, and
 * after BENCH_JOIN_STEADY_S a fourth node starts with `--join`. It streams
 * its share of the keys (3 of every 4 replicas: about three quarters of the
 * keys, each from all three current replicas) and the ring flips.
 *
 * Measured: the time from the new node's start to the flip, the streaming
 * time, keys and bytes it received and its MB/s (its /v0/status
 * `store.membership.receiving`), and client latency (from when each request
 * was due) before the join, during it (start to flip) and after it.
 * Nodes run with `--sync off` (BENCH_JOIN_SYNC) so that the fill of a
 * million keys takes minutes, not a quarter of an hour.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  fetchStatusJson,
  freePorts,
  logTail,
  makeTempDir,
  removeTempDir,
  startNode,
  stopChild,
} from '../lib/procs.mjs';
import { envChoice, envInt, envNumber } from '../lib/settings.mjs';
import { fmtInt, log, mdTable } from '../lib/stats.mjs';
import { runLoad, startLoadRun } from '../load/driver.mjs';
import { fill, loadSettings, requestConfig, settle } from './common.mjs';
import { WINDOW_COLUMNS, waitNodeReady, windowFigures, windowRow } from './restart-bench.mjs';
import { extraFlags, ringkvBin } from './targets.mjs';

const SLOT_MS = 100;
const JOIN_MAX_MS = 30 * 60 * 1000;
const QUERY = '&ack=2&from=3';

function joinSettings() {
  return {
    keyCount: envInt('BENCH_JOIN_KEYS', 1_000_000, { min: 1 }),
    steadyMs: Math.round(envNumber('BENCH_JOIN_STEADY_S', 10, { min: 1 }) * 1000),
    putRate: envInt('BENCH_JOIN_PUT_RATE', 300, { min: 1 }),
    getRate: envInt('BENCH_JOIN_GET_RATE', 1500, { min: 1 }),
    sync: envChoice('BENCH_JOIN_SYNC', 'off', ['on', 'off']),
  };
}

/** `ringkv serve` for node i of the work dir; `cluster` or `join` decides how it enters. */
function serve(work, port, i, entry, sync) {
  const args = ['serve', '--url', `http://127.0.0.1:${port}`, '--data', path.join(work, `node-${i}`)];
  args.push(...entry, '--sync', sync, ...extraFlags());
  const node = { index: i, port, child: null };
  node.child = startNode(ringkvBin(), args, { logFile: path.join(work, `node-${i}.log`) });
  return node;
}

/** Polls the new node until the move is complete; its last streaming progress and when the flip was seen. */
async function waitFlip(node) {
  const deadline = Date.now() + JOIN_MAX_MS;
  let receiving = null;
  while (Date.now() < deadline) {
    if (node.child.exitCode !== null)
      throw new Error(`the joining node exited:\n${logTail(node.child.logFile)}`);
    const status = await fetchStatusJson(node.port);
    const membership = status?.store?.membership;
    if (membership?.receiving) receiving = membership.receiving;
    const self = membership?.members?.find((m) => m.url === `http://127.0.0.1:${node.port}`);
    if (membership?.move === null && self?.state === 'normal')
      return { flipAt: Date.now(), receiving, membership };
    await sleep(100);
  }
  throw new Error(`the join did not complete within ${JOIN_MAX_MS} ms`);
}

export async function runJoinBench() {
  const settings = loadSettings();
  const js = joinSettings();
  const work = makeTempDir('join');
  const nodes = [];
  const figures = { settings: { ...settings, join: js } };
  let failure = null;
  try {
    const ports = await freePorts(4);
    const urls = ports.slice(0, 3).map((p) => `http://127.0.0.1:${p}`);
    for (let i = 0; i < 3; i++) nodes.push(serve(work, ports[i], i, ['--cluster', urls.join(',')], js.sync));
    for (const node of nodes) await waitNodeReady(node);
    const label = 'join cluster';
    const filled = await fill(settings, {
      ports: ports.slice(0, 3),
      keyCount: js.keyCount,
      querySuffix: QUERY,
      label,
      runLoad,
    });
    figures.fill = { ms: filled.elapsedMs, ratePerS: filled.ratePerS };
    await settle(ports.slice(0, 3), label);
    const load = (op, rate) =>
      startLoadRun({
        ...requestConfig(settings, {
          op,
          ports: ports.slice(0, 3),
          keyCount: js.keyCount,
          querySuffix: QUERY,
        }),
        rate,
        durationMs: JOIN_MAX_MS,
        timelineMs: SLOT_MS,
        failover: true,
      });
    const runs = { put: load('put', js.putRate), get: load('get', js.getRate) };
    let joinAt = 0;
    let flip = null;
    try {
      await sleep(settings.warmupMs + js.steadyMs);
      joinAt = Date.now();
      log(`${label}: node 3 joins`);
      const joining = serve(work, ports[3], 3, ['--join', urls[0]], js.sync);
      nodes.push(joining);
      flip = await waitFlip(joining);
      log(`${label}: flipped ${fmtInt(flip.flipAt - joinAt)} ms after the join started`);
      await sleep(js.steadyMs);
    } finally {
      runs.put.stop();
      runs.get.stop();
    }
    const results = { put: await runs.put.result, get: await runs.get.result };
    const r = flip.receiving;
    // The last poll before the flip may predate the end of streaming (status drops it at the flip):
    // then the flip bounds it from above.
    const streamMs = (r.doneAtMs ?? flip.flipAt) - r.startedAtMs;
    figures.join = {
      joinToFlipMs: flip.flipAt - joinAt,
      streamMs,
      streamEndSeen: r.doneAtMs !== undefined,
      keysReceived: r.keys,
      bytesReceived: r.bytes,
      mbPerS: r.bytes / 1e6 / (streamMs / 1000),
      ranges: r.ranges,
      transfers: r.transfers,
      shares: flip.membership.members.map((m) => ({ url: m.url, share: m.share })),
    };
    figures.windows = {};
    for (const op of ['put', 'get']) {
      const result = results[op];
      const begin = result.measureStartEpochMs;
      const slot = (epochMs) => Math.max(0, Math.round((epochMs - begin) / SLOT_MS));
      figures.windows[op] = [
        { label: `${op.toUpperCase()} before the join`, ...windowFigures(result, 0, slot(joinAt)) },
        {
          label: `${op.toUpperCase()} during the join`,
          ...windowFigures(result, slot(joinAt), slot(flip.flipAt)),
        },
        {
          label: `${op.toUpperCase()} after the flip`,
          ...windowFigures(result, slot(flip.flipAt), result.timeline.slots.length),
        },
      ].map(({ histogram: _h, ...w }) => w);
    }
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
    log(`join failed: ${failure}`);
  } finally {
    await Promise.all(nodes.map((n) => stopChild(n.child, 15000).catch(() => undefined)));
    removeTempDir(work);
  }
  if (failure !== null) {
    return {
      figures: { ...figures, error: failure },
      markdown: `**join failed**: ${failure.split('\n')[0]}`,
      failed: true,
    };
  }
  const j = figures.join;
  const markdown = [
    `Join: 3 \`ringkv serve\` processes (\`--sync ${js.sync}\`) filled with ${fmtInt(js.keyCount)} keys of ` +
      `${settings.valueBytes} bytes at \`${QUERY.slice(1)}\` (in ${fmtInt(figures.fill.ms / 1000)} s); open-loop PUT at ` +
      `${fmtInt(js.putRate)}/s and GET at ${fmtInt(js.getRate)}/s through the three; after ${js.steadyMs / 1000} s a fourth ` +
      `node starts with \`--join\`, streams its share (three quarters of the keys, each from all three replicas) ` +
      `and the ring flips; then ${js.steadyMs / 1000} s more. Latency from when each request was due.`,
    '',
    `**Streaming**: ${fmtInt(j.keysReceived)} entries, ${(j.bytesReceived / 1e6).toFixed(1)} MB in ` +
      `${j.streamEndSeen ? '' : 'at most '}${(j.streamMs / 1000).toFixed(1)} s: **${j.streamEndSeen ? '' : 'at least '}${j.mbPerS.toFixed(1)} MB/s**; start to flip ${(j.joinToFlipMs / 1000).toFixed(1)} s. ` +
      `Shares after: ${j.shares.map((s) => `${(s.share * 100).toFixed(1)}%`).join(', ')}.`,
    '',
    mdTable(WINDOW_COLUMNS, [...figures.windows.put, ...figures.windows.get].map(windowRow)),
  ].join('\n');
  return { figures, markdown, failed: false };
}
