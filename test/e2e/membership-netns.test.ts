/**
 * A cluster spread over hosts (real processes, each node in its own network
 * namespace with its own address on a bridge: support/netns.ts), under a
 * steady load at ack=2&from=3 from the test through every address:
 *
 * - grow 3 -> 4 -> 5 and decommission back to 3, as on loopback
 *   (membership-grow-shrink.test.ts): no failure in the load;
 * - one host cut off (its link down) for 10 s: only requests sent to that
 *   host may fail; no acknowledged write is lost (every key reads back with
 *   quorum reads), and once the host is back its own copies converge to the
 *   others' (hints), node by node.
 *
 * Skipped, with the reason, without root or `ip` (iproute2; .ci/run
 * installs it). Only addresses inside the namespaces the test creates are
 * used, and it removes them at the end.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { rangeEntries } from '../support/cluster.js';
import { checkValues, describeEvents, startLoad } from '../support/load-client.js';
import { answersMore, waitMembers, worstShareDeviation } from '../support/membership.js';
import { createLab, type Lab, netnsUnavailable } from '../support/netns.js';
import { killAllStarted, type NodeProcess, runCli, sleep, startNode } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

const PORT = 8080;
const ARGS = ['--sync', 'off', '--request-timeout', '3000'];
const CUT_MS = 10_000;

/** Each key's local value on the node at `url` (tombstones and absent keys left out). */
async function localValues(url: string): Promise<Map<string, string>> {
  const { hostname, port } = new URL(url);
  const { entries } = await rangeEntries(Number(port), '/v0/entities?start=load-', hostname);
  return new Map(entries.filter(([key]) => key.startsWith('load-')));
}

const skip = await netnsUnavailable();

describe('membership across hosts (network namespaces)', () => {
  let lab: Lab | undefined;
  after(async () => {
    await killAllStarted();
    await lab?.close();
    await removeTempDirs();
  });

  it('grows, shrinks, and survives a host cut off for 10 s', { skip: skip ?? false }, async () => {
    lab = await createLab(5);
    const hosts = lab.hosts;
    const urls = hosts.map((host) => `http://${host.ip}:${PORT}`);
    const dirs = await Promise.all(hosts.map(() => makeTempDir('ringkv-netns-')));
    const start = (i: number, args: readonly string[]): Promise<NodeProcess> =>
      startNode({
        dataDir: dirs[i]!,
        port: PORT,
        host: hosts[i]!.ip,
        wrap: hosts[i]!.wrap,
        args: [...ARGS, ...args],
        readiness: 'health',
      });
    const nodes: (NodeProcess | undefined)[] = await Promise.all(
      [0, 1, 2].map((i) => start(i, ['--cluster', urls.slice(0, 3).join(',')])),
    );
    await waitMembers(urls[0]!, { normal: urls.slice(0, 3) });
    const load = startLoad({
      urls,
      concurrency: 6,
      ratePerSecond: 150,
      keys: 120,
      query: { ack: 2, from: 3 },
      // Short: a request sent to the host that is cut off waits this long, holding its worker.
      timeoutMs: 3000,
      maxDurationMs: 170_000,
    });
    const flowing = (more: number) => answersMore(load, more);
    await flowing(150);

    load.setPhase('grow');
    nodes[3] = await start(3, ['--join', urls[0]!]);
    assert.ok(worstShareDeviation(await waitMembers(urls[0]!, { normal: urls.slice(0, 4) })) <= 0.1);
    nodes[4] = await start(4, ['--join', urls[3]!]);
    assert.ok(worstShareDeviation(await waitMembers(urls[1]!, { normal: urls })) <= 0.1);
    await flowing(100);

    load.setPhase('shrink');
    for (const i of [0, 3]) {
      const decommissioned = await runCli(['decommission', '--url', urls[i]!], 60_000);
      assert.equal(decommissioned.code, 0, `${decommissioned.stdout}${decommissioned.stderr}`);
      assert.deepEqual(await nodes[i]!.exited, { code: 0, signal: null });
    }
    const remaining = [urls[1]!, urls[2]!, urls[4]!];
    assert.ok(worstShareDeviation(await waitMembers(urls[4]!, { normal: remaining })) <= 0.1);
    await flowing(100);

    // Host 2 is cut off from everyone for CUT_MS, then comes back.
    load.setPhase('cut');
    await lab.cut(2);
    await sleep(CUT_MS);
    await lab.restore(2);
    load.setPhase('back');
    await flowing(200);
    const report = await load.stop();

    const unexpected = report.failures.filter((event) => !(event.phase === 'cut' && event.node === urls[2]));
    assert.deepEqual(unexpected, [], `failures:\n${describeEvents(unexpected)}`);
    // Each worker sends every fifth request to the host cut off and waits for it: fewer answers, but answers.
    assert.ok(
      (report.phases.cut?.answered ?? 0) >= 50,
      `the cluster answered while the host was cut off: ${JSON.stringify(report.phases.cut)}`,
    );

    // The host that was cut off converges: its own copies become the others', node by node.
    let last = '';
    for (let attempt = 0; attempt < 100; attempt++) {
      const [one, two, four] = (await Promise.all([1, 2, 4].map((i) => localValues(urls[i]!)))) as [
        Map<string, string>,
        Map<string, string>,
        Map<string, string>,
      ];
      const differ = [...new Set([...one.keys(), ...two.keys(), ...four.keys()])].filter(
        (key) => !(one.get(key) === two.get(key) && two.get(key) === four.get(key)),
      );
      last = `${differ.length} keys differ, e.g. ${differ.slice(0, 3).join(', ')}`;
      if (differ.length === 0) break;
      await sleep(200);
    }
    assert.match(last, /^0 keys differ/, `host ${urls[2]} did not converge: ${last}`);
    assert.deepEqual(await checkValues(load, remaining, { ack: 2, from: 3 }), []);
    process.stdout.write(`# ${report.answered} answers: ${JSON.stringify(report.phases)}\n`);
  });
});
