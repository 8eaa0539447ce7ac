/**
 * Starts that cannot work are refused before anything is written: a node
 * that would join through itself or replace itself under another spelling
 * of its URL, and a bad number in the environment a node reads, as one line
 * and exit 2 with no data directory made; `ringkv cluster` on a node
 * directory that is a file or locked by a running node, before any node
 * starts; and the serve flags `ringkv
 * cluster` passes on reach its nodes as given, a value starting with '-' too.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { killAllStarted, sleep, spawnCli, stopNode, waitClusterUrls } from '../support/node-process.js';
import { freeConsecutivePorts, freePort } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/** Runs `ringkv <args>` with `env` added to its environment, to its end (killed after 10 s). */
async function run(args: readonly string[], env: Record<string, string> = {}) {
  const child = spawnCli(args, { env });
  const timer = setTimeout(() => child.child.kill('SIGKILL'), 10_000);
  const exit = await child.exited;
  await child.closed;
  clearTimeout(timer);
  return { code: exit.code, stderr: child.stderr };
}

function assertRefused(result: { code: number | null; stderr: string }, message: RegExp): void {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  assert.match(result.stderr.trim(), message);
}

describe('starts refused before anything is written', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('serve --join or --replace naming this node as localhost: exit 2, no data directory', async () => {
    const [port, other] = await freeConsecutivePorts(2);
    const self = `http://127.0.0.1:${port}`;
    for (const [extra, message] of [
      [['--join', `http://localhost:${port}`], /^ringkv: Bad --join: .* are the same node/],
      [
        ['--join', `http://127.0.0.1:${other}`, '--replace', `http://localhost:${port}`],
        /^ringkv: Bad --replace: .* are the same node/,
      ],
      [
        ['--join', `http://127.0.0.1:${other}`, '--replace', `http://localhost:${other}`],
        /^ringkv: Bad --replace: .* are the same node/,
      ],
    ] as const) {
      const data = join(await makeTempDir(), 'node');
      assertRefused(await run(['serve', '--url', self, '--data', data, ...extra]), message);
      assert.ok(!existsSync(data), `${extra.join(' ')}: the data directory was made`);
    }
  });

  it('serve with a bad RINGKV_STREAM_BYTES_PER_SEC: exit 2, no data directory, alone or in a cluster', async () => {
    const [port, other] = await freeConsecutivePorts(2);
    const self = `http://127.0.0.1:${port}`;
    for (const cluster of [[], ['--cluster', `${self},http://127.0.0.1:${other}`]]) {
      const data = join(await makeTempDir(), 'node');
      assertRefused(
        await run(['serve', '--url', self, '--data', data, ...cluster], {
          RINGKV_STREAM_BYTES_PER_SEC: 'fast',
        }),
        /^ringkv: Bad RINGKV_STREAM_BYTES_PER_SEC: expected a positive whole number, got "fast"$/,
      );
      assert.ok(!existsSync(data), 'the data directory was made');
    }
  });

  it('serve with a switch in the environment set to a value it does not take: exit 2, no data directory', async () => {
    const port = await freePort();
    const data = join(await makeTempDir(), 'node');
    assertRefused(
      await run(['serve', '--url', `http://127.0.0.1:${port}`, '--data', data], { RINGKV_INTERNODE: 'htp' }),
      /^ringkv: Bad RINGKV_INTERNODE: expected binary or http, got "htp"$/,
    );
    assert.ok(!existsSync(data), 'the data directory was made');
  });

  it('cluster with a bad number in the environment: one line, exit 2, no node started', async () => {
    const base = await freePort();
    const data = await makeTempDir();
    assertRefused(
      await run(['cluster', '--nodes', '1', '--base-port', String(base), '--data', data], {
        RINGKV_CLOCK_OFFSET_MS: 'soon',
      }),
      /^ringkv: Bad RINGKV_CLOCK_OFFSET_MS: /,
    );
    assert.ok(!existsSync(join(data, 'node-0')), 'a node was started');
  });

  it('cluster with a node directory that is a file: one line, exit 1, no node started', async () => {
    const base = (await freeConsecutivePorts(2))[0]!;
    const data = await makeTempDir();
    writeFileSync(join(data, 'node-1'), 'not a directory');
    const result = await run(['cluster', '--nodes', '2', '--base-port', String(base), '--data', data]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr.trim(),
      `ringkv: Cannot use data directory ${join(data, 'node-1')}: not a directory`,
    );
    assert.ok(!existsSync(join(data, 'node-0')), 'a node was started');
  });

  it('cluster with a node directory locked by a running node: one line, exit 1, no node started', async () => {
    const [base, other] = await freeConsecutivePorts(3);
    const data = await makeTempDir();
    // node-1's directory in use by a node of its own.
    const holder = spawnCli([
      'serve',
      '--url',
      `http://127.0.0.1:${other! + 1}`,
      '--data',
      join(data, 'node-1'),
    ]);
    for (let i = 0; i < 200 && !existsSync(join(data, 'node-1', 'LOCK')); i++) await sleep(25);
    assert.ok(existsSync(join(data, 'node-1', 'LOCK')), holder.stderr);
    const result = await run(['cluster', '--nodes', '2', '--base-port', String(base), '--data', data]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      result.stderr.trim(),
      `ringkv: Data directory ${join(data, 'node-1')} is locked by process ${holder.pid}`,
    );
    assert.ok(!existsSync(join(data, 'node-0')), 'a node was started');
    assert.equal((await stopNode(holder)).code, 0);
  });
});

describe('ringkv cluster passes serve flags as given', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a --cluster-secret that starts with "-" reaches the nodes, which start', async () => {
    const base = await freePort();
    const cluster = spawnCli([
      'cluster',
      '--nodes',
      '1',
      '--base-port',
      String(base),
      '--data',
      await makeTempDir(),
      '--cluster-secret=-s3cret',
      '--anti-entropy-interval',
      '0',
    ]);
    assert.deepEqual(await waitClusterUrls(cluster, 1), [`http://127.0.0.1:${base}`]);
    assert.deepEqual(await stopNode(cluster, { signal: 'SIGTERM', timeoutMs: 15_000 }), {
      code: 0,
      signal: null,
    });
  });
});
