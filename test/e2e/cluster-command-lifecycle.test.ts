/**
 * `ringkv cluster` around its nodes' lives: the nodes stop when the command
 * is killed outright, a node stopped from elsewhere takes the rest down as a
 * crashed one does, a node that was decommissioned does not, and a --data
 * that holds a cluster starts only that cluster's members.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PROTOCOL, UPGRADE_PATH } from '../../src/cluster/transport/format.js';
import { httpRequest, RawConnection } from '../support/http-client.js';
import {
  isRunning,
  killAllStarted,
  type NodeProcess,
  runCli,
  sleep,
  spawnCli,
  stopNode,
  waitClusterUrls,
  waitGone,
} from '../support/node-process.js';
import { freeConsecutivePorts } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/** Node processes the cluster started, killed in `after` should a test leave one behind. */
const nodePids: number[] = [];

async function pidOf(url: string): Promise<number> {
  const answer = await httpRequest(`${url}/v0/status`);
  assert.equal(answer.status, 200);
  const pid = (JSON.parse(answer.body.toString()) as { pid: number }).pid;
  nodePids.push(pid);
  return pid;
}

/** A node's shutdown is bounded by 10 s: waits at most 15 s for it to be gone. */
const waitGoneLong = (pid: number): Promise<boolean> => waitGone(pid, 15_000);

async function waitExit(cluster: NodeProcess): Promise<void> {
  for (let attempt = 0; attempt < 600 && cluster.exit === undefined; attempt++) await sleep(50);
}

function clusterArgs(base: number, nodes: number, data: string, ...more: string[]): string[] {
  return [
    'cluster',
    '--nodes',
    String(nodes),
    '--base-port',
    String(base),
    '--data',
    data,
    '--sync',
    'off',
    ...more,
  ];
}

