/**
 * Moves that fail halfway (real processes, under a steady load at
 * ack=2&from=3): a node streaming its new ranges as it joins is killed
 * (kill -9), then started again with the same command; later a source of
 * another join is killed halfway, then started again. The cluster answers
 * throughout, and the interrupted move resumes and completes.
 *
 * Only requests that were on their way to a killed node may fail (no
 * answer: in flight at the kill, or sent in the moment before the client
 * sees the reset), at most two per worker, as in the rolling restart test;
 * every other request gets its expected answer, and every key reads back at
 * the end with quorum reads.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { checkValues, describeEvents, startLoad } from '../support/load-client.js';
import { answersMore, testNodes, waitMembers, waitMembership, writeKeys } from '../support/membership.js';
import { killAllStarted, killNode, type NodeProcess } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--request-timeout', '3000'];
/** Slow enough that a join of the filler below streams for several seconds. */
const ENV = { RINGKV_STREAM_BYTES_PER_SEC: '400000' };
const FILLER_KEYS = 3000;
const CONCURRENCY = 6;

/** Waits until `url` is streaming its new ranges and has received part of them. */
function streamingPartWay(url: string) {
  return waitMembership(url, (view) => {
    const receiving = view.receiving as { done: boolean; bytes: number } | null;
    return receiving !== null && !receiving.done && receiving.bytes > 0;
  });
}

describe('membership: a move that fails halfway', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a joining node and then a source killed halfway: the cluster serves, the moves resume and complete', async () => {
    const { urls, start } = await testNodes(5, { args: ARGS, env: ENV, dirPrefix: 'ringkv-move-fail-' });
    const nodes: (NodeProcess | undefined)[] = await Promise.all(
      [0, 1, 2].map((i) => start(i, ['--cluster', urls.slice(0, 3).join(',')])),
    );
    await waitMembers(urls[0]!, { normal: urls.slice(0, 3) });
    await writeKeys(urls.slice(0, 3), {
      count: FILLER_KEYS,
      prefix: 'filler-',
      value: () => 'y'.repeat(400),
    });
    const load = startLoad({
      urls,
      concurrency: CONCURRENCY,
      ratePerSecond: 200,
      keys: 120,
      query: { ack: 2, from: 3 },
      timeoutMs: 8000,
      maxDurationMs: 150_000,
    });
    const flowing = (more: number) => answersMore(load, more);
    await flowing(150);

    // 1. The joining node dies halfway through its streaming, and comes back with the same command.
    load.setPhase('joining node killed');
    nodes[3] = await start(3, ['--join', urls[0]!]);
    await streamingPartWay(urls[3]!);
    await killNode(nodes[3]!);
    await flowing(200);
    const stuck = await waitMembership(urls[0]!, (view) => view.move !== null);
    assert.match(stuck.move!, /joining/, 'the move stays under way while the new node is dead');
    load.setPhase('joining node back');
    nodes[3] = await start(3, ['--join', urls[0]!]);
    await waitMembers(urls[0]!, { normal: urls.slice(0, 4) }, 60_000);
    await flowing(100);

    // 2. A source dies halfway through another node's join, and comes back.
    load.setPhase('source killed');
    nodes[4] = await start(4, ['--join', urls[1]!]);
    await streamingPartWay(urls[4]!);
    await killNode(nodes[2]!);
    await flowing(200);
    load.setPhase('source back');
    nodes[2] = await start(2, []);
    await waitMembers(urls[1]!, { normal: urls }, 60_000);
    await flowing(100);

    const report = await load.stop();
    const killed = new Set([urls[3], urls[2]]);
    const unexpected = report.failures.filter(
      (event) =>
        !(
          event.kind === 'no-answer' &&
          killed.has(event.node) &&
          (event.phase === 'joining node killed' || event.phase === 'source killed')
        ),
    );
    assert.deepEqual(unexpected, [], `failures:\n${describeEvents(unexpected)}`);
    assert.ok(report.failures.length <= 2 * 2 * CONCURRENCY, `failures:\n${describeEvents(report.failures)}`);
    for (const phase of ['joining node killed', 'source killed']) {
      assert.ok((report.phases[phase]?.answered ?? 0) >= 200, `the cluster answered during "${phase}"`);
    }
    assert.deepEqual(await checkValues(load, urls, { ack: 2, from: 3 }), []);
    process.stdout.write(`# ${report.answered} answers: ${JSON.stringify(report.phases)}\n`);
  });
});
