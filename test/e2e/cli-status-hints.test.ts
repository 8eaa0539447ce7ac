/**
 * `ringkv status` with hints pending for a peer that is down: the summary
 * sums the entries of every peer's pending hints (the JSON gives each peer
 * {"entries","bytes"}) and says their bytes, never `NaN`.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ringkv } from '../support/cli.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { killAllStarted, sleep, startNode } from '../support/node-process.js';
import { freePorts } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

interface Pending {
  readonly entries: number;
  readonly bytes: number;
}

describe('status with hints pending', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('prints the pending entries summed over the peers, and their bytes', async () => {
    const [port, downPort] = await freePorts(2);
    const url = `http://127.0.0.1:${port}`;
    const down = `http://127.0.0.1:${downPort}`;
    const node = await startNode({
      dataDir: await makeTempDir(),
      port: port!,
      cluster: [url, down],
      args: ['--sync', 'off'],
    });
    for (let i = 0; i < 5; i++) {
      const answer = await httpRequest(`${node.url}${entityPath(`h${i}`)}&ack=1`, {
        method: 'PUT',
        body: `value ${i}`,
      });
      assert.equal(answer.status, 201);
    }
    // Hints become durable (and counted as pending) shortly after the writes; the node may add its own.
    const pendingNow = async (): Promise<Pending> => {
      const run = await ringkv(['status', '--json', '--url', url]);
      assert.equal(run.code, 0, run.stderr);
      const status = JSON.parse(run.stdout.toString()) as {
        store: { hints?: { pending?: Record<string, Pending> } };
      };
      return status.store.hints?.pending?.[down] ?? { entries: 0, bytes: 0 };
    };
    let before = await pendingNow();
    let after = before;
    for (let attempt = 0; attempt < 50; attempt++) {
      const text = await ringkv(['status', '--url', url]);
      after = await pendingNow();
      if (before.entries >= 5 && after.entries === before.entries && after.bytes === before.bytes) {
        assert.equal(text.code, 0, text.stderr);
        const summary = text.stdout.toString();
        assert.doesNotMatch(summary, /NaN/);
        const hints = summary.split('\n').find((line) => line.startsWith('hints'));
        assert.equal(
          hints,
          `hints     ${after.entries} pending (${after.bytes} B), 0 delivered, 0 dropped, 0 too old`,
          summary,
        );
        return;
      }
      before = after;
      await sleep(100);
    }
    assert.fail(`pending hints did not settle at 5 or more: ${JSON.stringify(after)}`);
  });
});
