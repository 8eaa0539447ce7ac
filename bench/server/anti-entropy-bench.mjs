/**
 * Anti-entropy: what it costs when replicas agree, when they differ by N
 * keys, and how long a wiped replica takes to come back.
 *
 * Three `ringkv serve` processes (`--sync off`, `--anti-entropy-interval`
 * BENCH_AE_INTERVAL_MS, 5,000 by default) are filled with BENCH_AE_KEYS keys
 * at `ack=3&from=3`, so every node holds every key. Then:
 *
 * 1. Idle: no client traffic for BENCH_AE_IDLE_S (60 s) once every node has
 *    run a round; the CPU of the three processes (utime + stime from
 *    /proc/<pid>/stat) as a share of one core.
 * 2. Divergence, for each N of BENCH_AE_DIFFS (0,10,1000,100000): node 2
 *    stops; keys 0..N-1 are written again through nodes 0 and 1 (new
 *    versions, `ack=2&from=3`); nodes 0 and 1 stop and their hint
 *    directories are deleted, so that only anti-entropy can repair node 2;
 *    all three start again. Measured until node 2 has run a round in which
 *    every exchange was equal: the time, exchanges, bytes sent and received
 *    (request and answer bodies and entries copied, summed over the nodes'
 *    exchanges), keys copied, and entries read (the index and store entries
 *    exchanges read on both sides, store.antiEntropy.tree.entriesRead; a
 *    build without the tree reports keysDigested instead: keys its digest
 *    scans hashed, each of which read the whole store).
 * 3. Wipe (BENCH_AE_WIPE=1): node 2 stops, its data directory is deleted, it
 *    starts again; the time until it has run an all-equal round.
 * 4. Baseline (BENCH_AE_BASELINE=1): the three restart with
 *    `--anti-entropy-interval 0` and the idle CPU is measured again: what
 *    the processes cost with no anti-entropy at all (heartbeats, gossip).
 *
 * BENCH_RINGKV_BIN runs another build (an older commit built in a worktree)
 * with the same steps.
 */
import fs from 'node:fs';
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
import { envFlag, envInt, envNumber, envString } from '../lib/settings.mjs';
import { fmtInt, log, mdTable } from '../lib/stats.mjs';
import { runLoad } from '../load/driver.mjs';
import { fill, loadSettings, settle } from './common.mjs';
import { waitNodeReady } from './restart-bench.mjs';
import { extraFlags, ringkvBin } from './targets.mjs';

const CONVERGE_MAX_MS = 30 * 60 * 1000;
const POLL_MS = 250;
const CLOCK_TICKS_PER_S = 100;

function aeSettings() {
  return {
    keyCount: envInt('BENCH_AE_KEYS', 1_000_000, { min: 1 }),
    intervalMs: envInt('BENCH_AE_INTERVAL_MS', 5000, { min: 100 }),
    idleMs: Math.round(envNumber('BENCH_AE_IDLE_S', 60, { min: 1 }) * 1000),
    diffs: envString('BENCH_AE_DIFFS', '0,10,1000,100000')
      .split(',')
      .filter((s) => s.trim() !== '')
      .map((s) => Number.parseInt(s, 10)),
    wipe: envFlag('BENCH_AE_WIPE', true),
    baseline: envFlag('BENCH_AE_BASELINE', true),
  };
}

