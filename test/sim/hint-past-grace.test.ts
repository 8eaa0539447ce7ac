/**
 * A hint kept longer than the tombstone grace must not bring a deleted key
 * back, scripted on the cluster simulation's parts. The grace is shortened
 * to 3 s (limits.tombstoneGraceMs, read when engines and hint stores open),
 * so the scenario runs in virtual seconds instead of a day.
 *
 * PUT k=v0 through n0 while n2 is down: n0 keeps a hint of v0 for n2, then
 * loses power with it on disk. DELETE k through n1 (n1 keeps a hint of the
 * tombstone for n0). Past the grace, n1 and n2 compact the tombstone away.
 * When n0 is back, its hint of v0 is older than hints are kept: it is
 * dropped as n0 reloads it, rather than handed to n2, where nothing would
 * shadow it any more. n1's hint of the tombstone has no age limit: it
 * deletes v0 on n0, so anti-entropy finds no value to spread either.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { limits } from '../../src/config/limits.js';
import { isLive } from '../../src/storage/index.js';
import { threeNodeSimulation } from './three-nodes.js';

test('a hint older than the tombstone grace allows is dropped, not handed over: a deleted key stays deleted', async () => {
  const mutable = limits as { tombstoneGraceMs: number };
  const graceMs = mutable.tombstoneGraceMs;
  mutable.tombstoneGraceMs = 3000;
  const { time, urls, nodes, run } = threeNodeSimulation();
  const [n0, n1, n2] = nodes;
  const key = Buffer.from('k');
  const all = { ack: 2, from: 3 };
  /** What each replica holds of the key: a live value, or '-' (nothing, a tombstone). */
  const held = async (): Promise<string[]> =>
    Promise.all(
      [n0, n1, n2].map(async (node) => {
        const entry = await node.engine!.get(key);
        return entry !== undefined && isLive(entry, Date.now()) ? entry.value.toString() : '-';
      }),
    );
  const scenario = async () => {
    for (const node of [n0, n1, n2]) await node.start();
    await time.sleep(1500);
    n2.crash(1);
    await time.sleep(100);
    await n0.store!.put(key, Buffer.from('v0'), all);
    await time.sleep(500);
    const hinted = n0.parts!.hints.pending(urls[2]!).entries;
    n0.crash(2);
    await time.sleep(100);
    await n2.start();
    await time.sleep(1000);
    await n1.store!.delete(key, all);
    // Past the grace: the tombstone is collected where it is.
    await time.sleep(5000);
    await n1.engine!.compact();
    await n2.engine!.compact();
    await n0.start();
    const tooOldAtOpen = n0.parts!.hints.stats().tooOld;
    // n1 hands the delete to n0; n0 has nothing left for n2.
    await time.sleep(3000);
    const afterHandoff = await held();
    // With n0 away again, from - max(ack) = 1 replica is down: reads at ack=2 must see the ack=2 delete.
    n0.crash(3);
    await time.sleep(100);
    const reads = await Promise.all(
      [n1, n2].map(async (node) => {
        const entry = await node.store!.get(key, all);
        return entry !== undefined && isLive(entry, Date.now()) ? entry.value.toString() : '404';
      }),
    );
    await n0.start();
    await time.sleep(1000);
    for (let round = 0; round < 2; round++) {
      for (const node of [n0, n1, n2]) await node.parts!.antiEntropy.runOnce();
    }
    return { hinted, tooOldAtOpen, afterHandoff, reads, afterAntiEntropy: await held() };
  };
  let result: Awaited<ReturnType<typeof scenario>>;
  try {
    result = await run(scenario);
  } finally {
    mutable.tombstoneGraceMs = graceMs;
  }
  assert.equal(result.hinted, 1, 'n0 kept a hint of v0 for n2');
  assert.deepEqual(result.reads, ['404', '404'], 'reads through n1 and n2');
  assert.deepEqual(result.afterHandoff, ['-', '-', '-'], 'n0, n1, n2 after the handoff');
  assert.deepEqual(result.afterAntiEntropy, ['-', '-', '-'], 'n0, n1, n2 after anti-entropy');
  assert.equal(result.tooOldAtOpen, 1, 'n0 dropped its hint as it reloaded it');
});
