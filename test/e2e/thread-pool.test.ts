/**
 * The thread pool a node runs with (bin/thread-pool.cjs): bin/ringkv sets
 * UV_THREADPOOL_SIZE before Node starts its pool, which only works while
 * bin/ringkv stays CommonJS; a user's own setting wins.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { threadPoolSizeInUse } from '../../src/cli/serve.js';
import { entityPath, httpRequest } from '../support/http-client.js';
import {
  BIN_SCRIPT,
  killAllStarted,
  MAIN_SCRIPT,
  startNode,
  stopNode,
  threadPool,
} from '../support/node-process.js';
import { makeTempDir, removeTempDirs } from '../support/temp-dir.js';

/**
 * The node's threads once it has served a write (its pool started long before, at its first file
 * open), started by `script` with UV_THREADPOOL_SIZE unset, or set to `size`.
 */
async function threadsOf(script: string, size?: number): Promise<number> {
  const node = await startNode({
    dataDir: await makeTempDir(),
    script,
    threadPoolEnv: 'unset',
    ...(size === undefined ? {} : { env: { UV_THREADPOOL_SIZE: String(size) } }),
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

  it('is as many threads as cores, from 2 to Node default 4; serve reports what libuv makes of the setting', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 16].map((cores) => threadPool.threadPoolSize(cores)),
      [2, 2, 3, 4, 4],
    );
    assert.equal(threadPool.withThreadPoolSize({}).UV_THREADPOOL_SIZE, String(threadPool.threadPoolSize()));
    assert.equal(threadPool.withThreadPoolSize({ UV_THREADPOOL_SIZE: '7' }).UV_THREADPOOL_SIZE, '7');
    assert.deepEqual(
      [undefined, '2', '7', '0', 'many', '5000'].map((setting) => threadPoolSizeInUse(setting)),
      [4, 2, 7, 1, 1, 1024],
    );
  });

  it('bin/ringkv starts a node with that many threads, and a set UV_THREADPOOL_SIZE wins', async (t) => {
    if (process.platform !== 'linux') {
      t.skip('no /proc to count threads in');
      return;
    }
    const size = threadPool.threadPoolSize();
    // Everything but the pool is the same in all three: the differences are the pool alone.
    const viaBin = await threadsOf(BIN_SCRIPT);
    const nodeDefault = await threadsOf(MAIN_SCRIPT);
    // Six is neither Node's default nor a size bin/ringkv picks, whatever this machine's cores.
    const binWithSix = await threadsOf(BIN_SCRIPT, 6);
    assert.equal(
      nodeDefault - viaBin,
      4 - size,
      `${viaBin} threads via bin/ringkv, ${nodeDefault} with Node's default pool`,
    );
    assert.equal(binWithSix - nodeDefault, 6 - 4, `${binWithSix} threads via bin/ringkv with 6 set`);
  });
});