function serve(work, ports, i, intervalMs) {
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const args = [
    'serve',
    '--url',
    urls[i],
    '--data',
    path.join(work, `node-${i}`),
    '--cluster',
    urls.join(','),
  ];
  args.push('--sync', 'off', '--anti-entropy-interval', String(intervalMs));
  args.push(...extraFlags());
  const child = startNode(ringkvBin(), args, { logFile: path.join(work, `node-${i}.log`) });
  return { index: i, port: ports[i], child };
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

async function aeStats(node) {
  const status = await fetchStatusJson(node.port);
  return status?.store?.antiEntropy ?? null;
}

/** Sums of the counters that matter over the nodes. */
async function totals(nodes) {
  const all = await Promise.all(nodes.map(aeStats));
  const sum = (f) => all.reduce((s, ae) => s + (ae === null ? 0 : f(ae)), 0);
  return {
    exchanges: sum((ae) => ae.exchanges),
    bytes: sum((ae) => ae.bytesSent + ae.bytesReceived),
    copied: sum((ae) => ae.pulled + ae.pushed),
    entriesRead: all.every((ae) => ae?.tree !== undefined) ? sum((ae) => ae.tree.entriesRead) : null,
    keysDigested: sum((ae) => ae.keysDigested),
    rounds: all.map((ae) => ae?.rounds ?? 0),
  };
}

function delta(after, before) {
  return {
    exchanges: after.exchanges - before.exchanges,
    bytes: after.bytes - before.bytes,
    copied: after.copied - before.copied,
    entriesRead:
      after.entriesRead === null || before.entriesRead === null
        ? null
        : after.entriesRead - before.entriesRead,
    keysDigested: after.keysDigested - before.keysDigested,
  };
}

/** Waits until the tree of every node is ready (builds without a tree: at once). */
async function treesReady(nodes, { aeOff = false } = {}) {
  const deadline = Date.now() + CONVERGE_MAX_MS;
  while (Date.now() < deadline) {
    const all = await Promise.all(nodes.map(aeStats));
    const ready = (ae) => (ae === null ? aeOff : ae.tree === undefined || ae.tree.state === 'ready');
    if (all.every(ready)) return;
    await sleep(POLL_MS);
  }
  throw new Error('trees not ready in time');
}

/**
 * Waits until every node has run a round since the call and `watched` then
 * ran one in which every exchange was equal; resolves to the time taken.
 */
async function converged(nodes, watched) {
  const started = Date.now();
  const first = await Promise.all(nodes.map(aeStats));
  let last = await aeStats(watched);
  while (Date.now() - started < CONVERGE_MAX_MS) {
    for (const node of nodes) {
      if (node.child.exitCode !== null)
        throw new Error(`node ${node.index} exited:\n${logTail(node.child.logFile)}`);
    }
    await sleep(POLL_MS);
    const now = await aeStats(watched);
    if (now === null || last === null) {
      last = now;
      continue;
    }
    const all = await Promise.all(nodes.map(aeStats));
    const everyNodeRan = all.every((ae, i) => ae !== null && ae.rounds > (first[i]?.rounds ?? 0));
    const roundDone = now.rounds > last.rounds;
    const exchanges = now.exchanges - last.exchanges;
    const equal = now.equalExchanges - last.equalExchanges;
    if (roundDone && everyNodeRan && exchanges > 0 && exchanges === equal) return Date.now() - started;
    if (roundDone) last = now;
  }
  throw new Error(`node ${watched.index} did not converge within ${CONVERGE_MAX_MS} ms`);
}

/** CPU of the nodes over `ms` with no client traffic, and what anti-entropy did meanwhile. */
async function idleCpu(nodes, ms) {
  const before = nodes.map((n) => cpuSeconds(n.child.pid));
  const statsBefore = await totals(nodes);
  const start = Date.now();
  await sleep(ms);
  const seconds = (Date.now() - start) / 1000;
  const after = nodes.map((n) => cpuSeconds(n.child.pid));
  const cpu = after.map((a, i) => a - before[i]);
  return {
    seconds,
    cpuPercentOfOneCore: (100 * cpu.reduce((s, c) => s + c, 0)) / seconds,
    perNodePercent: cpu.map((c) => (100 * c) / seconds),
    ...delta(await totals(nodes), statsBefore),
  };
}

export async function runAntiEntropyBench() {
  const settings = loadSettings();
  const ae = aeSettings();
  const work = makeTempDir('ae');
  let nodes = [];
  const figures = { settings: { ...settings, antiEntropy: ae, bin: ringkvBin() } };
  let failure = null;
  const startAll = async (ports) => {
    nodes = [0, 1, 2].map((i) => serve(work, ports, i, ae.intervalMs));
    for (const node of nodes) await waitNodeReady(node);
  };
  try {
    const ports = await freePorts(3);
    await startAll(ports);
    const filled = await fill(settings, {
      ports,
      keyCount: ae.keyCount,
      querySuffix: '&ack=3&from=3',
      label: 'anti-entropy cluster',
      runLoad,
    });
    figures.fill = { ms: filled.elapsedMs, ratePerS: filled.ratePerS };
    await treesReady(nodes);
    // A round of every node first: the rounds after the fill repair nothing but may still be running.
    await converged(nodes, nodes[2]);

    // 1. Idle, once the fill's flushes and compactions are over.
    await settle(ports, 'anti-entropy cluster');
    figures.idle = await idleCpu(nodes, ae.idleMs);
    log(
      `anti-entropy idle: ${figures.idle.cpuPercentOfOneCore.toFixed(2)}% of a core over ${figures.idle.seconds.toFixed(0)} s`,
    );

    // 2. Divergence.
    figures.diffs = [];
    for (const n of ae.diffs) {
      await stopChild(nodes[2].child, 15000);
      if (n > 0) {
        await fill(settings, {
          ports: ports.slice(0, 2),
          keyCount: n,
          querySuffix: '&ack=2&from=3',
          label: `anti-entropy ${fmtInt(n)} differing`,
          runLoad,
        });
      }
      await Promise.all(nodes.slice(0, 2).map((node) => stopChild(node.child, 15000)));
      for (const i of [0, 1])
        fs.rmSync(path.join(work, `node-${i}`, 'hints'), { recursive: true, force: true });
      await startAll(ports);
      await treesReady(nodes);
      const start = await totals(nodes);
      const ms = await converged(nodes, nodes[2]);
      const d = delta(await totals(nodes), start);
      figures.diffs.push({ differing: n, ms, ...d });
      log(
        `anti-entropy ${fmtInt(n)} differing: repaired in ${fmtInt(ms)} ms, ${fmtInt(d.bytes)} bytes, ` +
          `${d.entriesRead === null ? `${fmtInt(d.keysDigested)} keys digested` : `${fmtInt(d.entriesRead)} entries read`}, ${fmtInt(d.copied)} copied`,
      );
    }

    // 3. Wipe.
    if (ae.wipe) {
      await stopChild(nodes[2].child, 15000);
      fs.rmSync(path.join(work, 'node-2'), { recursive: true, force: true });
      const startedAt = Date.now();
      nodes[2] = serve(work, ports, 2, ae.intervalMs);
      await waitNodeReady(nodes[2]);
      const start = await totals(nodes);
      await converged(nodes, nodes[2]);
      const ms = Date.now() - startedAt;
      figures.wipe = { ms, ...delta(await totals(nodes), start) };
      log(`anti-entropy wiped replica: repaired in ${fmtInt(ms)} ms`);
    }

    // 4. Baseline: the same processes and data with anti-entropy off.
    if (ae.baseline) {
      await Promise.all(nodes.map((n) => stopChild(n.child, 15000)));
      nodes = [0, 1, 2].map((i) => serve(work, ports, i, 0));
      for (const node of nodes) await waitNodeReady(node);
      await settle(ports, 'anti-entropy off');
      // A tree rebuilt at start (one not ready at the stop is not kept) is work to leave out of the floor.
      await treesReady(nodes, { aeOff: true });
      figures.baseline = await idleCpu(nodes, ae.idleMs);
      log(`anti-entropy off, idle: ${figures.baseline.cpuPercentOfOneCore.toFixed(2)}% of a core`);
    }
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
    log(`anti-entropy failed: ${failure}`);
  } finally {
    await Promise.all(nodes.map((n) => stopChild(n.child, 15000).catch(() => undefined)));
    removeTempDir(work);
  }
  if (failure !== null) {
    return {
      figures: { ...figures, error: failure },
      markdown: `**anti-entropy failed**: ${failure.split('\n')[0]}`,
      failed: true,
    };
  }
  const readCell = (d) =>
    d.entriesRead === null ? `${fmtInt(d.keysDigested)} keys digested` : fmtInt(d.entriesRead);
  const rows = figures.diffs.map((d) => [
    fmtInt(d.differing),
    `${(d.ms / 1000).toFixed(1)} s`,
    fmtInt(d.exchanges),
    fmtInt(d.bytes),
    readCell(d),
    fmtInt(d.copied),
  ]);
  if (figures.wipe) {
    const w = figures.wipe;
    rows.push([
      `wiped (${fmtInt(ae.keyCount)})`,
      `${(w.ms / 1000).toFixed(1)} s`,
      fmtInt(w.exchanges),
      fmtInt(w.bytes),
      readCell(w),
      fmtInt(w.copied),
    ]);
  }
  const idle = figures.idle;
  const markdown = [
    `Anti-entropy: 3 \`ringkv serve\` processes (\`--sync off --anti-entropy-interval ${ae.intervalMs}\`, ` +
      `\`${ringkvBin()}\`) filled with ${fmtInt(ae.keyCount)} keys of ${settings.valueBytes} bytes at \`ack=3&from=3\` ` +
      `(in ${fmtInt(figures.fill.ms / 1000)} s).`,
    '',
    `**Idle** (no client traffic, ${idle.seconds.toFixed(0)} s): the three processes used ` +
      `**${idle.cpuPercentOfOneCore.toFixed(2)}% of one core** (${idle.perNodePercent.map((p) => `${p.toFixed(2)}%`).join(', ')}); ` +
      `${fmtInt(idle.exchanges)} exchanges, ${fmtInt(idle.bytes)} bytes, ${idle.entriesRead === null ? `${fmtInt(idle.keysDigested)} keys digested` : `${fmtInt(idle.entriesRead)} entries read`}.`,
    '',
    'Divergence: node 2 misses new versions of N keys (hints deleted), then all three restart; until node 2 ' +
      'runs a round in which every exchange is equal (all nodes, all exchanges):',
    '',
    mdTable(['differing keys', 'to converge', 'exchanges', 'bytes', 'entries read', 'keys copied'], rows),
    ...(figures.baseline
      ? [
          '',
          `**Baseline**: the same three processes restarted with \`--anti-entropy-interval 0\`, idle ` +
            `${figures.baseline.seconds.toFixed(0)} s: **${figures.baseline.cpuPercentOfOneCore.toFixed(2)}% of one core** ` +
            `(${figures.baseline.perNodePercent.map((p) => `${p.toFixed(2)}%`).join(', ')}).`,
        ]
      : []),
  ].join('\n');
  return { figures, markdown, failed: false };
}
