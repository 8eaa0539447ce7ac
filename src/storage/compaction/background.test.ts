import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isRingkvError } from '../../util/errors.js';
import { BackgroundWorker } from './background.js';
import type { Job } from './jobs.js';

const DYING = new URL('../../../test/support/dying-worker.js', import.meta.url);
const job = (dir: string) => ({ kind: 'flush', dir }) as unknown as Job;

describe('BackgroundWorker', () => {
  // The worker is unref'd (it must not keep a node's process alive): this keeps the test's alive.
  let keepAlive: NodeJS.Timeout;
  before(() => {
    keepAlive = setInterval(() => {}, 1000);
  });
  after(() => clearInterval(keepAlive));

  it('a worker that dies fails its jobs, and the next job runs on a new one', async () => {
    const runner = new BackgroundWorker('test-worker', DYING);
    try {
      assert.deepEqual((await runner.run(job('ok'))).tables, []);
      await assert.rejects(runner.run(job('die')));
      // Before, every later job was refused with the death of the first worker.
      assert.deepEqual((await runner.run(job('ok'))).tables, []);
      assert.deepEqual((await runner.run(job('ok'))).entriesIn, 0);
    } finally {
      await runner.terminate();
    }
  });

  it('after terminate() it refuses jobs, and the job under way is rejected as closed', async () => {
    const runner = new BackgroundWorker('test-worker', DYING);
    await runner.run(job('ok'));
    const underWay = runner.run(job('hang')).then(
      () => 'answered',
      (err: unknown) => err,
    );
    await runner.terminate();
    // Settled by the time terminate() has: its caller is not left waiting on a worker that is gone.
    const outcome = await Promise.race([
      underWay,
      new Promise((resolve) => setImmediate(() => resolve('still waiting'))),
    ]);
    assert.ok(isRingkvError(outcome, 'RINGKV_CLOSED'), String(outcome));
    await assert.rejects(runner.run(job('ok')), (err) => isRingkvError(err, 'RINGKV_CLOSED'));
  });
});
