/**
 * Keys written with a `from` below the replication factor survive a
 * decommission (real processes). Three nodes hold keys written with
 * ack=1&from=1 (one copy) and ack=2&from=2 (two copies); one node is
 * decommissioned. A key's replica list loses the leaving node and every node
 * after it moves up one place: a node that was its third replica (never
 * written to at from=2) becomes its second, one that was its second becomes
 * its first. Those nodes must be given the key, or a read with ack=1 through
 * them misses an acknowledged write (ack + ack > from), and a from=1 key
 * whose only copy was on the leaving node is gone.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { testNodes, waitMembers } from '../support/membership.js';
import { killAllStarted, runCli } from '../support/node-process.js';
import { removeTempDirs } from '../support/temp-dir.js';

const ARGS = ['--sync', 'off'];
const KEYS = 60;
const WRITES = [
  { prefix: 'one-', ack: 1, from: 1 },
  { prefix: 'two-', ack: 2, from: 2 },
] as const;

async function put(url: string, key: string, query: string, value: string): Promise<void> {
  const answer = await fetch(`${url}/v0/entity?id=${key}&${query}`, { method: 'PUT', body: value });
  await answer.arrayBuffer();
  assert.equal(answer.status, 201, `PUT ${key}`);
}

/** Keys that a read with ack=1 at the key's own `from` misses through any of `urls`. */
async function missed(urls: readonly string[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const { prefix, from } of WRITES) {
    for (let i = 0; i < KEYS; i++) {
      for (const url of urls) {
        const answer = await fetch(`${url}/v0/entity?id=${prefix}${i}&ack=1&from=${from}`);
        const body = await answer.text();
        if (answer.status !== 200 || body !== `value-${i}`) {
          wrong.push(`${prefix}${i} via ${url}: ${answer.status}`);
        }
      }
    }
  }
  return wrong;
}

describe('membership: keys written with a small from', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('are all read back at ack=1 through every node after a decommission', async () => {
    const { urls, start } = await testNodes(3, { args: ARGS, dirPrefix: 'ringkv-small-from-' });
    await Promise.all([0, 1, 2].map((i) => start(i, ['--cluster', urls.join(',')])));
    await waitMembers(urls[0]!, { normal: urls });
    for (const { prefix, ack, from } of WRITES) {
      for (let i = 0; i < KEYS; i++) {
        await put(urls[i % urls.length]!, `${prefix}${i}`, `ack=${ack}&from=${from}`, `value-${i}`);
      }
    }
    assert.deepEqual(await missed(urls), [], 'before the move');

    const left = await runCli(['decommission', '--url', urls[0]!], 60_000);
    assert.equal(left.code, 0, `decommission: ${left.stdout}${left.stderr}`);
    const remaining = urls.slice(1);
    await waitMembers(remaining[0]!, { normal: remaining });
    const wrong = await missed(remaining);
    assert.deepEqual(wrong.slice(0, 8), [], `${wrong.length} reads missed their key after the move`);
  });
});
