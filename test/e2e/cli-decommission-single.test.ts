/**
 * `ringkv decommission` against a node on its own: the node takes no
 * membership changes (it has no cluster to leave), which is a change the
 * cluster refused (exit 2, saying why), not a node that is down (exit 3).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { httpRequest } from '../support/http-client.js';
import { killAllStarted, runCli, startNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

describe('decommission of a single node', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('is refused with exit 2 and a reason; the node goes on serving', async () => {
    const node = await startNode({ dataDir: await makeTempDir() });
    const run = await runCli(['decommission', '--url', node.url, '--timeout', '5000']);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^ringkv: Refused: .* is a single node with no cluster/);
    assert.doesNotMatch(run.stderr, /is down/);
    const cancel = await runCli(['cancel', '--url', node.url]);
    assert.equal(cancel.code, 2, cancel.stderr);
    assert.equal((await httpRequest(`${node.url}/v0/status`)).status, 200);
    assert.equal(node.exit, undefined);
  });
});
