/**
 * `ringkv status` and `ringkv ring` against something that is not a ready
 * node: another server whose /v0/status is JSON of its own is exit 4 with
 * one line (not a summary of `undefined`s and exit 0), and a node starting
 * or leaving (503 with its whole status) is exit 3 with one short line, not
 * the document.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import { assertFailed, ringkv } from '../support/cli.js';
import { freePort } from '../support/ports.js';

async function standIn(status: number, body: string): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}`, server };
}

describe('status commands against what is not a ready node', () => {
  const servers: Server[] = [];
  after(async () => {
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
  });

  it("is exit 4 and one line for another server's JSON", async () => {
    for (const body of ['{}', '{"status":"ok"}', '[1,2]', 'null']) {
      const { url, server } = await standIn(200, body);
      servers.push(server);
      for (const command of ['status', 'ring']) {
        const run = await ringkv([command, '--url', url]);
        assertFailed(
          run,
          4,
          /^ringkv: Failed: 200 Status answer is not a ringkv status \(http:\/\/127\.0\.0\.1:\d+\)$/,
        );
        assert.equal(run.stdout.length, 0, `${command} ${body}: ${run.stdout}`);
      }
    }
  });

  it('is exit 3 and one short line for a node that is not ready', async () => {
    const document = {
      node: 'http://127.0.0.1:1',
      ready: false,
      cluster: ['http://127.0.0.1:1'],
      clusterSize: 1,
      store: { padding: 'x'.repeat(4000) },
    };
    const { url, server } = await standIn(503, JSON.stringify(document));
    servers.push(server);
    for (const command of ['status', 'ring']) {
      const run = await ringkv([command, '--url', url]);
      assertFailed(
        run,
        3,
        /^ringkv: Unavailable: 503 not ready \(starting or leaving\) \(http:\/\/127\.0\.0\.1:\d+\)$/,
      );
      assert.equal(run.stdout.length, 0);
    }
  });
});
