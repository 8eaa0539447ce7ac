/**
 * Growing and shrinking a live cluster (real processes): three nodes under a
 * steady load of PUT, GET and DELETE at ack=2&from=3 through every node the
 * client knows (all five URLs, the ones not running refusing connections:
 * failovers, not failures); a fourth node joins (--join), then a fifth, then
 * two are decommissioned (the first of the original three, which completed
 * the earlier moves, and the fourth), back to three. Besides the load's
 * keys the cluster holds 2 MB of others, and nodes take their new ranges at
 * 1 MB/s (RINGKV_STREAM_BYTES_PER_SEC), so every move streams for seconds
 * while the load runs (the test sees a new owner part-way).
 *
 * Checked: no failure at all in the load (every write answered, every read
 * answered with a value the key may hold: a quorum read never misses an
 * acknowledged write, during the moves too); every key's value read back at
 * the end with quorum reads; the ring's ownership within ±10% of even at
 * every size; a decommissioned node exits 0; once the old owners have
 * cleaned up after the growth to five, every key is on exactly three nodes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { checkValues, describeEvents, startLoad } from '../support/load-client.js';
import {
  answersMore,
  copiesPerKey,
  type MembershipView,
  testNodes,
  waitMembers,
  waitMembership,
  worstShareDeviation,
  writeKeys,
} from '../support/membership.js';
import { killAllStarted, type NodeProcess, runCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off', '--request-timeout', '3000'];
const ENV = { RINGKV_STREAM_BYTES_PER_SEC: '1000000' };
const FILLER_KEYS = 4000;
const FILLER_VALUE = 'x'.repeat(500);

describe('membership: grow 3 -> 4 -> 5, decommission back to 3, under load', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('loses no acknowledged write, serves no stale quorum read, keeps ownership even', async () => {
    const { urls, start } = await testNodes(5, { args: ARGS, env: ENV, dirPrefix: 'ringkv-move-' });
    const nodes: (NodeProcess | undefined)[] = await Promise.all(
      [0, 1, 2].map((i) => start(i, ['--cluster', urls.slice(0, 3).join(',')])),
    );
    const shares: string[] = [];
    const checkShares = (view: MembershipView, size: number): void => {
      const worst = worstShareDeviation(view);
      shares.push(`${size} nodes: worst ${(worst * 100).toFixed(1)}%`);
      assert.ok(worst <= 0.1, `${size} nodes: a share is ${(worst * 100).toFixed(1)}% off even`);
    };
    checkShares(await waitMembers(urls[0]!, { normal: urls.slice(0, 3) }), 3);
    await writeKeys(urls.slice(0, 3), { count: FILLER_KEYS, prefix: 'filler-', value: () => FILLER_VALUE });

    const load = startLoad({
      urls,
      concurrency: 6,
      ratePerSecond: 200,
      keys: 150,
      query: { ack: 2, from: 3 },
      timeoutMs: 8000,
      maxDurationMs: 150_000,
    });
    const flowing = (more: number) => answersMore(load, more);
    await flowing(200);

    load.setPhase('join 4');
    nodes[3] = await start(3, ['--join', urls[0]!]);
    const midway = await waitMembership(urls[3]!, (v) => {
      const receiving = v.receiving as { done: boolean; bytes: number } | null;
      return receiving !== null && !receiving.done && receiving.bytes > 0;
    });
    assert.ok(midway.move !== null, 'the load runs while the new node streams');
    checkShares(await waitMembers(urls[0]!, { normal: urls.slice(0, 4) }), 4);
    await flowing(150);

    load.setPhase('join 5');
    nodes[4] = await start(4, ['--join', urls[3]!]);
    const five = await waitMembers(urls[1]!, { normal: urls }, 60_000);
    checkShares(five, 5);
    for (const url of urls) {
      await waitMembership(url, (v) => v.cleanup?.epoch === five.epoch && v.cleanup.state === 'done');
    }
    const copies = await copiesPerKey(urls, 'filler-');
    const wrong = [...copies].filter(([, n]) => n !== 3);
    assert.equal(copies.size, FILLER_KEYS);
    assert.deepEqual(
      wrong.slice(0, 5),
      [],
      `${wrong.length} filler keys not on exactly three nodes after the cleanup`,
    );
    await flowing(150);

    load.setPhase('decommission 1');
    const first = await runCli(['decommission', '--url', urls[0]!], 60_000);
    assert.equal(first.code, 0, `decommission: ${first.stdout}${first.stderr}`);
    assert.match(first.stdout, /move complete/);
    assert.deepEqual(await nodes[0]!.exited, { code: 0, signal: null }, 'a decommissioned node exits 0');
    checkShares(await waitMembers(urls[1]!, { normal: urls.slice(1) }), 4);
    await flowing(150);

    load.setPhase('decommission 4');
    const fourth = await runCli(['decommission', '--url', urls[3]!], 60_000);
    assert.equal(fourth.code, 0, `decommission: ${fourth.stdout}${fourth.stderr}`);
    assert.deepEqual(await nodes[3]!.exited, { code: 0, signal: null });
    const remaining = [urls[1]!, urls[2]!, urls[4]!];
    checkShares(await waitMembers(urls[4]!, { normal: remaining }), 3);
    load.setPhase('after');
    await flowing(150);

    const report = await load.stop();
    assert.deepEqual(report.failures, [], `failures:\n${describeEvents(report.failures)}`);
    for (const phase of ['join 4', 'join 5', 'decommission 1', 'decommission 4']) {
      assert.ok((report.phases[phase]?.answered ?? 0) > 0, `answers during ${phase}`);
    }
    assert.deepEqual(await checkValues(load, remaining, { ack: 2, from: 3 }), []);
    process.stdout.write(
      `# ${report.answered} answers (${JSON.stringify(report.phases)}); shares: ${shares.join('; ')}\n`,
    );
  });
});
