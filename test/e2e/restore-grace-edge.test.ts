/**
 * `ringkv restore` at the edge of the tombstone grace. A snapshot is safe to
 * restore into one node of a live cluster only while the other replicas
 * still hold the tombstones of every key deleted since it began. Those go
 * at their version's time plus the grace, by the replicas' clocks: a delete
 * stamped by a coordinator whose clock lags the snapshot's node, and the
 * time from the restore to the node's first exchange, eat into it. So the
 * restore keeps the hints' margin (limits.hintGraceMarginMsMax): a snapshot
 * just younger than the grace is already refused. No node runs here: the
 * snapshot is written by an engine whose clock is set back.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { limits } from '../../src/config/limits.js';
import { LsmEngine, valueEntry } from '../../src/storage/index.js';
import { ringkv } from '../support/cli.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const HOUR_MS = 3_600_000;

/** A one-entry snapshot in `dir` whose SNAPSHOT says it began `ageMs` ago. */
async function snapshotAged(base: string, name: string, ageMs: number): Promise<string> {
  const createdMs = Date.now() - ageMs;
  const engine = await LsmEngine.open({
    dir: join(base, `${name}-data`),
    sync: false,
    log: () => {},
    nowMs: () => createdMs,
  });
  const dir = join(base, name);
  try {
    await engine.write(valueEntry(Buffer.from('k'), 1n, Buffer.from('v')));
    await engine.snapshot(dir);
  } finally {
    await engine.close();
  }
  return dir;
}

describe('restore: the tombstone grace edge', () => {
  after(removeTempDirs);

  it('refuses a snapshot within an hour of the grace (the hints margin); admits one older by force, one younger as is', async () => {
    assert.equal(limits.tombstoneGraceMs, 24 * HOUR_MS, 'the ages below assume a day of grace');
    const base = await makeTempDir('ringkv-restore-edge-');
    const restore = (snapshot: string, target: string, ...more: string[]) =>
      ringkv(['restore', '--snapshot', snapshot, '--data', join(base, target), ...more]);

    const edge = await snapshotAged(base, 'edge', 23.5 * HOUR_MS);
    const refused = await restore(edge, 'edge-restored');
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /is 23\.5 h old .*older than 23 h \(the tombstone grace, 24 h, less/);
    assert.ok(
      !readdirSync(base).includes('edge-restored') || readdirSync(join(base, 'edge-restored')).length === 0,
    );

    const forced = await restore(edge, 'edge-restored', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: .* is 23\.5 h old/);

    const young = await snapshotAged(base, 'young', 22.5 * HOUR_MS);
    const admitted = await restore(young, 'young-restored');
    assert.equal(admitted.code, 0, admitted.stderr);
    assert.equal(admitted.stderr, '');
  });

  it('refuses a snapshot dated in the future beyond the clock skew bound unless --force, naming both times', async () => {
    assert.equal(limits.clockSkewMaxMs, 1000, 'the dates below assume a 1 s default skew bound');
    const base = await makeTempDir('ringkv-restore-future-');
    const restore = (snapshot: string, target: string, ...more: string[]) =>
      ringkv(['restore', '--snapshot', snapshot, '--data', join(base, target), ...more]);

    const ahead = await snapshotAged(base, 'ahead', -HOUR_MS);
    const refused = await restore(ahead, 'ahead-restored');
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /taken \d{4}-\d\d-\d\dT[\d:.]+Z, .*in the future of this machine's clock \(\d{4}-\d\d-\d\dT[\d:.]+Z\).*more than the 1000 ms clock skew bound/,
    );
    assert.ok(
      !readdirSync(base).includes('ahead-restored') || readdirSync(join(base, 'ahead-restored')).length === 0,
    );
    const forced = await restore(ahead, 'ahead-restored', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: .*in the future.*restored as --force asks/);

    // Within the bound (a clock a little ahead of this one): restored as is.
    const slightly = await snapshotAged(base, 'slightly', -500);
    const admitted = await restore(slightly, 'slightly-restored');
    assert.equal(admitted.code, 0, admitted.stderr);
    assert.equal(admitted.stderr, '');

    // The bound is the cluster's, as given to serve: --max-clock-skew widens it.
    const half = await snapshotAged(base, 'half-minute', -30_000);
    assert.equal((await restore(half, 'half-default')).code, 2);
    const wider = await restore(half, 'half-wider', '--max-clock-skew', '60000');
    assert.equal(wider.code, 0, wider.stderr);
    assert.equal(wider.stderr, '');
    const bad = await restore(half, 'half-bad', '--max-clock-skew', 'soon');
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /max-clock-skew/);
  });
});
