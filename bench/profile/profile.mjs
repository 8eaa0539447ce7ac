/**
 * Profiles of a ringkv node under load: `run.mjs profile put|get`.
 *
 *   1. (get only) Fill a node started with --sync off, stop it.
 *   2. Start `node --cpu-prof [--heap-prof] bin/ringkv serve ...` (--sync on
 *      by default) on that directory.
 *   3. Drive it at a fixed rate (open loop, same generator as the server
 *      benchmark) for BENCH_PROFILE_SECONDS.
 *   4. SIGTERM: Node writes the profiles as the process exits.
 *   5. Copy the raw profiles to bench/results/ (git-ignored) and render each
 *      as a flame graph SVG (kept), plus a summary of the hottest functions.
 *
 * Worker threads (flush, compaction) write their own .cpuprofile; each is
 * rendered separately, named by thread id (0 is the main thread).
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeTempDir } from '../lib/procs.mjs';
import { RESULTS_DIR } from '../lib/results.mjs';
import { envChoice, envFlag, envInt, envNumber } from '../lib/settings.mjs';
import { fmtInt, fmtMs, log, mdTable } from '../lib/stats.mjs';
import { runLoad } from '../load/driver.mjs';
import { expectFilled, fill, loadSettings, requestConfig } from '../server/common.mjs';
import { startRingkv } from '../server/targets.mjs';
import { cpuProfileTree, heapProfileTree, renderFlameGraph, topSelf } from './flamegraph.mjs';

/** CPU.20240501.123456.4242.0.001.cpuprofile -> thread id 0 */
function threadIdOf(file) {
  const parts = path.basename(file).split('.');
  return parts.length >= 7 ? Number(parts[parts.length - 3]) : 0;
}

function renderOne(kind, file, outBase, title) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const tree = kind === 'cpu' ? cpuProfileTree(profile) : heapProfileTree(profile);
  const busy = tree.root.total;
  const subtitle =
    kind === 'cpu'
      ? `${fmtInt(busy)} busy samples, ${fmtInt(tree.idle)} idle (${((tree.idle / Math.max(1, busy + tree.idle)) * 100).toFixed(1)}% idle) over ${fmtInt(tree.durationMs)} ms`
      : `${(busy / 2 ** 20).toFixed(1)} MiB of sampled allocations live at exit`;
  fs.writeFileSync(`${outBase}.svg`, renderFlameGraph(tree, { title, subtitle }));
  return { svg: `${outBase}.svg`, busy, idle: tree.idle, unit: tree.unit, top: topSelf(tree, 15) };
}

/** Renders an existing profile file (`run.mjs render FILE`). */
export function renderFile(file) {
  const kind = file.endsWith('.heapprofile') ? 'heap' : 'cpu';
  const base = file.replace(/\.(cpuprofile|heapprofile)$/, '');
  const r = renderOne(kind, file, base, path.basename(file));
  log(`wrote ${r.svg}`);
  return r;
}

