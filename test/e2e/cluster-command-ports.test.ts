/**
 * `ringkv cluster` when another process holds one of its ports and answers
 * /v0/status there as a node would: the command's own child fails to start,
 * so it must not print "ready"; it reports the child and exits non-zero,
 * stopping the nodes that did start.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { killAllStarted, runCli, sleep } from '../support/node-process.js';
import { freeConsecutivePorts, portIsFree } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const servers: Server[] = [];

/** An HTTP server on `port` that answers /v0/status 200 with a node-like document (another cluster's node). */
async function impostor(port: number): Promise<void> {
  const url = `http://127.0.0.1:${port}`;
  const server = createServer((req, res) => {
    req.resume();
    const body = JSON.stringify({ node: url, ready: true, cluster: [url], clusterSize: 1, pid: process.pid });
    res.writeHead(req.url === '/v0/status' ? 200 : 400, { 'content-type': 'application/json' });
    res.end(body);
  });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
}

describe('ringkv cluster with a port taken', () => {
  after(async () => {
    await Promise.all(
      servers.map((server) => {
        server.closeAllConnections();
        return new Promise((resolve) => server.close(resolve));
      }),
    );
    await killAllStarted();
    await removeTempDirs();
  });

  for (const taken of [[1], [0, 1]]) {
    it(`with port(s) ${taken.map((i) => `base+${i}`).join(', ')} held by another server: no "ready", exit non-zero`, async () => {
      const ports = await freeConsecutivePorts(2);
      for (const i of taken) await impostor(ports[i]!);
      const run = await runCli(
        [
          'cluster',
          '--nodes',
          '2',
          '--base-port',
          String(ports[0]),
          '--data',
          await makeTempDir(),
          '--sync',
          'off',
        ],
        30_000,
      );
      assert.notEqual(run.code, 0, run.stdout + run.stderr);
      assert.notEqual(run.code, null, `killed by the test: ${run.stdout} ${run.stderr}`);
      assert.doesNotMatch(run.stdout, /cluster of 2 ready/);
      assert.doesNotMatch(run.stdout, /^http:\/\//m);
      assert.match(
        run.stderr,
        // Whichever of the children on a taken port exits first is reported.
        new RegExp(
          `(${taken.map((i) => `node-${i} \\(http://127\\.0\\.0\\.1:${ports[i]}\\)`).join('|')}) exited before it was ready`,
        ),
      );
      // A node of its own that did start is stopped.
      if (!taken.includes(0)) {
        let free = false;
        for (let attempt = 0; attempt < 100 && !free; attempt++) {
          free = await portIsFree(ports[0]!);
          if (!free) await sleep(50);
        }
        assert.ok(free, 'node-0 still holds its port');
      }
    });
  }
});
