/**
 * Two coordinators stamping one version for two values of a key, scripted on
 * the cluster simulation's parts (which found it: SimReport.sameVersion) so
 * that it replays the same way every time. It checks that anti-entropy's
 * value hashes bring the replicas to one value.
 *
 * Two coordinators whose wall clocks read the same millisecond stamp one
 * version for two writes of a key (a hybrid logical clock carries no node
 * id). Here, during a partition, PUT k=a through n0 is acknowledged by n0
 * and n2, and PUT k=b through n1 reaches n1 alone; n1 loses power before its
 * request times out, so it never keeps hints for n0 and n2. After healing,
 * n0's hint gives n1 a, and n1 keeps b (at one version the larger value
 * wins, compareVersions). Versions and kinds agree everywhere, so only the
 * value hashes in the digests and key summaries (exchange.ts) show that n1
 * differs; anti-entropy then copies b to n0 and n2 (and a to n1, which keeps
 * b), and every replica holds b. Without value hashes n0 and n2 would keep a
 * and n1 b for good, and quorum reads would answer a or b by the replicas
 * they ask.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../src/storage/index.js';
import { silentLog } from '../../src/util/log.js';
import { SimNetwork } from './sim-network.js';
import { noneExercised, SimNode } from './sim-node.js';
import { VirtualTime } from './virtual-time.js';

test('one version stamped by two coordinators: replicas converge after hints and anti-entropy', async () => {
  const time = new VirtualTime({ startMs: Date.UTC(2026, 0, 1), seed: 1 });
  const urls = [0, 1, 2].map((i) => `http://sim-${i}:7000`);
  const network = new SimNetwork(urls, { random: seededRandom(5), delayMsMax: 2, lossRate: 0 });
  const [n0, n1, n2] = urls.map(
    (url) =>
      new SimNode({
        url,
        cluster: urls,
        clockOffsetMs: 0,
        sync: true,
        memtableBytes: 65_536,
        antiEntropyIntervalMs: 0,
        hintHandoffIntervalMs: 200,
        network,
        log: silentLog,
        exercised: noneExercised(),
      }),
  ) as [SimNode, SimNode, SimNode];
  const key = Buffer.from('k');
  const held = async () =>
    Promise.all(
      [n0, n1, n2].map(async (node) => {
        const entry = await node.engine!.get(key);
        return `${entry?.version}:${entry?.value}`;
      }),
    );
  const scenario = async (): Promise<string[]> => {
    for (const node of [n0, n1, n2]) await node.start();
    // Past every replica's start-up floor (its clock plus the maximum skew), so no write conflicts.
    await time.sleep(1500);
    network.partition([[urls[1]!], [urls[0]!, urls[2]!]]);
    const options = { ack: 2, from: 3 };
    const a = n0.store!.put(key, Buffer.from('a'), options);
    void n1.store!.put(key, Buffer.from('b'), options).catch(() => undefined);
    await a;
    await time.sleep(500);
    n1.crash(7);
    await time.sleep(100);
    network.heal();
    await n1.start();
    await time.sleep(2000);
    for (let round = 0; round < 2; round++) {
      for (const node of [n0, n1, n2]) await node.parts!.antiEntropy.runOnce();
    }
    return held();
  };
  time.install();
  let replicas: string[];
  try {
    replicas = await time.run(scenario(), Number.POSITIVE_INFINITY);
  } finally {
    time.uninstall();
  }
  assert.equal(new Set(replicas.map((r) => r.split(':')[0])).size, 1, 'one version everywhere');
  assert.equal(new Set(replicas).size, 1, `replicas hold ${replicas.join(' ')}`);
  assert.ok(
    replicas.every((r) => r.endsWith(':b')),
    `the larger value everywhere: ${replicas.join(' ')}`,
  );
});
