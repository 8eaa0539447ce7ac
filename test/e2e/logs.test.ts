/**
 * What a node logs, read off real processes: one JSON record per line on
 * stderr with time, level, node and event; ready, peer down and up once per
 * change (not once per probe or request), the missing-secret warning once,
 * shutdown; --log-level, --log-format, and bad values refused in one line.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startCluster, waitPeerState } from '../support/cluster.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import {
  killAllStarted,
  pauseNode,
  resumeNode,
  runCli,
  sleep,
  startNode,
  stopNode,
  threadPool,
} from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

interface LogRecord {
  readonly time: string;
  readonly level: string;
  readonly node: string;
  readonly event: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** Every stderr line as a record: a line that is not one fails the test. */
function records(stderr: string): LogRecord[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const record = JSON.parse(line) as LogRecord;
      for (const field of ['time', 'level', 'node', 'event', 'msg'] as const) {
        assert.equal(typeof record[field], 'string', `${field} in ${line}`);
      }
      return record;
    });
}

const events = (stderr: string, event: string, fields: Record<string, unknown> = {}) =>
  records(stderr).filter(
    (r) => r.event === event && Object.entries(fields).every(([key, value]) => r[key] === value),
  );

/** Waits (bounded) until `check` holds; fails the test if it never does. */
async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) assert.fail(`not within ${timeoutMs} ms: ${check}`);
    await sleep(25);
  }
}

