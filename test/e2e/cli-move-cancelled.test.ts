/**
 * `ringkv decommission` waiting for a move that is then cancelled: it stops
 * at once with the reason (exit 2), instead of polling "no move under way"
 * until its timeout (30 minutes by default).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testNodes, waitMembers, waitMembership, writeKeys } from '../support/membership.js';
import { killAllStarted, runCli, spawnCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--log-format', 'json'];

describe('membership: a cancelled move while a command waits for it', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('decommission stops waiting with exit 2 once the move is cancelled', async () => {
    const { urls, start } = await testNodes(4, { args: ARGS, dirPrefix: 'ringkv-cancelled-' });
    // Streaming held to a trickle, so that the move is still under way when it is cancelled.
    await Promise.all(
      [0, 1, 2, 3].map((i) =>
        start(i, ['--cluster', urls.join(',')], { RINGKV_STREAM_BYTES_PER_SEC: '2000' }),
      ),
    );
    await waitMembers(urls[0]!, { normal: urls });
    await writeKeys(urls, { count: 400, prefix: 'k-', value: () => 'z'.repeat(300) });

    const waiting = spawnCli(['decommission', '--url', urls[3]!, '--timeout', '120000']);
    await waitMembership(urls[0]!, (view) => view.move !== null && view.move !== undefined);
    const cancelled = await runCli(['cancel', '--url', urls[0]!]);
    assert.equal(cancelled.code, 0, cancelled.stderr);

    const startedMs = Date.now();
    const exit = await waiting.exited;
    await waiting.closed;
    assert.equal(exit.code, 2, waiting.stderr);
    assert.ok(Date.now() - startedMs < 30_000, 'it stopped soon after the cancel');
    assert.match(waiting.stdout, /move started/);
    assert.match(waiting.stderr, /^ringkv: Refused: no move is under way on .* it was cancelled, or lost/m);
    await waitMembers(urls[0]!, { normal: urls });
  });
});
