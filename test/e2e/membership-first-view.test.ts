/**
 * Two first views of one cluster: a node started with `--cluster` on an
 * empty directory, listing itself beside the members of a running cluster
 * that never changed since it was formed. Its first view (epoch 1) differs
 * from theirs, and the merge used to let the larger one win: the members
 * took a ring with the new node in it without a move, and keys it now
 * owned answered 404. It must refuse to start, in one line, storing
 * nothing, so that the same node then joins with `--join`.
 */
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { membershipOf, testNodes, waitMembers, writeKeys } from '../support/membership.js';
import { killAllStarted, runCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--log-format', 'json'];
const KEYS = 300;

describe('membership: a second first view', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('is refused at start, and the cluster keeps its ring and its keys', async () => {
    const { urls, dirs, start } = await testNodes(4, { args: ARGS, dirPrefix: 'ringkv-first-view-' });
    const three = urls.slice(0, 3);
    await Promise.all([0, 1, 2].map((i) => start(i, ['--cluster', three.join(',')])));
    await waitMembers(urls[0]!, { normal: three });
    await writeKeys(three, { count: KEYS, prefix: 'k', value: (i) => `v${i}` });

    // Killed if it has not refused to start within 20 s (it would then be running: code null).
    const refused = await runCli(
      ['serve', '--url', urls[3]!, '--data', dirs[3]!, ...ARGS, '--cluster', urls.join(',')],
      20_000,
    );
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    // Named: one of the members, the view it holds, and the --join that adds this node.
    const member = `(${three.map((url) => url.replace(/\./g, '\\.')).join('|')})`;
    assert.match(
      refused.stderr,
      new RegExp(
        `^ringkv: ${member} holds another first view of the cluster \\(epoch 1, members ${[...three].sort().join(',').replace(/\./g, '\\.')}\\): .* --join \\1\n$`,
      ),
    );
    await assert.rejects(access(join(dirs[3]!, 'MEMBERSHIP')), { code: 'ENOENT' });

    // The members never took the other view, and every key still answers.
    for (const url of three) {
      const view = await membershipOf(url);
      assert.equal(view.epoch, '1', url);
      assert.deepEqual(view.members.map((m) => m.url).sort(), [...three].sort(), url);
    }
    for (let i = 0; i < KEYS; i++) {
      const answer = await fetch(`${three[i % 3]}/v0/entity?id=k${i}`);
      assert.equal(answer.status, 200, `k${i}`);
      assert.equal(await answer.text(), `v${i}`);
    }

    // The same node, on the same directory, joins as the message says.
    await start(3, ['--join', urls[0]!]);
    await waitMembers(urls[0]!, { normal: urls }, 60_000);
  });
});