describe('logs', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a cluster node logs ready, the missing secret once, each peer change once, and its shutdown', async () => {
    const cluster = await startCluster({ count: 2, args: ['--sync', 'off', '--slow-request', '200'] });
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const peer = b.url;
    await until(() => events(a.stderr, 'node.ready').length === 1, 5000);
    const ready = events(a.stderr, 'node.ready');
    assert.equal(ready.length, 1);
    assert.equal(ready[0]!.node, a.url);
    assert.equal(ready[0]!.level, 'info');
    assert.match(ready[0]!.time, /^\d{4}-\d\d-\d\dT/);
    // The test's nodes get the pool bin/ringkv gives (test/support/node-process.ts).
    assert.equal(ready[0]!.threadPool, threadPool.threadPoolSize());
    assert.match(
      String(ready[0]!.nativeBlockReader),
      process.env.RINGKV_REQUIRE_NATIVE === '1'
        ? /^loaded$/
        : /^(loaded|not built \(.+\)|RINGKV_NATIVE=off)$/,
    );
    assert.equal(events(a.stderr, 'config.no-secret').length, 1);
    assert.equal(events(a.stderr, 'config.no-secret')[0]!.level, 'warn');

    // A read that must wait for a hung replica (paused) until the request timeout is a slow request.
    pauseNode(b);
    const slow = await httpRequest(`${a.url}${entityPath('k', { ack: 2, from: 2 })}`);
    resumeNode(b);
    assert.equal(slow.status, 504);
    await until(() => events(a.stderr, 'request.slow').length > 0, 2000);
    const slowRecords = events(a.stderr, 'request.slow', { op: 'get', status: 504 });
    assert.equal(slowRecords.length, 1, a.stderr);
    assert.ok((slowRecords[0]!.ms as number) >= 200);
    assert.equal(slowRecords[0]!.level, 'warn');
    assert.ok(await waitPeerState(a.url, peer, 'up'), `${a.url} sees ${peer} up`);

    const downBefore = events(a.stderr, 'peer.down', { peer }).length;
    const upBefore = events(a.stderr, 'peer.up', { peer }).length;
    await stopNode(b);
    // Probes run every 250 ms: two seconds down is several failed attempts, and one record.
    await sleep(2000);
    assert.equal(events(a.stderr, 'peer.down', { peer }).length, downBefore + 1, a.stderr);
    // Writes the stopped peer misses become hints, delivered (and logged once) when it is back.
    for (const key of ['h1', 'h2', 'h3']) {
      const put = await httpRequest(`${a.url}${entityPath(key, { ack: 1, from: 2 })}`, {
        method: 'PUT',
        body: key,
      });
      assert.equal(put.status, 201);
    }
    await cluster.restart(1);
    await until(
      () => records(a.stderr).some((r) => r.event === 'hints' && r.msg.startsWith('Delivered')),
      5000,
    );
    const deliveries = records(a.stderr).filter((r) => r.event === 'hints' && r.msg.startsWith('Delivered'));
    assert.deepEqual(
      deliveries.map((r) => r.msg),
      [`Delivered 3 hints to ${peer}`],
    );
    await until(() => events(a.stderr, 'peer.up', { peer }).length > upBefore, 5000);
    assert.equal(events(a.stderr, 'peer.up', { peer }).length, upBefore + 1, a.stderr);

    const exit = await stopNode(a);
    assert.equal(exit.code, 0);
    const last = records(a.stderr).slice(-2);
    assert.deepEqual(
      last.map((r) => r.event),
      ['node.stopping', 'node.stopped'],
    );
  });

  it('peer.down says once that the peer is down and why: a hung peer, one that left', async () => {
    const cluster = await startCluster({ count: 2, args: ['--sync', 'off'] });
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const peer = b.url;
    assert.ok(await waitPeerState(a.url, peer, 'up'), `${a.url} sees ${peer} up`);
    // The nodes may have seen each other refuse while they started.
    const downBefore = events(a.stderr, 'peer.down', { peer }).length;
    const upBefore = events(a.stderr, 'peer.up', { peer }).length;
    // Hung: found by the heartbeat after 2 s of silence.
    pauseNode(b);
    await until(() => events(a.stderr, 'peer.down', { peer }).length > downBefore, 6000);
    resumeNode(b);
    await until(() => events(a.stderr, 'peer.up', { peer }).length > upBefore, 6000);
    await stopNode(b);
    await until(() => events(a.stderr, 'peer.down', { peer }).length > downBefore + 1, 6000);
    const down = events(a.stderr, 'peer.down', { peer })
      .slice(downBefore)
      .map((r) => r.msg);
    assert.equal(down.length, 2, a.stderr);
    assert.match(down[0]!, new RegExp(`^Peer ${peer} is down: .*sent nothing for \\d+ ms$`));
    assert.equal(down[1], `Peer ${peer} is down: Peer ${peer} is leaving`);
    for (const msg of down) assert.equal(msg.split(' is down').length, 2, msg);
    assert.equal((await stopNode(a)).code, 0);
  });

  it('--log-level warn keeps warnings only; --log-format pretty prints text lines', async () => {
    const quiet = await startNode({
      dataDir: await makeTempDir('ringkv-logs-'),
      args: ['--log-level', 'warn', '--sync', 'off'],
      env: { RINGKV_CLOCK_OFFSET_MS: '5' },
    });
    await stopNode(quiet);
    const quietRecords = records(quiet.stderr);
    assert.ok(quietRecords.length >= 1, quiet.stderr);
    assert.ok(
      quietRecords.every((r) => r.level === 'warn' || r.level === 'error'),
      quiet.stderr,
    );

    const pretty = await startNode({
      dataDir: await makeTempDir('ringkv-logs-'),
      args: ['--log-format', 'pretty', '--sync', 'off'],
    });
    await stopNode(pretty);
    const lines = pretty.stderr.split('\n').filter((line) => line !== '');
    assert.ok(lines.length >= 3, pretty.stderr);
    for (const line of lines) assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO |WARN |ERROR) \S/);
    assert.ok(lines.some((line) => line.includes('node.ready')));
  });

  it('flushes (and compactions) are summed up in one record each', async () => {
    const node = await startNode({
      dataDir: await makeTempDir('ringkv-logs-'),
      args: ['--memtable-bytes', '4096', '--sync', 'off'],
    });
    for (let i = 0; i < 100; i++) {
      const put = await httpRequest(`${node.url}${entityPath(`key-${i}`)}`, {
        method: 'PUT',
        body: 'x'.repeat(200),
      });
      assert.equal(put.status, 201);
    }
    await until(() => events(node.stderr, 'engine.background').length > 0, 5000);
    await stopNode(node);
    const flushes = events(node.stderr, 'engine.background').filter((r) => r.msg.startsWith('Flushed'));
    assert.ok(flushes.length >= 2, node.stderr);
    assert.match(
      flushes[0]!.msg,
      /^Flushed a memtable to level 0: 1 table, \d+ entries, \d+ bytes in \d+ ms$/,
    );
  });

  it('a bad --log-level or --log-format is one plain line and exit 2', async () => {
    for (const [flag, value] of [
      ['--log-level', 'loud'],
      ['--log-format', 'xml'],
    ] as const) {
      const result = await runCli([
        'serve',
        '--url',
        'http://127.0.0.1:1',
        '--data',
        '/nonexistent',
        flag,
        value,
      ]);
      assert.equal(result.code, 2);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`Bad ${flag}: expected`));
    }
  });
});
