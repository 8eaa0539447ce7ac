/**
 * Worker-thread entry: runs flush and compaction jobs (jobs.ts) one at a time
 * and posts each result or error back with the job's id.
 */
import { parentPort } from 'node:worker_threads';
import { assert } from '../../util/assert.js';
import { type Job, runJob, toJobError } from './jobs.js';

const port = parentPort;
assert(port !== null, 'worker.ts must run in a worker thread');

port.on('message', (message: { id: number; job: Job }) => {
  try {
    const result = runJob(message.job);
    port.postMessage({ id: message.id, result });
  } catch (err) {
    port.postMessage({ id: message.id, error: toJobError(err) });
  }
});
