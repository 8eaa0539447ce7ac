/**
 * GET /ui/cluster on real nodes (separate processes), without a browser:
 * the members it lists follow the membership, as the /metrics peer series
 * do: a node that joins (with --join, in no one's --cluster) shows on every
 * node's dashboard, and its own dashboard shows every member. A member that
 * answers garbage (markup for a status, a /metrics answer without end) is
 * shown with why, and the answer is cut at its bound, not read whole.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { httpRequest } from '../support/http-client.js';
import { testNodes, waitMembers } from '../support/membership.js';
import { killAllStarted, startNode } from '../support/node-process.js';
import { freePort } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

interface ClusterView {
  readonly node: string;
  readonly members: readonly {
    readonly url: string;
    readonly self: boolean;
    readonly link: string;
    readonly statusError?: string;
    readonly metricsError?: string;
  }[];
}

async function clusterView(url: string): Promise<ClusterView> {
  const answer = await httpRequest(`${url}/ui/cluster`);
  assert.equal(answer.status, 200);
  return JSON.parse(answer.body.toString()) as ClusterView;
}

describe('/ui/cluster, members as they join', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('lists a joined node on every node, and every member on the joined node', async () => {
    const { urls, start } = await testNodes(3, { args: ['--sync', 'off'], dirPrefix: 'ringkv-dashboard-' });
    await Promise.all([0, 1].map((i) => start(i, ['--cluster', urls.slice(0, 2).join(',')])));
    await start(2, ['--join', urls[0]!]);
    for (const url of urls) await waitMembers(url, { normal: urls }, 60_000);
    for (const url of urls) {
      const view = await clusterView(url);
      assert.deepEqual(view.members.map((m) => m.url).sort(), [...urls].sort(), `the members ${url} lists`);
      assert.deepEqual(
        view.members.filter((m) => m.self).map((m) => m.url),
        [url],
      );
    }
  });
});

describe('/ui/cluster, a member that answers garbage', () => {
  let fake: Server | undefined;
  let metricsBytesSent = 0;

  after(async () => {
    fake?.closeAllConnections();
    await new Promise((resolve) => fake?.close(resolve) ?? resolve(undefined));
    await killAllStarted();
    await removeTempDirs();
  });

  it('shows why, and cuts an endless /metrics answer at its bound', async () => {
    const chunk = Buffer.alloc(64 << 10, 'x');
    fake = createServer((req, res) => {
      if (req.url === '/metrics') {
        // No end: as much as the reader takes, for at most 5 s.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const until = Date.now() + 5000;
        const write = (): void => {
          while (Date.now() < until && !res.destroyed) {
            metricsBytesSent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
          res.end();
        };
        write();
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('<img src=x onerror="alert(1)">');
      }
    });
    const fakePort = await freePort();
    await new Promise<void>((resolve) => fake!.listen(fakePort, '127.0.0.1', resolve));
    const fakeUrl = `http://127.0.0.1:${fakePort}`;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    await startNode({
      port,
      dataDir: await makeTempDir('ringkv-dashboard-'),
      cluster: [url, fakeUrl],
      args: ['--sync', 'off'],
    });
    const view = await clusterView(url);
    const member = view.members.find((m) => m.url === fakeUrl);
    assert.ok(member !== undefined);
    assert.equal(member.statusError, 'the status is not JSON');
    // Cut at the size bound, not by the member timeout (which would read 'timed out'): no wall-clock bound needed.
    assert.equal(member.metricsError, 'answer too large');
    // The bound is 4 MiB; what the fake wrote past it is the sockets' buffers, not a read to the end.
    assert.ok(metricsBytesSent < 64 << 20, `the node read ${metricsBytesSent} bytes`);
  });
});
