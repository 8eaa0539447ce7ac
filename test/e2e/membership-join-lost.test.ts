/**
 * A join that lost the merge: two changes made at once from one view share
 * an epoch and only one wins; the joining node had already stored its own
 * (losing) view, listing itself as joining. Once the winning move is over,
 * the node started again with the same `--join` command joins, instead of
 * refusing to start for ever as "not a member: start it with --join".
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { saveMembership } from '../../src/cluster/membership/file.js';
import { bootstrapMembership, withJoining } from '../../src/cluster/membership/membership.js';
import { nodeVfs } from '../../src/storage/index.js';
import { testNodes, waitMembers } from '../support/membership.js';
import { killAllStarted, runCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--log-format', 'json'];

describe('membership: a join that lost to a change made at the same time', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('is made again when the node is started again with --join', async () => {
    const { urls, dirs, start } = await testNodes(4, { args: ARGS, dirPrefix: 'ringkv-join-lost-' });
    const three = urls.slice(0, 3);
    await Promise.all([0, 1, 2].map((i) => start(i, ['--cluster', three.join(',')])));
    await waitMembers(urls[0]!, { normal: three });
    // What the joining node stored before its change lost: its own view of epoch 2.
    await saveMembership(nodeVfs, dirs[3]!, withJoining(bootstrapMembership(three), urls[3]!));
    // The change that won: a decommission (epoch 2), then its flip.
    const decommission = await runCli(['decommission', '--url', urls[2]!], 60_000);
    assert.equal(decommission.code, 0, decommission.stderr);

    const node = await start(3, ['--join', urls[0]!]);
    assert.equal(node.exit, undefined);
    await waitMembers(urls[0]!, { normal: [urls[0]!, urls[1]!, urls[3]!] }, 30_000);
  });
});
