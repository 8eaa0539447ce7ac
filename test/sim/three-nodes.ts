/** A scripted scenario's cluster: three simulated nodes on a lossless network, in virtual time. */
import { seededRandom } from '../../src/storage/index.js';
import { silentLog } from '../../src/util/log.js';
import { SimNetwork } from './sim-network.js';
import { noneExercised, SimNode } from './sim-node.js';
import { VirtualTime } from './virtual-time.js';

/** Three simulated nodes on a lossless network, not started; `run` plays a scenario on them. */
export function threeNodeSimulation() {
  const time = new VirtualTime({ startMs: Date.UTC(2026, 0, 1), seed: 1 });
  const urls = [0, 1, 2].map((i) => `http://sim-${i}:7000`);
  const network = new SimNetwork(urls, { random: seededRandom(5), delayMsMax: 2, lossRate: 0 });
  const nodes = urls.map(
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
  const run = async <T>(scenario: () => Promise<T>): Promise<T> => {
    time.install();
    try {
      return await time.run(scenario(), Number.POSITIVE_INFINITY);
    } finally {
      time.uninstall();
    }
  };
  return { time, urls, network, nodes, run };
}
