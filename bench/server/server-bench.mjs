/**
 * Server benchmark: the highest constant request rate at which p99 <= 10 ms
 * with no errors (see load/driver.mjs), for PUT and GET, on a ringkv node and
 * on the ceiling server (bare node:http + Map), in the same run.
 *
 * Cases (BENCH_SERVER_CASES, in this order by default):
 *   ceiling-put          PUT of 128-byte values over a keyspace of K keys
 *   ringkv-put-sync-on   the same on `ringkv serve --sync on` (the default)
 *   ringkv-put-sync-off  the same on `ringkv serve --sync off`
 *   ceiling-get          GET of present keys after a fill of K keys
 *   ringkv-get           the same on a node filled with --sync off, then
 *                        restarted with --sync on (reads from what recovery
 *                        and the SSTables hold, as after any restart)
 *
 * and, when asked for, the same two ringkv cases with the node's HTTP fast
 * path turned off (RINGKV_HTTP_FAST_PATH=off: node:http serves every
 * request), so that the fast path's gain is measured side by side:
 *   ringkv-put-sync-on-node-http, ringkv-get-node-http
 *
 * For ringkv PUT, writes/s and fsyncs/s are diffed from GET /v0/status
 * (engine.writes, engine.walSyncs) over each measured window, so the group
 * commit's batching shows as writes per fsync.
 */
import path from 'node:path';
import { makeTempDir, removeTempDir } from '../lib/procs.mjs';
import { envInt, envList } from '../lib/settings.mjs';
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
import { ringkvBin, startCeiling, startRingkv } from './targets.mjs';

const CASES = ['ceiling-put', 'ringkv-put-sync-on', 'ringkv-put-sync-off', 'ceiling-get', 'ringkv-get'];
const NODE_HTTP_CASES = ['ringkv-put-sync-on-node-http', 'ringkv-get-node-http'];
const NODE_HTTP_ENV = { RINGKV_HTTP_FAST_PATH: 'off' };

/** Runs `body(target)` with a started target and always stops it. */
async function withTarget(start, body) {
  const target = await start();
  try {
    return await body(target);
  } finally {
    await target.stop();
  }
}

function syncFigures(search) {
  const r = search?.best?.statusRates;
  if (!r) return null;
  return {
    rate: search.best.rate,
    writesPerS: r.writes,
    walSyncsPerS: r.walSyncs,
    writesPerSync: r.writes !== null && r.walSyncs ? Math.round((r.writes / r.walSyncs) * 10) / 10 : null,
  };
}

