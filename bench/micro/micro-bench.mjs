/** Runs every micro benchmark against the compiled project (dist/). */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT_DIR } from '../lib/results.mjs';
import { envInt } from '../lib/settings.mjs';
import { log, mdTable } from '../lib/stats.mjs';
import { microCases } from './cases.mjs';
import { compare } from './harness.mjs';

export async function runMicroBench() {
  const rounds = envInt('BENCH_MICRO_ROUNDS', 7, { min: 1 });
  const targetMs = envInt('BENCH_MICRO_BATCH_MS', 60, { min: 1 });
  const bytes = await import(pathToFileURL(path.join(ROOT_DIR, 'dist/src/util/bytes.js')).href);
  const storage = await import(pathToFileURL(path.join(ROOT_DIR, 'dist/src/storage/index.js')).href);
  const http = await import(pathToFileURL(path.join(ROOT_DIR, 'dist/src/http/index.js')).href);
  // The project's own dependency (root node_modules), for the candidate it was measured against.
  const promClient = await import('prom-client');
  // The native block reader, when npm install built it (native/); its decoder is timed beside lz4-napi's.
  let nativeReader;
  try {
    nativeReader = createRequire(import.meta.url)(path.join(ROOT_DIR, 'build/Release/block_reader.node'));
  } catch {
    log('micro: the native block reader is not built; its decoder is left out');
  }
  const results = [];
  for (const [name, variants] of microCases({ bytes, storage, http, promClient, nativeReader })) {
    const r = compare(name, variants, { rounds, targetMs });
    results.push(r);
    log(`micro ${r.name}: ${r.results.map((x) => `${x.variant} ${x.nsPerCall} ns`).join(', ')}`);
  }
  const rows = results.flatMap((r) =>
    r.results.map((x, i) => [
      i === 0 ? r.name : '',
      x.variant,
      String(x.nsPerCall),
      `${x.relative.toFixed(2)}x`,
    ]),
  );
  const markdown = [
    `Median of ${rounds} interleaved rounds; the first variant of each is the current code, relative time against it.`,
    '',
    mdTable(['helper', 'variant', 'ns/call', 'relative'], rows),
  ].join('\n');
  return { figures: { rounds, targetMs, results }, markdown, failed: false };
}
