/**
 * `ringkv export` and `ringkv import` between two real clusters: every
 * entry (UTF-8 and binary values, values with newlines and tabs, the empty
 * value) arrives byte for byte, through a file and through stdin; a key
 * range exports only its keys; a bad line stops the import naming it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ringkv } from '../support/cli.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/** Every key of a node's whole cluster and its value, read back through the export itself. */
async function contents(url: string): Promise<Map<string, Buffer>> {
  const run = await ringkv(['export', '--url', url]);
  assert.equal(run.code, 0, run.stderr);
  const map = new Map<string, Buffer>();
  for (const line of run.stdout
    .toString()
    .split('\n')
    .filter((l) => l !== '')) {
    const record = JSON.parse(line) as { key: string; value: string; valueBase64?: boolean };
    map.set(record.key, Buffer.from(record.value, record.valueBase64 ? 'base64' : 'utf8'));
  }
  return map;
}

describe('export and import', () => {
  let source: TestCluster;
  let target: TestCluster;
  const written = new Map<string, Buffer>();

  before(async () => {
    [source, target] = await Promise.all([
      startCluster({ count: 2, args: ['--sync', 'off'] }),
      startCluster({ count: 1, args: ['--sync', 'off'] }),
    ]);
    for (let i = 0; i < 300; i++) {
      const key = `k${String(i).padStart(4, '0')}`;
      const value =
        i % 10 === 0
          ? Buffer.from([0xff, 0xfe, i & 0xff, 0x00, 0x80])
          : i % 10 === 1
            ? Buffer.from(`line one\nline two\ttabbed ${i}`)
            : i % 10 === 2
              ? Buffer.alloc(0)
              : Buffer.from(`{"n":${i},"text":"värde ${i}"}`);
      const answer = await httpRequest(`${source.urls[i % 2]}${entityPath(key)}`, {
        method: 'PUT',
        body: value,
      });
      assert.equal(answer.status, 201);
      written.set(key, value);
    }
  });

  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('an export read back by import through a file gives the same entries, byte for byte', async () => {
    const exported = await ringkv(['export', '--url', source.urls[0]!]);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stderr, /exported 300 entries/);
    const lines = exported.stdout.toString().trimEnd().split('\n');
    assert.equal(lines.length, 300);
    assert.deepEqual(JSON.parse(lines[0]!), { key: 'k0000', value: '//4AAIA=', valueBase64: true });
    const file = join(await makeTempDir('ringkv-export-'), 'data.jsonl');
    writeFileSync(file, exported.stdout);
    const imported = await ringkv(['import', '--url', target.urls[0]!, '--file', file]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stderr, /imported 300 entries/);
    assert.deepEqual(await contents(target.urls[0]!), written);
  });

  it('a key range exports its keys only; import reads stdin', async () => {
    const ranged = await ringkv(['export', '--url', source.urls[1]!, '--start', 'k0100', '--end', 'k0110']);
    assert.equal(ranged.code, 0, ranged.stderr);
    const keys = ranged.stdout
      .toString()
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as { key: string }).key);
    assert.deepEqual(
      keys,
      Array.from({ length: 10 }, (_, i) => `k01${String(i).padStart(2, '0')}`),
    );
    const fresh = await startCluster({ count: 1, args: ['--sync', 'off'] });
    const imported = await ringkv(['import', '--url', fresh.urls[0]!, '--concurrency', '2'], ranged.stdout);
    assert.equal(imported.code, 0, imported.stderr);
    const copied = await contents(fresh.urls[0]!);
    assert.deepEqual([...copied.keys()], keys);
    for (const key of keys) assert.deepEqual(copied.get(key), written.get(key));
  });

  it('keys that hold newlines keep them through export and import', async () => {
    // The range's chunk form (key, newline, value) cannot tell where such a key ends.
    const [from, into] = await Promise.all([
      startCluster({ count: 2, args: ['--sync', 'off'] }),
      startCluster({ count: 1, args: ['--sync', 'off'] }),
    ]);
    const entries = new Map<string, string>([
      ['a\nb', 'c\nd'],
      ['plain', 'v'],
      ['tail\n', ''],
    ]);
    for (const [key, value] of entries) {
      const answer = await httpRequest(`${from.urls[0]}${entityPath(key)}`, { method: 'PUT', body: value });
      assert.equal(answer.status, 201);
    }
    const exported = await ringkv(['export', '--url', from.urls[1]!]);
    assert.equal(exported.code, 0, exported.stderr);
    const lines = exported.stdout
      .toString()
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { key: string; value: string });
    assert.deepEqual(new Map(lines.map((l) => [l.key, l.value])), entries);
    const imported = await ringkv(['import', '--url', into.urls[0]!], exported.stdout);
    assert.equal(imported.code, 0, imported.stderr);
    for (const [key, value] of entries) {
      const answer = await httpRequest(`${into.urls[0]}${entityPath(key)}`);
      assert.equal(answer.status, 200, JSON.stringify(key));
      assert.equal(answer.body.toString(), value);
    }
    assert.equal((await httpRequest(`${into.urls[0]}${entityPath('a')}`)).status, 404);
  });

  it('a line that is not an entry stops the import with its number; bad flags are usage errors', async () => {
    const input = [
      '{"key":"good","value":"v"}',
      '',
      '{"key":"bad","value":"!!","valueBase64":true}',
      '{"key":"never","value":"v"}',
    ].join('\n');
    const run = await ringkv(['import', '--url', target.urls[0]!], input);
    assert.equal(run.code, 2);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^ringkv: Bad line 3: "value" is not base64/);
    const never = await httpRequest(`${target.urls[0]}${entityPath('never')}`);
    assert.equal(never.status, 404);
    const loose = await ringkv(
      ['import', '--url', target.urls[0]!],
      '{"key":"loose","value":"QR==","valueBase64":true}\n',
    );
    assert.equal(loose.code, 2);
    assert.match(loose.stderr, /^ringkv: Bad line 1: "value" is not canonical base64/);
    assert.equal((await httpRequest(`${target.urls[0]}${entityPath('loose')}`)).status, 404);
    for (const [args, pattern] of [
      [['import', '--concurrency', '0'], /Bad --concurrency/],
      [['import', '--concurrency', '1000'], /Bad --concurrency: at most 256/],
      [['import', '--file', '/nonexistent/data.jsonl'], /Cannot read --file/],
      [['export', 'extra'], /.+/],
    ] as const) {
      const bad = await ringkv([...args, '--url', target.urls[0]!]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, pattern);
    }
  });
});
