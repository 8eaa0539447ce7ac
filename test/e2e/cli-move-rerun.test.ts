/**
 * `ringkv remove` run again after its wait timed out (exit 3, "the move goes
 * on"), as a script retrying a command that could not finish would: the
 * second run takes up the move under way and waits for it (exit 0), and a
 * third, once the node is removed, says so and exits 0. The same change
 * asked twice is not refused as "another move under way" or "not a member".
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { membershipOf, waitMembers, waitMembership, writeKeys } from '../support/membership.js';
import {
  killAllStarted,
  type NodeProcess,
  pauseNode,
  resumeNode,
  runCli,
  sleep,
  spawnCli,
  startNode,
  stopNode,
} from '../support/node-process.js';
import { portIsFree } from '../support/ports.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--log-format', 'json'];

/** Three consecutive free ports in 33000-33999 (the range this test may use). */
async function threePorts(): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 33_000 + Math.floor(Math.random() * 997);
    const ports = [base, base + 1, base + 2];
    if ((await Promise.all(ports.map(portIsFree))).every(Boolean)) return ports;
  }
  throw new Error('No three free ports in 33000-33999');
}

/** Waits (polling, bounded) until the process has printed a line matching `pattern`, or has exited. */
async function waitOutput(process: NodeProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(process.stdout) && process.exit === undefined) {
    if (Date.now() > deadline)
      throw new Error(`No ${pattern} within ${timeoutMs} ms: ${process.stdout}${process.stderr}`);
    await sleep(20);
  }
}

describe('membership: a move command run again', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('takes up the move under way, then reports it done', async () => {
    const ports = await threePorts();
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    // Streaming held to a trickle, so that the move is still under way after the first wait (1 s).
    const nodes = await Promise.all(
      ports.map(async (port) =>
        startNode({
          dataDir: await makeTempDir('ringkv-rerun-'),
          port,
          cluster: urls,
          args: ARGS,
          env: { RINGKV_STREAM_BYTES_PER_SEC: '20000' },
          readiness: 'health',
        }),
      ),
    );
    await waitMembers(urls[0]!, { normal: urls });
    await writeKeys(urls, { count: 400, prefix: 'k-', value: () => 'z'.repeat(300) });
    await stopNode(nodes[2]!);
    const dead = urls[2]!;

    const first = await runCli(['remove', '--url', urls[0]!, dead, '--timeout', '1000'], 20_000);
    assert.equal(first.code, 3, `${first.stdout}${first.stderr}`);
    assert.match(first.stderr, /the move is not complete after 1000 ms/);
    // Node 1, a new owner, is frozen until the second run has found the move
    // under way: the move cannot finish before that run starts, however long
    // a busy machine takes to start it.
    pauseNode(nodes[1]!);
    let again: Awaited<ReturnType<typeof runCli>>;
    try {
      const view = await membershipOf(urls[0]!);
      assert.match(view.move ?? '', /leaving \(dead\)/, 'the move is still under way');
      const rerun = spawnCli(['remove', '--url', urls[0]!, dead, '--timeout', '40000']);
      await waitOutput(rerun, /move already under way/, 30_000);
      resumeNode(nodes[1]!);
      const exit = await rerun.exited;
      await rerun.closed;
      again = { ...exit, stdout: rerun.stdout, stderr: rerun.stderr };
    } finally {
      resumeNode(nodes[1]!);
    }
    assert.equal(again.code, 0, `${again.stdout}${again.stderr}`);
    assert.match(again.stdout, /move already under way \(epoch 2\): .* leaving \(dead\)/);
    assert.match(again.stdout, /move complete \(epoch 3\)/);
    await waitMembers(urls[0]!, { normal: urls.slice(0, 2) });

    const done = await runCli(['remove', '--url', urls[0]!, dead], 20_000);
    assert.equal(done.code, 0, `${done.stdout}${done.stderr}`);
    assert.match(done.stdout, /already removed \(epoch 3\)/);

    // A cancel has no such excuse: with no move under way it is still refused.
    const cancel = await runCli(['cancel', '--url', urls[0]!]);
    assert.equal(cancel.code, 2, cancel.stderr);
    assert.match(cancel.stderr, /No move under way to cancel/);
    await waitMembership(urls[1]!, (v) => v.epoch === '3');
  });
});
