/**
 * Dead nodes taken out (real processes): five nodes hold keys written with
 * ack=3&from=3; one is killed and removed (ringkv remove), another is
 * killed and replaced by a new node (serve --replace DEAD --join ANY).
 * After each, every key is back to three copies on the live nodes, counted
 * node by node in their local ranges, and reads with ack=3 see every value.
 * The replacement takes the dead node's place on the ring: its share is the
 * dead node's. Removing a node that still answers is refused.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { copiesPerKey, testNodes, waitMembers, writeKeys } from '../support/membership.js';
import { killAllStarted, killNode, runCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off'];
const KEYS = 400;

/** Keys whose copies on `urls` are not exactly three, and keys that do not read back with ack=3. */
async function checkKeys(urls: readonly string[]): Promise<{ copies: string[]; reads: string[] }> {
  const copies = await copiesPerKey(urls, 'key-');
  const wrongCopies: string[] = [];
  const wrongReads: string[] = [];
  for (let i = 0; i < KEYS; i++) {
    const n = copies.get(`key-${i}`) ?? 0;
    if (n !== 3) wrongCopies.push(`key-${i}: ${n} copies`);
    const answer = await fetch(`${urls[i % urls.length]}/v0/entity?id=key-${i}&ack=3&from=3`);
    const body = await answer.text();
    if (answer.status !== 200 || body !== `value-${i}`) wrongReads.push(`key-${i}: ${answer.status} ${body}`);
  }
  return { copies: wrongCopies, reads: wrongReads };
}

describe('membership: remove and replace a dead node', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('every key is back to three copies after each', async () => {
    const { urls, start } = await testNodes(6, { args: ARGS, dirPrefix: 'ringkv-remove-' });
    const nodes = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => start(i, ['--cluster', urls.slice(0, 5).join(',')])),
    );
    await waitMembers(urls[0]!, { normal: urls.slice(0, 5) });
    await writeKeys(urls.slice(0, 5), { count: KEYS, prefix: 'key-', value: (i) => `value-${i}` });

    // Remove: node 4 dies and is taken out; its ranges are rebuilt from the other replicas.
    await killNode(nodes[4]!);
    const refused = await runCli(['remove', '--url', urls[0]!, urls[1]!]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /is up and answering/);
    const removed = await runCli(['remove', '--url', urls[0]!, urls[4]!], 60_000);
    assert.equal(removed.code, 0, `${removed.stdout}${removed.stderr}`);
    assert.match(removed.stdout, /move complete/);
    const four = urls.slice(0, 4);
    const before = await waitMembers(urls[1]!, { normal: four });
    assert.deepEqual(await checkKeys(four), { copies: [], reads: [] });

    // Replace: node 3 dies; a new node takes its place (and its share of the ring).
    await killNode(nodes[3]!);
    await start(5, ['--join', urls[0]!, '--replace', urls[3]!]);
    const live = [urls[0]!, urls[1]!, urls[2]!, urls[5]!];
    const after = await waitMembers(urls[2]!, { normal: live }, 60_000);
    const shareOf = (view: typeof after, url: string) => view.members.find((m) => m.url === url)?.share;
    assert.equal(
      shareOf(after, urls[5]!),
      shareOf(before, urls[3]!),
      'the replacement owns what the dead node owned',
    );
    assert.equal(after.members.find((m) => m.url === urls[3])?.state, 'removed');
    assert.deepEqual(await checkKeys(live), { copies: [], reads: [] });
  });
});