export async function runServerBench() {
  const settings = loadSettings();
  const keyCount = envInt('BENCH_SERVER_KEYS', 200000, { min: 1 });
  const cases = envList('BENCH_SERVER_CASES', CASES, [...CASES, ...NODE_HTTP_CASES]);
  const work = makeTempDir('server');
  const results = {};
  const errors = {};
  log(
    `server: cases=${cases.join(',')} keys=${fmtInt(keyCount)} connections=${settings.connections} ` +
      `window=${settings.windowMs} ms warmup=${settings.warmupMs} ms p99<=${settings.search.p99Ms} ms`,
  );
  const logFile = (name) => path.join(work, `${name}.log`);
  const dataDir = (name) => path.join(work, name);

  const runCase = {
    'ceiling-put': () =>
      withTarget(
        () => startCeiling({ logFile: logFile('ceiling-put') }),
        (t) =>
          rateSearch(
            'ceiling PUT',
            requestConfig(settings, { op: 'put', ports: t.ports, keyCount }),
            settings.search,
          ),
      ),
    'ceiling-get': () =>
      withTarget(
        () => startCeiling({ logFile: logFile('ceiling-get') }),
        async (t) => {
          await fill(settings, { ports: t.ports, keyCount, label: 'ceiling GET', runLoad });
          return rateSearch(
            'ceiling GET',
            requestConfig(settings, { op: 'get', ports: t.ports, keyCount }),
            settings.search,
          );
        },
      ),
    'ringkv-put-sync-on': () => ringkvPut(true),
    'ringkv-put-sync-off': () => ringkvPut(false),
    'ringkv-get': () => ringkvGet(),
    'ringkv-put-sync-on-node-http': () => ringkvPut(true, NODE_HTTP_ENV),
    'ringkv-get-node-http': () => ringkvGet(NODE_HTTP_ENV),
  };
  async function ringkvGet(env) {
    const name = env ? 'ringkv-get-node-http' : 'ringkv-get';
    const label = env ? 'ringkv GET, node:http only' : 'ringkv GET';
    const dir = dataDir(name);
    try {
      await withTarget(
        () => startRingkv({ dir, sync: false, logFile: logFile(`${name}-fill`) }),
        (t) => fill(settings, { ports: t.ports, keyCount, label, runLoad }),
      );
      return await withTarget(
        () => startRingkv({ dir, sync: true, env, logFile: logFile(name) }),
        async (t) => {
          await expectFilled(t.ports[0], `${label} (restarted)`);
          await settle(t.ports, `${label} (restarted)`);
          return rateSearch(
            label,
            requestConfig(settings, { op: 'get', ports: t.ports, keyCount, statusPorts: t.ports }),
            settings.search,
            CPU_STATUS_FIELDS,
          );
        },
      );
    } finally {
      removeTempDir(dir);
    }
  }
  async function ringkvPut(sync, env) {
    const name = `ringkv-put-sync-${sync ? 'on' : 'off'}${env ? '-node-http' : ''}`;
    try {
      return await withTarget(
        () => startRingkv({ dir: dataDir(name), sync, env, logFile: logFile(name) }),
        (t) =>
          rateSearch(
            `ringkv PUT --sync ${sync ? 'on' : 'off'}${env ? ', node:http only' : ''}`,
            requestConfig(settings, { op: 'put', ports: t.ports, keyCount, statusPorts: t.ports }),
            settings.search,
            WRITE_STATUS_FIELDS,
          ),
      );
    } finally {
      removeTempDir(dataDir(name));
    }
  }

  try {
    for (const name of cases) {
      try {
        results[name] = await runCase[name]();
      } catch (err) {
        errors[name] = err instanceof Error ? err.message : String(err);
        log(`server case ${name} failed: ${errors[name]}`);
      }
    }
  } finally {
    removeTempDir(work);
  }

  const max = (name) => results[name]?.maxRate ?? null;
  const ratios = {
    putSyncOn: ratio(max('ringkv-put-sync-on'), max('ceiling-put')),
    putSyncOff: ratio(max('ringkv-put-sync-off'), max('ceiling-put')),
    get: ratio(max('ringkv-get'), max('ceiling-get')),
    putSyncOnNodeHttp: ratio(max('ringkv-put-sync-on-node-http'), max('ceiling-put')),
    getNodeHttp: ratio(max('ringkv-get-node-http'), max('ceiling-get')),
  };
  // Rows for the node:http-only cases, when they ran.
  const nodeHttpRows = [
    [
      'PUT, --sync on, node:http only',
      'ringkv-put-sync-on-node-http',
      'ceiling-put',
      ratios.putSyncOnNodeHttp,
    ],
    ['GET (filled, --sync on), node:http only', 'ringkv-get-node-http', 'ceiling-get', ratios.getNodeHttp],
  ]
    .filter(([, name]) => cases.includes(name))
    .map(([label, name, ceiling, r]) => [
      label,
      searchCell(results[name]),
      searchCell(results[ceiling]),
      fmtPercent(r),
    ]);
  const sync = {
    on: syncFigures(results['ringkv-put-sync-on']),
    off: syncFigures(results['ringkv-put-sync-off']),
  };
  const syncRows = [];
  for (const [mode, name] of [
    ['on', 'ringkv-put-sync-on'],
    ['off', 'ringkv-put-sync-off'],
  ]) {
    for (const step of results[name]?.steps ?? []) {
      const r = step.statusRates;
      syncRows.push([
        mode,
        fmtInt(step.rate),
        step.pass ? 'pass' : 'fail',
        fmtInt(r?.writes),
        fmtInt(r?.walSyncs),
        r?.writes != null && r?.walSyncs ? (r.writes / r.walSyncs).toFixed(1) : 'n/a',
      ]);
    }
  }
  const markdown = [
    `Open loop, ${settings.connections} keep-alive connections, latency from each request's due time; ` +
      `highest rate with p99 <= ${settings.search.p99Ms} ms and no errors in most of ${settings.search.trials} windows of ` +
      `${settings.windowMs / 1000} s per rate (each after ${settings.warmupMs / 1000} s warm-up). ${settings.valueBytes}-byte values, ${fmtInt(keyCount)} keys. ` +
      `Node under test: \`node ${path.relative(process.cwd(), ringkvBin())} serve --url http://127.0.0.1:PORT --data DIR --sync on|off\`.`,
    '',
    mdTable(
      ['request', 'ringkv', 'ceiling (node:http + Map)', 'ringkv/ceiling'],
      [
        [
          'PUT, --sync on',
          searchCell(results['ringkv-put-sync-on']),
          searchCell(results['ceiling-put']),
          fmtPercent(ratios.putSyncOn),
        ],
        [
          'PUT, --sync off',
          searchCell(results['ringkv-put-sync-off']),
          searchCell(results['ceiling-put']),
          fmtPercent(ratios.putSyncOff),
        ],
        [
          'GET (filled, --sync on)',
          searchCell(results['ringkv-get']),
          searchCell(results['ceiling-get']),
          fmtPercent(ratios.get),
        ],
        ...nodeHttpRows,
      ],
    ),
    '',
    'Group commit, per rate step of the PUT searches (from /v0/status, engine.writes and engine.walSyncs):',
    '',
    syncRows.length
      ? mdTable(['--sync', 'rate/s', 'step', 'writes/s', 'fsyncs/s', 'writes per fsync'], syncRows)
      : '(no ringkv PUT steps)',
    ...Object.entries(errors).map(([k, v]) => `\n**${k} failed**: ${v.split('\n')[0]}`),
  ].join('\n');
  return {
    figures: { settings: { ...settings, keyCount, cases }, results, ratios, sync, errors },
    markdown,
    failed: Object.keys(errors).length > 0,
  };
}
