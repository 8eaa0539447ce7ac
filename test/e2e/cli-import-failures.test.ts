/**
 * `ringkv import` when it stops: a bad line stops it after the writes
 * already started have settled (the lines before it stay stored, and the
 * one line on stderr says how many), and a --file that cannot be read (a
 * directory) is bad usage, exit 2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ringkv } from '../support/cli.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

function lines(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify({ key: `${prefix}${i + 1}`, value: `v${i + 1}` }),
  );
}

async function storedCount(url: string, prefix: string, count: number): Promise<number> {
  let found = 0;
  for (let i = 1; i <= count; i++) {
    const answer = await httpRequest(`${url}${entityPath(`${prefix}${i}`)}`);
    if (answer.status === 200) {
      assert.equal(answer.body.toString(), `v${i}`);
      found++;
    }
  }
  return found;
}

describe('import that stops', () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startCluster({ count: 1, args: ['--sync', 'off'] });
  });

  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('10 good lines then one that is not JSON: the 10 are stored, exit 2 naming line 11 and the count', async () => {
    const url = cluster.urls[0]!;
    const run = await ringkv(['import', '--url', url], `${[...lines('t9-', 10), 'oops'].join('\n')}\n`);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.equal(await storedCount(url, 't9-', 10), 10);
    assert.match(run.stderr, /^ringkv: Bad line 11: not JSON; imported 10 entries before it\n$/);
  });

  it('with many writes in flight (and one at a time), every line before the bad one is stored', async () => {
    const url = cluster.urls[0]!;
    for (const [prefix, concurrency] of [
      ['many-', '64'],
      ['one-', '1'],
    ] as const) {
      const input = [...lines(prefix, 200), '{"key":"x"}', ...lines(`${prefix}after-`, 5)].join('\n');
      const run = await ringkv(['import', '--concurrency', concurrency, '--url', url], input);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(await storedCount(url, prefix, 200), 200, `--concurrency ${concurrency}`);
      assert.match(
        run.stderr,
        /^ringkv: Bad line 201: "value" is not a string; imported 200 entries before it\n$/,
      );
      assert.equal(await storedCount(url, `${prefix}after-`, 5), 0, 'lines after the bad one are not read');
    }
  });

  it('a write the node refuses (a key over 1,024 bytes: 414) names its line and the count stored, exit 2', async () => {
    const url = cluster.urls[0]!;
    const tooLong = JSON.stringify({ key: 'k'.repeat(2000), value: 'v' });
    const input = [...lines('w414-', 3), tooLong, ...lines('w414-after-', 3)].join('\n');
    const run = await ringkv(['import', '--concurrency', '1', '--url', url], input);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(
      run.stderr,
      /^ringkv: Bad request: 414 .*; the write of line 4 failed, imported 3 entries before the import stopped\n$/,
    );
    assert.equal(await storedCount(url, 'w414-', 3), 3);
    assert.equal(await storedCount(url, 'w414-after-', 3), 0, 'lines after the failed one are not read');
  });

  it('--file naming a directory is bad usage (exit 2), as put --file is', async () => {
    const url = cluster.urls[0]!;
    const dir = await makeTempDir();
    const run = await ringkv(['import', '--file', dir, '--url', url]);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^ringkv: Cannot read --file .*EISDIR/);
    const put = await ringkv(['put', 'k', '--file', dir, '--url', url]);
    assert.equal(put.code, 2, put.stderr);
  });
});
