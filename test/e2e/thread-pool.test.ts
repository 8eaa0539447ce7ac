/**
 * The thread pool a node runs with (bin/thread-pool.cjs): bin/ringkv sets
 * UV_THREADPOOL_SIZE before Node starts its pool, which only works while
 * bin/ringkv stays CommonJS; a user's own setting wins.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { entityPath, httpRequest } from '../support/http-client.js';
import { BIN_SCRIPT, killAllStarted, startNode, stopNode, threadPool } from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/** The node's threads once it has served a write (its pool started long before, at its first file open). */
async function threadsOf(script: string | undefined, env: Record<string, string>): Promise<number> {
  const node = await startNode({
    dataDir: await makeTempDir(),
    env,
    ...(script === undefined ? {} : { script }),
  });
  try {
    const put = await httpRequest(`${node.url}${entityPath('pool')}`, { method: 'PUT', body: 'x' });
    assert.equal(put.status, 201);
    return readdirSync(`/proc/${node.pid}/task`).length;
  } finally {
    await stopNode(node);
  }
}

describe('the thread pool', () => {
  after(async () => {
    await killAllStarted();
    await removeTempDirs();
  });

  it('is as many threads as cores, from 2 to Node default 4', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 16].map((cores) => threadPool.threadPoolSize(cores)),
      [2, 2, 3, 4, 4],
    );
    assert.equal(threadPool.withThreadPoolSize({}).UV_THREADPOOL_SIZE, String(threadPool.threadPoolSize()));
    assert.equal(threadPool.withThreadPoolSize({ UV_THREADPOOL_SIZE: '7' }).UV_THREADPOOL_SIZE, '7');
  });

  it('bin/ringkv starts a node with that many threads, and a set UV_THREADPOOL_SIZE wins', async (t) => {
    const size = threadPool.threadPoolSize();
    if (size === 4 || process.platform !== 'linux') {
      t.skip(`this machine's size is Node's default (${size}), or no /proc to count threads in`);
      return;
    }
    // Everything but the pool is the same in all three: the difference is the pool alone.
    const viaBin = await threadsOf(BIN_SCRIPT, {});
    const withFour = await threadsOf(BIN_SCRIPT, { UV_THREADPOOL_SIZE: '4' });
    const mainWithFour = await threadsOf(undefined, { UV_THREADPOOL_SIZE: '4' });
    assert.equal(withFour, mainWithFour);
    assert.equal(
      withFour - viaBin,
      4 - size,
      `${viaBin} threads via bin/ringkv, ${withFour} with 4 in the pool`,
    );
  });
});
