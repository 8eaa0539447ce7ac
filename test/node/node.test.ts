/**
 * Nodes started in-process through the same Node class the CLI uses: start
 * order (ready only once every peer was tried), the restart guarantee, and
 * the stop order (leaving before closing, new connections refused from the
 * first moment; a failed hint drain does not stop the rest), without child
 * processes.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ServeFlags, serveOptions } from '../../src/config/options.js';
import { Node, type NodeSettings } from '../../src/node/index.js';
import { FaultyVfs, nodeVfs } from '../../src/storage/index.js';
import { isRingkvError } from '../../src/util/errors.js';
import { createLog, type Log, silentLog } from '../../src/util/log.js';
import { storeStatus } from '../support/cluster.js';
import { entityPath, httpRequest, RawConnection } from '../support/http-client.js';
import { freePorts } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

describe('Node, in-process', () => {
  const running = new Set<Node>();
  after(async () => {
    await Promise.all([...running].map((node) => node.stop()));
    await removeTempDirs();
  });

  async function start(
    url: string,
    cluster: readonly string[],
    dataDir: string,
    more: { flags?: ServeFlags } & Partial<NodeSettings> = {},
  ): Promise<Node> {
    const { flags, ...settings } = more;
    const options = serveOptions({
      url,
      data: dataDir,
      cluster: cluster.join(','),
      sync: 'off',
      ...flags,
    });
    const node = await Node.start(options, { log: silentLog, ...settings });
    running.add(node);
    return node;
  }

  /** A JSON log whose records the test reads. */
  function recordingLog(url: string): { log: Log; records: Record<string, unknown>[] } {
    const records: Record<string, unknown>[] = [];
    const log = createLog({
      node: url,
      format: 'json',
      sink: { write: (line) => records.push(JSON.parse(line) as Record<string, unknown>) },
    });
    return { log, records };
  }

  async function stop(node: Node): Promise<void> {
    await node.stop();
    running.delete(node);
  }

  it('a single node is ready when start() resolves, and serves requests', async () => {
    const [port] = await freePorts(1);
    const url = `http://127.0.0.1:${port}`;
    const node = await start(url, [url], await makeTempDir());
    assert.equal(node.ready, true);
    assert.equal((await httpRequest(`${url}/v0/health?ready=1`)).status, 200);
    assert.equal((await httpRequest(`${url}${entityPath('k')}`, { method: 'PUT', body: 'v' })).status, 201);
    assert.equal((await httpRequest(`${url}${entityPath('k')}`)).body.toString(), 'v');
    await stop(node);
    await assert.rejects(httpRequest(`${url}/v0/health`));
  });

  it('answers ready=1 and /v0/status with 503 "starting" until every peer was tried, then 200 "ready"', async () => {
    // A peer that accepts connections and never answers: its handshake is tried until it times out.
    const accepted = new Set<Socket>();
    const silent = createServer((socket) => {
      accepted.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const [port] = await freePorts(1);
      const url = `http://127.0.0.1:${port}`;
      const peer = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      let started = false;
      const starting = start(url, [url, peer], await makeTempDir()).finally(() => {
        started = true;
      });
      // Until start() resolves, every answer (once the node listens) is the 503.
      const answers = new Set<string>();
      let count = 0;
      for (let attempt = 0; attempt < 2000 && !started; attempt++) {
        for (const path of ['/v0/health?ready=1', '/v0/status']) {
          const answer = await httpRequest(`${url}${path}`, { timeoutMs: 1000 }).catch(() => undefined);
          if (answer === undefined || started) continue;
          answers.add(`${path} ${answer.status} ${path === '/v0/status' ? '' : answer.body}`.trim());
          count++;
        }
        await sleep(10);
      }
      const node = await starting;
      assert.ok(count > 0, 'the node answered while it was starting');
      assert.deepEqual([...answers].sort(), [
        '/v0/health?ready=1 503 {"status":"starting"}',
        '/v0/status 503',
      ]);
      assert.equal(node.ready, true);
      const ready = await httpRequest(`${url}/v0/health?ready=1`);
      assert.equal(`${ready.status} ${ready.body}`, '200 {"status":"ready"}');
      assert.equal((await httpRequest(`${url}/v0/status`)).status, 200);
      await stop(node);
    } finally {
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('two nodes: a node stopped and started again is used by the other from the first request', async () => {
    const ports = await freePorts(2);
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    const dirs = [await makeTempDir(), await makeTempDir()];
    const [a, b] = await Promise.all(urls.map((url, i) => start(url, urls, dirs[i]!)));
    const all = { ack: 2, from: 2 };
    const put = await httpRequest(`${urls[0]}${entityPath('k', all)}`, { method: 'PUT', body: 'v1' });
    assert.equal(put.status, 201);

    await stop(b!);
    // a heard b leave: it no longer counts b as up, and still answers what needs only itself.
    const peers = (await storeStatus(urls[0]!)).peers as Record<string, string>;
    assert.notEqual(peers[urls[1]!], 'up');
    assert.equal((await httpRequest(`${urls[0]}${entityPath('k', { ack: 1, from: 2 })}`)).status, 200);

    const again = await start(urls[1]!, urls, dirs[1]!);
    assert.equal(again.ready, true);
    // At once, through the node that stayed up: every request needing both answers.
    const [get, write, range] = await Promise.all([
      httpRequest(`${urls[0]}${entityPath('k', all)}`),
      httpRequest(`${urls[0]}${entityPath('k2', all)}`, { method: 'PUT', body: 'x' }),
      httpRequest(`${urls[0]}/v0/entities?start=a&scope=cluster`),
    ]);
    assert.equal(get.status, 200);
    assert.equal(get.body.toString(), 'v1');
    assert.equal(write.status, 201);
    assert.equal(range.status, 200);
    await stop(a!);
    await stop(again);
  });

  it('a stopping node refuses new connections at once, while its open ones get the leaving 503', async () => {
    const ports = await freePorts(2);
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    const [a, b] = await Promise.all(urls.map(async (url) => start(url, urls, await makeTempDir())));
    const open = await RawConnection.open(ports[1]!);
    // Through b to both: b's link to a is open (so b waits for a's acknowledgement below), and
    // the connection was accepted.
    const body = 'v';
    await open.write(
      `PUT ${entityPath('k', { ack: 2, from: 2 })} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    assert.equal((await open.readAnswer()).status, 201);
    const stopping = stop(b!);
    // b now waits for a to acknowledge that it leaves. A connection the kernel completed in that
    // time would be reset when the listener closed, after the client had sent its request on it.
    await assert.rejects(RawConnection.open(ports[1]!), /ECONNREFUSED/);
    await open.write(`GET ${entityPath('k')} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
    const answer = await open.readAnswer();
    assert.equal(answer.status, 503);
    assert.equal(answer.headers.connection, 'close');
    assert.equal(await open.waitClosed(2000), true);
    await stopping;
    await stop(a!);
  });

  it('a member restarted with --join logs once that --join was ignored, with its epoch', async () => {
    const ports = await freePorts(2);
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    const dirs = [await makeTempDir(), await makeTempDir()];
    const [a, b] = await Promise.all(urls.map((url, i) => start(url, urls, dirs[i]!)));
    await stop(b!);
    const { log, records } = recordingLog(urls[1]!);
    const again = await start(urls[1]!, [], dirs[1]!, { flags: { cluster: undefined, join: urls[0]! }, log });
    const ignored = records.filter((r) => r.event === 'membership.join-ignored');
    assert.equal(ignored.length, 1, JSON.stringify(records));
    assert.equal(ignored[0]!.level, 'info');
    assert.equal(
      ignored[0]!.msg,
      `--join ${urls[0]} was ignored: this node is already a member of the cluster (normal, epoch 1)`,
    );
    assert.equal(again.clusterSize, 2);
    await stop(again);
    await stop(a!);
  });

  it("refuses --cluster and --join on a directory that holds a single node's keys, and leaves it as it was", async () => {
    const ports = await freePorts(2);
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    const dir = await makeTempDir();
    const alone = await start(urls[0]!, [urls[0]!], dir);
    const put = await httpRequest(`${urls[0]}${entityPath('k')}`, { method: 'PUT', body: 'v' });
    assert.equal(put.status, 201);
    await stop(alone);

    const refused = (err: unknown): boolean =>
      isRingkvError(err, 'RINGKV_CONFIG') &&
      err.message ===
        `Data directory ${dir} holds a single node's keys (it ran without --cluster or --join): a node starts a cluster (--cluster) or joins one (--join) on an empty directory only, since the other nodes would not hold these keys; to bring them into a cluster, export them from this node alone (ringkv export) and import them into the cluster (ringkv import)`;
    await assert.rejects(start(urls[0]!, urls, dir), refused);
    // --join too (refused before the member is asked: none listens there).
    await assert.rejects(
      start(urls[0]!, [], dir, { flags: { cluster: undefined, join: urls[1]! } }),
      refused,
    );
    // Nothing of a cluster's written (the engine's own files aside): the node starts alone again, with its keys.
    const written = (await readdir(dir)).filter((name) =>
      ['MEMBERSHIP', 'BIRTH', 'aae', 'hints'].includes(name),
    );
    assert.deepEqual(written, []);
    const back = await start(urls[0]!, [urls[0]!], dir);
    assert.equal((await httpRequest(`${urls[0]}${entityPath('k')}`)).body.toString(), 'v');
    await stop(back);

    // A single node that stored nothing has nothing to lose: it starts in the cluster.
    const empty = await makeTempDir();
    await stop(await start(urls[0]!, [urls[0]!], empty));
    await stop(await start(urls[0]!, urls, empty));
  });

  it('a hint drain that fails is logged, and the stop still closes the hints and the store', async () => {
    const ports = await freePorts(2);
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    const dirs = [await makeTempDir(), await makeTempDir()];
    const vfs = new FaultyVfs(nodeVfs);
    const { log, records } = recordingLog(urls[0]!);
    // Hints go only when the node stops: the schedule is an hour apart.
    const settings = { clusterVfs: vfs, log, hintHandoffIntervalMs: 3_600_000 };
    const [a, b] = await Promise.all([
      start(urls[0]!, urls, dirs[0]!, settings),
      start(urls[1]!, urls, dirs[1]!),
    ]);
    await stop(b!);
    const put = await httpRequest(`${urls[0]}${entityPath('k', { ack: 1, from: 2 })}`, {
      method: 'PUT',
      body: 'v',
    });
    assert.equal(put.status, 201);
    const pending = async (): Promise<number> => {
      const hints = (await storeStatus(urls[0]!)).hints as { pending: Record<string, { entries: number }> };
      return hints.pending[urls[1]!]?.entries ?? 0;
    };
    // The hint is written after the answer.
    for (let i = 0; i < 100 && (await pending()) === 0; i++) await sleep(10);
    const hinted = await pending();
    assert.ok(hinted > 0, 'hints for b');

    // Its digests computed (they are, in the background, after the start): only a ready tree is
    // saved at a stop, and a busy machine can take longer than the steps above.
    const treeState = async (): Promise<string> =>
      ((await storeStatus(urls[0]!)).antiEntropy as { tree: { state: string } }).tree.state;
    for (let i = 0; i < 200 && (await treeState()) !== 'ready'; i++) await sleep(50);
    assert.equal(await treeState(), 'ready');

    // The hint file can no longer be read: the drain fails.
    const fault = vfs.inject({ op: 'open', path: /\.hint$/ });
    await stop(a!);
    assert.ok(fault.injected > 0);
    assert.ok(
      records.some((r) => r.event === 'hints.shutdown-failed'),
      JSON.stringify(records.map((r) => r.event)),
    );
    // The lock was released, the store closed and the hint kept: the node starts again with both.
    const again = await start(urls[0]!, urls, dirs[0]!, { hintHandoffIntervalMs: 3_600_000 });
    assert.equal(await pending(), hinted);
    // Closed cleanly: the anti-entropy index's digests were kept for this start, not rebuilt.
    const tree = ((await storeStatus(urls[0]!)).antiEntropy as { tree: { rebuilds: number } }).tree;
    assert.equal(tree.rebuilds, 0, JSON.stringify(tree));
    const get = await httpRequest(`${urls[0]}${entityPath('k', { ack: 1, from: 2 })}`);
    assert.equal(get.body.toString(), 'v');
    await stop(again);
  });
});
