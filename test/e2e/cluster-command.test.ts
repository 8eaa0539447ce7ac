/**
 * `ringkv cluster`: N `serve` processes on consecutive ports, URLs printed once
 * all are ready, signals forwarded, a member that dies takes the rest down.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { httpRequest } from '../support/http-client.js';
import {
  killAllStarted,
  runCli,
  sleep,
  spawnCli,
  stopNode,
  waitClusterUrls,
  waitGone,
} from '../support/node-process.js';
import { freeConsecutivePorts } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

interface Status {
  node: string;
  cluster: string[];
  pid: number;
  store: { clockSkewMaxMs?: number; antiEntropy: { intervalMs?: number } };
}

async function statusOf(url: string): Promise<Status> {
  const answer = await httpRequest(`${url}/v0/status`);
  assert.equal(answer.status, 200);
  return JSON.parse(answer.body.toString()) as Status;
}

describe('ringkv cluster', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('starts the nodes, prints their URLs, and stops them all on SIGTERM', async () => {
    const base = (await freeConsecutivePorts(2))[0]!;
    const data = await makeTempDir();
    const cluster = spawnCli([
      'cluster',
      '--nodes',
      '2',
      '--base-port',
      String(base),
      '--data',
      data,
      '--sync',
      'off',
      '--max-clock-skew',
      '250',
      '--anti-entropy-interval',
      '0',
    ]);
    const urls = await waitClusterUrls(cluster, 2);
    assert.deepEqual(urls, [`http://127.0.0.1:${base}`, `http://127.0.0.1:${base + 1}`]);
    const pids: number[] = [];
    for (const [i, url] of urls.entries()) {
      const status = await statusOf(url);
      assert.equal(status.node, url);
      assert.deepEqual(status.cluster, urls);
      // Serve flags reach every node.
      assert.equal(status.store.clockSkewMaxMs, 250);
      assert.equal(status.store.antiEntropy.intervalMs, 0);
      assert.ok(existsSync(join(data, `node-${i}`)));
      pids.push(status.pid);
    }
    assert.deepEqual(await stopNode(cluster, { signal: 'SIGTERM', timeoutMs: 15_000 }), {
      code: 0,
      signal: null,
    });
    for (const pid of pids) assert.ok(await waitGone(pid), `node process ${pid} still running`);
  });

  it('with its defaults: 3 nodes, data in ./data/node-<i>, until SIGINT; npm start runs it so', async () => {
    const pkg = JSON.parse(
      readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8'),
    );
    assert.match(pkg.scripts.start, /bin\/ringkv cluster$/, 'npm start: the cluster command, no flags');
    const base = (await freeConsecutivePorts(3))[0]!;
    const cwd = await makeTempDir();
    // Only the port is given (the default, 8080, may be taken); --nodes and --data are left out.
    const cluster = spawnCli(['cluster', '--base-port', String(base)], { cwd });
    const urls = await waitClusterUrls(cluster, 3);
    assert.deepEqual(
      urls,
      [0, 1, 2].map((i) => `http://127.0.0.1:${base + i}`),
    );
    for (const [i, url] of urls.entries()) {
      assert.deepEqual((await statusOf(url)).cluster, urls);
      assert.ok(existsSync(join(cwd, 'data', `node-${i}`)), `${cwd}/data/node-${i}`);
    }
    const put = await httpRequest(`${urls[0]}/v0/entity?id=defaults`, { method: 'PUT', body: 'v' });
    assert.equal(put.status, 201);
    assert.equal((await httpRequest(`${urls[2]}/v0/entity?id=defaults&ack=3`)).body.toString(), 'v');
    assert.deepEqual(await stopNode(cluster, { signal: 'SIGINT', timeoutMs: 15_000 }), {
      code: 0,
      signal: null,
    });
  });

  it('stops the others and exits non-zero when a node dies', async () => {
    const base = (await freeConsecutivePorts(2))[0]!;
    const cluster = spawnCli([
      'cluster',
      '--nodes',
      '2',
      '--base-port',
      String(base),
      '--data',
      await makeTempDir(),
    ]);
    const urls = await waitClusterUrls(cluster, 2);
    const victim = (await statusOf(urls[0]!)).pid;
    const survivor = (await statusOf(urls[1]!)).pid;
    process.kill(victim, 'SIGKILL');
    // The cluster notices on its own and exits.
    for (let attempt = 0; attempt < 300 && cluster.exit === undefined; attempt++) await sleep(50);
    assert.equal(cluster.exit?.code, 1);
    await cluster.closed;
    assert.match(cluster.stderr, /node-0 \(http:\/\/127\.0\.0\.1:\d+\) exited unexpectedly/);
    assert.ok(await waitGone(survivor), 'the other node was not stopped');
  });

  it('refuses a bad node flag, an empty --data, a flag given twice and a negative number with one line, starting no node', async () => {
    const dir = await makeTempDir();
    for (const [args, message] of [
      [['--sync', 'maybe', '--data', dir], /^ringkv: Bad --sync: expected on or off, got "maybe"$/],
      [['--data', ''], /^ringkv: Missing --data: an empty path$/],
      [['--nodes', '1', '--nodes', '2', '--data', dir], /^ringkv: Option '--nodes' is given twice$/],
      [
        ['--nodes', '-2', '--data', dir],
        /^ringkv: Bad --nodes: expected a whole number in 1\.\.64, got "-2"$/,
      ],
      [
        ['--request-timeout', '-1', '--data', dir],
        /^ringkv: Bad --request-timeout: expected a whole number, got "-1"$/,
      ],
    ] as const) {
      const result = await runCli(['cluster', '--base-port', '25900', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr.trim(), message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.ok(!existsSync(join(dir, 'node-0')), 'no node was started');
    }
  });

  it('refuses a bad --nodes with one line', async () => {
    const result = await runCli(['cluster', '--nodes', '0']);
    assert.equal(result.code, 2);
    assert.match(result.stderr.trim(), /^ringkv: Bad --nodes/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  });
});