export async function runProfile(op, stamp) {
  if (op !== 'put' && op !== 'get') throw new Error(`profile: expected put or get, got ${op ?? 'nothing'}`);
  const settings = loadSettings();
  const rate = envInt('BENCH_PROFILE_RATE', 5000, { min: 1 });
  const seconds = envNumber('BENCH_PROFILE_SECONDS', 10, { min: 0.1 });
  const heap = envFlag('BENCH_PROFILE_HEAP', true);
  const sync = envChoice('BENCH_PROFILE_SYNC', 'on', ['on', 'off']) === 'on';
  const keyCount = envInt('BENCH_PROFILE_KEYS', envInt('BENCH_SERVER_KEYS', 200000, { min: 1 }), { min: 1 });
  const work = makeTempDir(`profile-${op}`);
  const dataDir = path.join(work, 'data');
  const profDir = path.join(work, 'prof');
  fs.mkdirSync(profDir);
  try {
    if (op === 'get') {
      const node = await startRingkv({ dir: dataDir, sync: false, logFile: path.join(work, 'fill.log') });
      try {
        await fill(settings, { ports: node.ports, keyCount, label: 'profile GET', runLoad });
      } finally {
        await node.stop();
      }
    }
    const nodeArgs = [`--cpu-prof`, `--cpu-prof-dir=${profDir}`];
    if (heap) nodeArgs.push(`--heap-prof`, `--heap-prof-dir=${profDir}`);
    log(`profile ${op}: node with ${nodeArgs.join(' ')}, ${fmtInt(rate)}/s for ${seconds} s`);
    const node = await startRingkv({ dir: dataDir, sync, nodeArgs, logFile: path.join(work, 'node.log') });
    let load;
    try {
      if (op === 'get') await expectFilled(node.ports[0], 'profile GET (restarted)');
      load = await runLoad({
        ...requestConfig(settings, { op, ports: node.ports, keyCount, statusPorts: node.ports }),
        rate,
        warmupMs: 0,
        durationMs: Math.round(seconds * 1000),
      });
    } finally {
      await node.stop();
    }
    const l = load.latency;
    log(
      `profile ${op}: ${fmtInt(load.achievedRate)}/s ok, p50=${fmtMs(l.p50Ms)} p99=${fmtMs(l.p99Ms)} ` +
        `max=${fmtMs(l.maxMs)} ms, errors=${load.measured.errorCount}`,
    );

    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const rendered = [];
    const files = fs.readdirSync(profDir).sort();
    if (!files.some((f) => f.endsWith('.cpuprofile')))
      throw new Error(`No .cpuprofile written in ${profDir}`);
    for (const f of files) {
      const kind = f.endsWith('.cpuprofile') ? 'cpu' : f.endsWith('.heapprofile') ? 'heap' : null;
      if (kind === null) continue;
      const tid = threadIdOf(f);
      const name = `${stamp}-profile-${op}-${kind}${tid === 0 ? '' : `-thread${tid}`}`;
      const base = path.join(RESULTS_DIR, name);
      fs.copyFileSync(path.join(profDir, f), `${base}.${kind === 'cpu' ? 'cpuprofile' : 'heapprofile'}`);
      const title = `ringkv ${op.toUpperCase()} at ${fmtInt(rate)}/s, --sync ${sync ? 'on' : 'off'}: ${kind === 'cpu' ? 'CPU' : 'heap'}${tid === 0 ? '' : ` (thread ${tid})`}`;
      const r = renderOne(kind, path.join(profDir, f), base, title);
      rendered.push({
        kind,
        thread: tid,
        raw: `${base}.${kind === 'cpu' ? 'cpuprofile' : 'heapprofile'}`,
        ...r,
      });
      log(`profile ${op}: wrote ${path.relative(process.cwd(), r.svg)}`);
    }
    const sections = rendered.map((r) => {
      const rows = r.top.map((t) => [
        `\`${t.name}\``,
        t.file ? `${t.file}${t.line ? `:${t.line}` : ''}` : '',
        r.unit === 'bytes' ? `${(t.self / 1024).toFixed(1)} KiB` : fmtInt(t.self),
        `${(t.share * 100).toFixed(1)}%`,
      ]);
      return [
        `### ${r.kind === 'cpu' ? 'CPU' : 'Heap'}${r.thread ? ` (thread ${r.thread})` : ''}: ${path.basename(r.svg)}`,
        '',
        r.kind === 'cpu'
          ? `${fmtInt(r.busy)} busy samples, ${fmtInt(r.idle)} idle. Top self time:`
          : 'Top live allocation sites at exit:',
        '',
        mdTable(['function', 'file:line', r.unit === 'bytes' ? 'self bytes' : 'self samples', 'share'], rows),
      ].join('\n');
    });
    const markdown = [
      `\`node run.mjs profile ${op}\`: a node (--sync ${sync ? 'on' : 'off'}) driven at ${fmtInt(rate)} ${op.toUpperCase()}/s ` +
        `for ${seconds} s over ${fmtInt(keyCount)} keys, ${settings.connections} connections: ` +
        `${fmtInt(load.achievedRate)}/s answered, p50 ${fmtMs(l.p50Ms)} ms, p99 ${fmtMs(l.p99Ms)} ms, ` +
        `max ${fmtMs(l.maxMs)} ms, ${load.measured.errorCount} errors.`,
      '',
      ...sections,
    ].join('\n\n');
    return {
      figures: {
        op,
        rate,
        seconds,
        sync,
        keyCount,
        load: { latency: l, achievedRate: load.achievedRate, errors: load.measured.errors },
        profiles: rendered.map((r) => ({ ...r, svg: path.basename(r.svg), raw: path.basename(r.raw) })),
      },
      markdown,
      failed: false,
    };
  } finally {
    removeTempDir(work);
  }
}
