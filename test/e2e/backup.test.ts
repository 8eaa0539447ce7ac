/**
 * Backups on real processes: `ringkv snapshot` while writes go on, `ringkv
 * restore` into a new data directory, a node started on it serves every
 * write acknowledged before the snapshot (and none made after it); a damaged
 * snapshot is refused naming the file; bad targets are usage errors.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ringkv } from '../support/cli.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, startNode, stopNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

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
});
