/**
 * The benchmark's own instruments (`node bench/run.mjs check`: percentiles, the response parser,
 * /metrics histograms, rates, the load generator's error accounting), run with the tests so that a
 * change that breaks how the figures are computed fails here, not in a quoted result.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = fileURLToPath(new URL('../../bench/', import.meta.url));

it('the bench self-check passes', () => {
  const run = spawnSync(process.execPath, ['run.mjs', 'check'], {
    cwd: BENCH_DIR,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(
    run.status,
    0,
    `bench check exited ${run.status} (${run.signal ?? 'no signal'}):\n${run.stdout}${run.stderr}`,
  );
  assert.match(run.stdout + run.stderr, /check: settings ok/);
  assert.match(run.stdout + run.stderr, /check: load generator error accounting ok/);
});
