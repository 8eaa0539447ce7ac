/**
 * Backups on real processes: `ringkv snapshot` while writes go on, `ringkv
 * restore` into a new data directory, a node started on it serves every
 * write acknowledged before the snapshot (and none made after it); a damaged
 * snapshot is refused naming the file; bad targets (a snapshot into the
 * node's own data directory among them) are usage errors; a
 * snapshot older than the tombstone grace (less its margin) is refused
 * without --force.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ringkv } from '../support/cli.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/** Rewrites the snapshot's SNAPSHOT file (null: removes it, as in a snapshot from before it), and its sum. */
function editSnapshotInfo(dir: string, text: string | null): void {
  const sumsPath = join(dir, 'SHA256SUMS');
  const sums = readFileSync(sumsPath, 'utf8')
    .split('\n')
    .filter((line) => line !== '' && !line.endsWith('  SNAPSHOT'));
  if (text === null) {
    unlinkSync(join(dir, 'SNAPSHOT'));
  } else {
    writeFileSync(join(dir, 'SNAPSHOT'), text);
    sums.push(`${createHash('sha256').update(text).digest('hex')}  SNAPSHOT`);
  }
  writeFileSync(sumsPath, `${sums.join('\n')}\n`);
}

describe('snapshot and restore', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a snapshot taken under writes restores every write acknowledged before it, and none after', async () => {
    const base = await makeTempDir('ringkv-backup-');
    const node = await startNode({ dataDir: join(base, 'data'), args: ['--memtable-bytes', '65536'] });
    const put = (key: string) =>
      httpRequest(`${node.url}${entityPath(key)}`, { method: 'PUT', body: `value of ${key}` });
    const before: string[] = [];
    for (let i = 0; i < 1500; i++) {
      assert.equal((await put(`before-${i}`)).status, 201);
      before.push(`before-${i}`);
    }
    // A writer that keeps going while the snapshot is taken.
    let writing = true;
    let during = 0;
    const writer = (async () => {
      while (writing && during < 5000) {
        assert.equal((await put(`during-${during}`)).status, 201);
        during++;
      }
    })();
    const snap = await ringkv(['snapshot', '--url', node.url, '--out', join(base, 'snap')]);
    writing = false;
    await writer;
    assert.equal(snap.code, 0, snap.stderr);
    const info = JSON.parse(snap.stdout.toString()) as { tables: number; bytes: number; copied: number };
    assert.ok(info.tables > 0 && info.bytes > 0);
    assert.equal(info.copied, 0);
    for (let i = 0; i < 200; i++) assert.equal((await put(`after-${i}`)).status, 201);
    await stopNode(node);

    const restored = await ringkv([
      'restore',
      '--snapshot',
      join(base, 'snap'),
      '--data',
      join(base, 'restored'),
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout.toString(), /restored \d+ tables/);
    assert.ok(readdirSync(join(base, 'restored')).includes('BIRTH'));
    const again = await startNode({ dataDir: join(base, 'restored') });
    for (const key of before) {
      const answer = await httpRequest(`${again.url}${entityPath(key)}`);
      assert.equal(answer.status, 200, key);
      assert.equal(answer.body.toString(), `value of ${key}`);
    }
    for (const key of ['after-0', 'after-199']) {
      assert.equal((await httpRequest(`${again.url}${entityPath(key)}`)).status, 404, key);
    }
    await stopNode(again);
  });

  it('a damaged snapshot is refused naming the file; targets that are not empty are usage errors', async () => {
    const base = await makeTempDir('ringkv-backup-');
    const node = await startNode({ dataDir: join(base, 'data') });
    for (let i = 0; i < 100; i++) {
      await httpRequest(`${node.url}${entityPath(`k${i}`)}`, { method: 'PUT', body: 'v' });
    }
    assert.equal((await ringkv(['snapshot', '--url', node.url, '--out', join(base, 'snap')])).code, 0);
    const again = await ringkv(['snapshot', '--url', node.url, '--out', join(base, 'snap')]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /not empty/);
    // Into the node's own data directory (here spelled through `..`): refused, exit 2, nothing made.
    const inside = await ringkv([
      'snapshot',
      '--url',
      node.url,
      '--out',
      `${join(base, 'data')}/x/../snap-in-data`,
    ]);
    assert.equal(inside.code, 2, inside.stderr);
    assert.equal(inside.stderr.trim().split('\n').length, 1, inside.stderr);
    assert.match(
      inside.stderr,
      /Snapshot failed: 400 Bad dir: .*snap-in-data is inside the node's data directory/,
    );
    assert.ok(!readdirSync(join(base, 'data')).includes('snap-in-data'));
    await stopNode(node);
    const into = await ringkv(['restore', '--snapshot', join(base, 'snap'), '--data', join(base, 'data')]);
    assert.equal(into.code, 2, into.stderr);
    // A --data that cannot be a directory is bad usage too, not a damaged snapshot.
    const file = join(base, 'a-file');
    writeFileSync(file, 'x');
    for (const target of [file, join(file, 'below'), '/proc/ringkv-restore']) {
      const run = await ringkv(['restore', '--snapshot', join(base, 'snap'), '--data', target]);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.ok(run.stderr.includes(`Cannot restore into ${target}`), run.stderr);
    }

    const table = readdirSync(join(base, 'snap')).find((name) => name.endsWith('.sst'))!;
    const path = join(base, 'snap', table);
    const bytes = readFileSync(path);
    bytes[bytes.length >> 1]! ^= 0xff;
    writeFileSync(`${path}.copy`, bytes);
    renameSync(`${path}.copy`, path);
    const damaged = await ringkv([
      'restore',
      '--snapshot',
      join(base, 'snap'),
      '--data',
      join(base, 'other'),
    ]);
    assert.equal(damaged.code, 1);
    assert.equal(damaged.stderr.trim().split('\n').length, 1, damaged.stderr);
    assert.ok(damaged.stderr.includes(path), damaged.stderr);
    assert.ok(!readdirSync(base).includes('other') || readdirSync(join(base, 'other')).length === 0);
    const missing = await ringkv(['snapshot', '--url', 'http://127.0.0.1:1']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Missing --out/);
  });
  it('a snapshot older than the tombstone grace is refused unless --force; one without a time restores with a warning', async () => {
    const base = await makeTempDir('ringkv-backup-');
    const node = await startNode({ dataDir: join(base, 'data') });
    for (let i = 0; i < 50; i++) {
      await httpRequest(`${node.url}${entityPath(`k${i}`)}`, { method: 'PUT', body: 'v' });
    }
    const snap = join(base, 'snap');
    const before = Date.now();
    assert.equal((await ringkv(['snapshot', '--url', node.url, '--out', snap])).code, 0);
    await stopNode(node);
    const created = Date.parse(
      (JSON.parse(readFileSync(join(snap, 'SNAPSHOT'), 'utf8')) as { created: string }).created,
    );
    assert.ok(created >= before - 1_000 && created <= Date.now(), `created ${created}`);
    const restore = (target: string, ...more: string[]) =>
      ringkv(['restore', '--snapshot', snap, '--data', join(base, target), ...more]);

    const fresh = await restore('fresh');
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(fresh.stderr, '');

    editSnapshotInfo(
      snap,
      `${JSON.stringify({ created: new Date(Date.now() - 30 * 3_600_000).toISOString() })}\n`,
    );
    const old = await restore('old');
    assert.equal(old.code, 2, old.stderr);
    assert.equal(old.stderr.trim().split('\n').length, 1, old.stderr);
    assert.match(
      old.stderr,
      /is 30\.0 h old .*older than 23 h \(the tombstone grace, 24 h, less a margin.*--force.*whole cluster/,
    );
    assert.ok(!readdirSync(base).includes('old') || readdirSync(join(base, 'old')).length === 0);

    const forced = await restore('old', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: .* is 30\.0 h old/);
    assert.ok(readdirSync(join(base, 'old')).includes('MANIFEST'));

    editSnapshotInfo(snap, null);
    const unknown = await restore('unknown');
    assert.equal(unknown.code, 0, unknown.stderr);
    assert.equal(unknown.stderr.trim().split('\n').length, 1, unknown.stderr);
    assert.match(unknown.stderr, /warning: .*age is unknown/);
    const again = await startNode({ dataDir: join(base, 'unknown') });
    assert.equal((await httpRequest(`${again.url}${entityPath('k49')}`)).body.toString(), 'v');
    await stopNode(again);
  });
});
