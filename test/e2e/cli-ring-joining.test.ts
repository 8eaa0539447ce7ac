/**
 * A node that joins is a peer of every member from the start of its move:
 * it gets their writes, and their /v0/status shows its link (store.peers),
 * as /metrics does (ringkv_peer_up). So `ringkv ring` asked of a member
 * shows it `up  joining` while it streams, and `ringkv status` lists it
 * among the peers. Its streaming is slowed (RINGKV_STREAM_BYTES_PER_SEC) so
 * that the move is still under way when they are asked.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { httpRequest } from '../support/http-client.js';
import { testNodes, waitMembers, waitMembership } from '../support/membership.js';
import { killAllStarted, runCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

describe('ring and status during a join', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('a member shows the joining node as a peer with its link state', async () => {
    const { urls, start } = await testNodes(3, { args: ['--sync', 'off'], dirPrefix: 'ringkv-ring-join-' });
    const two = urls.slice(0, 2);
    await Promise.all([0, 1].map((i) => start(i, ['--cluster', two.join(',')])));
    await waitMembers(urls[0]!, { normal: two });
    for (let i = 0; i < 200; i++) {
      const put = await httpRequest(`${urls[0]}/v0/entity?id=k-${i}`, {
        method: 'PUT',
        body: 'z'.repeat(300),
      });
      assert.equal(put.status, 201);
    }
    const joiner = urls[2]!;
    await start(2, ['--join', urls[0]!], { RINGKV_STREAM_BYTES_PER_SEC: '2000' });
    await waitMembership(urls[0]!, (view) => view.move !== null);

    const status = JSON.parse((await httpRequest(`${urls[0]}/v0/status`)).body.toString()) as {
      store: { peers: Record<string, string>; membership: { move: string | null } };
    };
    assert.ok(status.store.membership.move !== null, 'the join is under way');
    assert.equal(status.store.peers[joiner], 'up', JSON.stringify(status.store.peers));

    const ring = await runCli(['ring', '--url', urls[0]!]);
    assert.equal(ring.code, 0, ring.stderr);
    assert.match(ring.stdout, new RegExp(`^${joiner} +up +joining `, 'm'), ring.stdout);
    const summary = await runCli(['status', '--url', urls[0]!]);
    assert.equal(summary.code, 0, summary.stderr);
    assert.match(summary.stdout, new RegExp(`^(?:peers)? +${joiner} up`, 'm'), summary.stdout);
  });
});
