/**
 * A node that leaves the cluster is forgotten by the others (real
 * processes): four nodes; the fourth dies and is removed (ringkv remove),
 * then the third is decommissioned and exits. After each, the first node
 * makes no more connection attempts to the node gone (it was probed four
 * times a second before), and neither its /metrics nor its clock skew in
 * /v0/status name it any more. While the old ring trails, writes keep
 * answering 201: the dead node is not forgotten (a forgotten peer counts as
 * up) before the ring stops sending it writes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { limits } from '../../src/config/limits.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import { testNodes, waitMembers } from '../support/membership.js';
import { killAllStarted, killNode, runCli, sleep } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

/** The old ring's trailing time after a flip: a node gone is forgotten only after it. */
const TRAILING_MS = limits.ringTrailingMs;

interface StoreStatus {
  readonly transport: { readonly connectAttempts: number };
  readonly clockSkew: { readonly peers: Record<string, unknown>; readonly beyondBound: string[] };
}

async function storeStatus(url: string): Promise<StoreStatus> {
  return (JSON.parse((await httpRequest(`${url}/v0/status`)).body.toString()) as { store: StoreStatus })
    .store;
}

/** Connection attempts `url` makes in 2 s, starting half a second from now. */
async function attemptsIn2s(url: string): Promise<number> {
  await sleep(500);
  const before = (await storeStatus(url)).transport.connectAttempts;
  await sleep(2000);
  return (await storeStatus(url)).transport.connectAttempts - before;
}

describe('membership: a node gone from the cluster is forgotten', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('no probes, no metrics, no clock skew for a removed or decommissioned node', async () => {
    const { urls, start } = await testNodes(4, { args: ['--sync', 'off'], dirPrefix: 'ringkv-forget-' });
    const nodes = await Promise.all([0, 1, 2, 3].map((i) => start(i, ['--cluster', urls.join(',')])));
    await waitMembers(urls[0]!, { normal: urls });

    await killNode(nodes[3]!);
    // While still a member, the dead node is probed: the count below can tell a forgotten peer.
    const probedWhileMember = await attemptsIn2s(urls[0]!);
    assert.ok(probedWhileMember > 1, `the dead member was probed ${probedWhileMember} times in 2 s`);
    const removed = await runCli(['remove', '--url', urls[0]!, urls[3]!], 60_000);
    assert.equal(removed.code, 0, `${removed.stdout}${removed.stderr}`);
    await waitMembers(urls[0]!, { normal: urls.slice(0, 3) });
    // While the old ring trails (5 s), writes still go to the dead node aside: none waits on it. With
    // ack = from = 3, a write needs every live replica: the dead one counted as up would make it 504.
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) {
      statuses.push(
        (
          await httpRequest(`${urls[0]!}${entityPath(`trailing-${i}`, { ack: 3, from: 3 })}`, {
            method: 'PUT',
            body: 'v',
          })
        ).status,
      );
    }
    assert.deepEqual(
      statuses.filter((status) => status !== 201),
      [],
      'writes in the trailing time answered other than 201',
    );
    await sleep(TRAILING_MS);
    assert.ok((await attemptsIn2s(urls[0]!)) <= 1, 'the removed node is still probed');

    const decommissioned = await runCli(['decommission', '--url', urls[2]!], 60_000);
    assert.equal(decommissioned.code, 0, `${decommissioned.stdout}${decommissioned.stderr}`);
    assert.deepEqual(await nodes[2]!.exited, { code: 0, signal: null });
    await waitMembers(urls[0]!, { normal: urls.slice(0, 2) });
    await sleep(TRAILING_MS);
    assert.ok((await attemptsIn2s(urls[0]!)) <= 1, 'the decommissioned node is still probed');

    const metrics = (await httpRequest(`${urls[0]!}/metrics`)).body.toString();
    assert.match(metrics, new RegExp(`ringkv_peer_up\\{peer="${urls[1]!}"\\} 1`));
    for (const gone of [urls[2]!, urls[3]!]) {
      assert.ok(!metrics.includes(`peer="${gone}"`), `${gone} is still a peer in /metrics`);
    }
    const skew = (await storeStatus(urls[0]!)).clockSkew;
    assert.deepEqual(Object.keys(skew.peers), [urls[1]!]);
    assert.deepEqual(skew.beyondBound, []);
  });
});
