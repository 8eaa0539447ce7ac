/**
 * Membership from the operator's side (real processes, a cluster secret):
 * changes need the secret; a join is cancelled halfway (the joining node is
 * removed and exits 0, and does not start again on its directory); a node
 * restarted with a --cluster list that disagrees with its stored membership
 * reports it in one line and keeps the stored one; a damaged MEMBERSHIP file
 * is refused, naming it.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { testNodes, waitMembers, waitMembership, writeKeys } from '../support/membership.js';
import { killAllStarted, runCli, stopNode } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const SECRET = ['--cluster-secret', 'moves-need-this'];
const ARGS = ['--sync', 'off', '--log-format', 'json', ...SECRET];

describe('membership: operators', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('secret, cancel, a disagreeing --cluster, a damaged file', async () => {
    const { urls, dirs, start } = await testNodes(4, { args: ARGS, dirPrefix: 'ringkv-admin-' });
    const three = urls.slice(0, 3);
    const nodes = await Promise.all([0, 1, 2].map((i) => start(i, ['--cluster', three.join(',')])));
    await waitMembers(urls[0]!, { normal: three });
    await writeKeys(three, { count: 300, prefix: 'k-', value: () => 'z'.repeat(300) });

    // Changes need the secret.
    const denied = await runCli(['decommission', '--url', urls[1]!]);
    assert.equal(denied.code, 2, denied.stderr);
    assert.match(denied.stderr, /refused the cluster secret proof/);
    const joinDenied = await runCli(['serve', '--url', urls[3]!, '--data', dirs[3]!, '--join', urls[0]!]);
    assert.equal(joinDenied.code, 2);
    assert.equal(joinDenied.stderr.trim().split('\n').length, 1, joinDenied.stderr);
    assert.match(
      joinDenied.stderr,
      /^ringkv: Cannot fetch the membership from --join .*refused the cluster secret proof/,
    );

    // A join cancelled halfway: the joining node is removed and exits 0; it does not start again.
    const joining = await start(3, ['--join', urls[0]!], { RINGKV_STREAM_BYTES_PER_SEC: '10000' });
    await waitMembership(urls[3]!, (view) => ((view.receiving as { bytes: number } | null)?.bytes ?? 0) > 0);
    // The move's progress in the metrics too.
    const metrics = await (await fetch(`${urls[3]}/metrics`)).text();
    assert.match(metrics, /^ringkv_move_in_progress 1$/m);
    assert.match(metrics, /^ringkv_move_ranges\{state="all"\} 3$/m);
    assert.match(metrics, /^ringkv_move_streamed_bytes [1-9]\d*$/m);
    assert.match(metrics, /^ringkv_membership_members\{state="joining"\} 1$/m);
    const cancelled = await runCli(['cancel', '--url', urls[1]!, ...SECRET]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, /move cancelled .*joining/);
    assert.deepEqual(await joining.exited, { code: 0, signal: null });
    await waitMembers(urls[0]!, { normal: three });
    const again = await runCli(['serve', '--url', urls[3]!, '--data', dirs[3]!, ...SECRET]);
    assert.equal(again.code, 2);
    assert.equal(again.stderr.trim().split('\n').length, 1, again.stderr);
    assert.match(again.stderr, /^ringkv: This node \(.*\) was removed from the cluster at epoch \d+/);

    // A --cluster that disagrees with the stored membership: one line, and the stored one is used.
    await stopNode(nodes[2]!);
    nodes[2] = await start(2, ['--cluster', `${urls[2]},${urls[3]}`]);
    const mismatch = nodes[2].stderr.split('\n').filter((line) => line.includes('membership.mismatch'));
    assert.equal(mismatch.length, 1, nodes[2].stderr);
    assert.match(mismatch[0]!, /the stored membership is used/);
    await waitMembers(urls[2]!, { normal: three });

    // A damaged MEMBERSHIP file: refused, naming it.
    await stopNode(nodes[2]!);
    const file = join(dirs[2]!, 'MEMBERSHIP');
    const bytes = await readFile(file);
    bytes[bytes.length - 10]! ^= 0xff;
    await writeFile(file, bytes);
    const damaged = await runCli(['serve', '--url', urls[2]!, '--data', dirs[2]!, ...SECRET]);
    assert.equal(damaged.code, 1);
    assert.equal(damaged.stderr.trim().split('\n').length, 1, damaged.stderr);
    assert.ok(damaged.stderr.includes(`Damaged membership file ${file}`), damaged.stderr);
  });
});