describe('ringkv cluster: its nodes, its end', () => {
  after(async () => {
    await killAllStarted();
    for (const pid of nodePids) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    await removeTempDirs();
  });

  it('killed with SIGKILL, it leaves no node running: each stops as on SIGTERM; pretty log lines name their node', async () => {
    const base = (await freeConsecutivePorts(2))[0]!;
    const cluster = spawnCli(clusterArgs(base, 2, await makeTempDir(), '--log-format', 'pretty'));
    const urls = await waitClusterUrls(cluster, 2);
    const pids = [await pidOf(urls[0]!), await pidOf(urls[1]!)];
    process.kill(cluster.pid, 'SIGKILL');
    for (const pid of pids) assert.ok(await waitGoneLong(pid), `node process ${pid} still running`);
    // The nodes wrote to the stderr they were given, the test's pipe: each stopped cleanly.
    await cluster.closed;
    const stopped = cluster.stderr.split('\n').filter((line) => / node\.stopped /.test(line));
    assert.deepEqual(
      stopped.map((line) => line.split(/ +/)[2]).sort(),
      [`127.0.0.1:${base}`, `127.0.0.1:${base + 1}`],
      cluster.stderr,
    );
    assert.match(cluster.stderr, /node\.stopping +parent-exited: shutting down/);
  });

  it('a node stopped from elsewhere (exit 0, still a member) stops the others: exit 1', async () => {
    const base = (await freeConsecutivePorts(2))[0]!;
    const cluster = spawnCli(clusterArgs(base, 2, await makeTempDir()));
    const urls = await waitClusterUrls(cluster, 2);
    const victim = await pidOf(urls[0]!);
    const survivor = await pidOf(urls[1]!);
    process.kill(victim, 'SIGTERM');
    await waitExit(cluster);
    assert.equal(cluster.exit?.code, 1, cluster.stderr);
    assert.match(
      cluster.stderr,
      /node-0 \(http:\/\/127\.0\.0\.1:\d+\) exited unexpectedly \(code 0\): stopping/,
    );
    assert.doesNotMatch(cluster.stderr, /left the cluster/);
    assert.ok(await waitGoneLong(survivor), 'the other node was not stopped');
  });

  it('stopped while a node refuses a handshake that its sender then resets: every node stops cleanly, exit 0', async () => {
    // As when the whole cluster stops at once: a peer's handshake reaches a node already leaving,
    // is refused 503, and the peer, stopping too, resets the connection. That reset once killed the
    // node (an uncaught ECONNRESET), and the command exited 1.
    const base = (await freeConsecutivePorts(2))[0]!;
    const cluster = spawnCli(clusterArgs(base, 2, await makeTempDir()));
    const urls = await waitClusterUrls(cluster, 2);
    const pids = [await pidOf(urls[0]!), await pidOf(urls[1]!)];
    // The head is held back by its last line end, so that the handshake arrives once the node leaves
    // (a connection with a request under way is kept until then; new ones are refused once it leaves).
    const conn = await RawConnection.open(base);
    await conn.write(
      `GET ${UPGRADE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${base}\r\nConnection: Upgrade\r\nUpgrade: ${PROTOCOL}\r\n`,
    );
    process.kill(cluster.pid, 'SIGTERM');
    const leaving = (line: string) =>
      line.includes(`"node":"${urls[0]}"`) && line.includes('"event":"node.stopping"');
    for (let attempt = 0; attempt < 300 && !cluster.stderr.split('\n').some(leaving); attempt++)
      await sleep(50);
    assert.ok(cluster.stderr.split('\n').some(leaving), cluster.stderr);
    await conn.write('\r\n');
    assert.equal((await conn.readAnswer()).status, 503);
    conn.socket.resetAndDestroy();
    await waitExit(cluster);
    assert.deepEqual(cluster.exit, { code: 0, signal: null }, cluster.stderr);
    assert.doesNotMatch(cluster.stderr, /ECONNRESET/);
    for (const pid of pids) assert.ok(await waitGoneLong(pid), `node process ${pid} still running`);
  });

  it('stopped while its nodes are still starting: they stop with it, exit 0, no node reported lost', async () => {
    const base = (await freeConsecutivePorts(2))[0]!;
    const cluster = spawnCli(clusterArgs(base, 2, await makeTempDir()));
    // SIGTERM as soon as both nodes exist: they are still loading, their own handlers not installed,
    // so the forwarded signal ends them outright. That once made the command exit 1.
    const children = () =>
      readFileSync(`/proc/${cluster.pid}/task/${cluster.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean);
    for (let attempt = 0; attempt < 2000 && children().length < 2 && cluster.exit === undefined; attempt++)
      await sleep(2);
    const pids = children().map(Number);
    assert.equal(pids.length, 2, cluster.stderr);
    nodePids.push(...pids);
    process.kill(cluster.pid, 'SIGTERM');
    await waitExit(cluster);
    assert.deepEqual(cluster.exit, { code: 0, signal: null }, cluster.stderr);
    assert.doesNotMatch(cluster.stderr, /exited|ready/, cluster.stderr);
    for (const pid of pids) assert.ok(await waitGoneLong(pid), `node process ${pid} still running`);
  });

  it('a node decommissioned left the cluster: the others go on', async () => {
    const base = (await freeConsecutivePorts(3))[0]!;
    const cluster = spawnCli(clusterArgs(base, 3, await makeTempDir()));
    const urls = await waitClusterUrls(cluster, 3);
    const leaving = await pidOf(urls[2]!);
    const decommission = await runCli(['decommission', '--url', urls[2]!, '--timeout', '60000'], 70_000);
    assert.equal(decommission.code, 0, decommission.stderr);
    assert.ok(await waitGoneLong(leaving), 'the decommissioned node is still running');
    for (let attempt = 0; attempt < 100 && !/left the cluster/.test(cluster.stderr); attempt++)
      await sleep(50);
    assert.match(
      cluster.stderr,
      /node-2 \(http:\/\/127\.0\.0\.1:\d+\) left the cluster \(exit 0\); the others go on/,
    );
    assert.equal(cluster.exit, undefined, cluster.stderr);
    assert.equal((await httpRequest(`${urls[0]}/v0/status`)).status, 200);
    assert.deepEqual(await stopNode(cluster, { signal: 'SIGTERM', timeoutMs: 15_000 }), {
      code: 0,
      signal: null,
    });
  });

  it('on the data of a cluster, starts only its members: other --nodes or --base-port refused with one line', async () => {
    const base = (await freeConsecutivePorts(3))[0]!;
    const data = await makeTempDir();
    const first = spawnCli(clusterArgs(base, 2, data));
    await waitClusterUrls(first, 2);
    assert.deepEqual(await stopNode(first, { signal: 'SIGTERM', timeoutMs: 15_000 }), {
      code: 0,
      signal: null,
    });
    for (const [nodes, from] of [
      [3, base],
      [1, base],
      [2, base + 1],
    ] as const) {
      const run = await runCli(clusterArgs(from, nodes, data), 30_000);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
      assert.match(
        run.stderr.trim(),
        new RegExp(
          `^ringkv: Refused: .* holds a cluster of 2 \\(http://127\\.0\\.0\\.1:${base}, http://127\\.0\\.0\\.1:${base + 1};`,
        ),
      );
      assert.doesNotMatch(run.stdout, /ready/);
    }
    // A node it lacks was not started: it would have made a cluster of its own.
    assert.ok(!existsSync(join(data, 'node-2')), 'node-2 was started');
    // Its own members start again.
    const again = spawnCli(clusterArgs(base, 2, data));
    assert.deepEqual(await waitClusterUrls(again, 2), [
      `http://127.0.0.1:${base}`,
      `http://127.0.0.1:${base + 1}`,
    ]);
    assert.deepEqual(await stopNode(again, { signal: 'SIGTERM', timeoutMs: 15_000 }), {
      code: 0,
      signal: null,
    });
  });
});
