/**
 * `ringkv decommission` waiting on a leaving node that is stopped halfway:
 * the other new owners give it up as a source once it has been down for
 * 15 s, the ring flips without it, and the command reports the move
 * complete (exit 0) from the other members, rather than waiting out its
 * timeout on the stopped node and saying the move is not complete.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testNodes, waitMembers, waitMembership, writeKeys } from '../support/membership.js';
import { killAllStarted, spawnCli, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--log-format', 'json'];

describe('membership: decommission of a node stopped halfway', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('the waiting command sees the move complete through the other members', async () => {
    const { urls, start } = await testNodes(4, { args: ARGS, dirPrefix: 'ringkv-decom-stopped-' });
    // Streaming held to a trickle, so that the move is still under way when the node stops.
    const nodes = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        start(i, ['--cluster', urls.join(',')], { RINGKV_STREAM_BYTES_PER_SEC: '20000' }),
      ),
    );
    await waitMembers(urls[0]!, { normal: urls });
    await writeKeys(urls, { count: 400, prefix: 'k-', value: () => 'z'.repeat(300) });

    const waiting = spawnCli(['decommission', '--url', urls[3]!, '--timeout', '45000']);
    await waitMembership(urls[0]!, (view) => view.move !== null && view.move !== undefined);
    assert.deepEqual(await stopNode(nodes[3]!), { code: 0, signal: null });
    const remaining = urls.slice(0, 3);
    await waitMembers(urls[0]!, { normal: remaining }, 40_000);

    const exit = await waiting.exited;
    await waiting.closed;
    assert.equal(exit.code, 0, `${waiting.stdout}${waiting.stderr}`);
    assert.match(waiting.stdout, /move complete \(epoch 3\)/);
  });
});
