/**
 * A node that is down while the ring changes: three nodes hold keys written
 * with ack=3&from=3; one of them is stopped, a fourth joins (the stopped
 * node, a source, is given up after 15 s) and the ring flips. Started again,
 * the node learns the new ring and, like the nodes that saw the flip, drops
 * the ranges it handed to the new one: every key ends on exactly three
 * nodes, and still reads back with ack=3.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { copiesPerKey, testNodes, waitMembers, waitMembership, writeKeys } from '../support/membership.js';
import { killAllStarted, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off'];
const KEYS = 400;

describe('membership: a node down at the flip', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('cleans up once it is back', async () => {
    const { urls, start } = await testNodes(4, { args: ARGS, dirPrefix: 'ringkv-cleanup-down-' });
    const three = urls.slice(0, 3);
    const nodes = await Promise.all([0, 1, 2].map((i) => start(i, ['--cluster', three.join(',')])));
    await waitMembers(urls[0]!, { normal: three });
    await writeKeys(three, { count: KEYS, prefix: 'key-', value: (i) => `value-${i}` });

    assert.deepEqual(await stopNode(nodes[2]!), { code: 0, signal: null });
    await start(3, ['--join', urls[0]!]);
    const four = await waitMembers(urls[0]!, { normal: urls }, 40_000);
    await start(2, []);
    const cleanup = await waitMembership(
      urls[2]!,
      (view) => view.cleanup?.epoch === four.epoch && view.cleanup.state === 'done',
      15_000,
    );
    assert.equal(cleanup.epoch, four.epoch);

    const copies = await copiesPerKey(urls, 'key-');
    const wrong = [...copies].filter(([, n]) => n !== 3).map(([key, n]) => `${key}: ${n} copies`);
    assert.equal(copies.size, KEYS);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} keys not on exactly three nodes`);
    for (let i = 0; i < KEYS; i++) {
      const answer = await fetch(`${urls[i % urls.length]}/v0/entity?id=key-${i}&ack=3&from=3`);
      assert.equal(await answer.text(), `value-${i}`, `key-${i} (${answer.status})`);
    }
  });
});
