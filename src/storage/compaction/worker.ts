/**
 * Worker-thread entry: runs flush and compaction jobs (jobs.ts) one at a time
 * and posts each result or error back with the job's id.
 *
 * The thread lowers its own scheduling priority first: on a machine with few
 * cores a compaction competes with the event loop for CPU, and it is the
 * event loop that holds requests. On Linux a thread can renice itself alone
 * (setpriority on its thread id, found through /proc/thread-self); elsewhere
 * this is skipped.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { assert } from '../../util/assert.js';
import { ownThreadId } from '../vfs/proc.js';
import { type Job, runJob, toJobError } from './jobs.js';

/** Nice value for background work: below every request-serving thread, above idle. */
const BACKGROUND_NICE = 10;

function lowerOwnPriority(): void {
  try {
    const threadId = ownThreadId();
    if (threadId !== undefined) setPriority(threadId, BACKGROUND_NICE);
  } catch {
    // Not Linux, or not permitted: background work then runs at normal priority.
  }
}

const port = parentPort;
assert(port !== null, 'worker.ts must run in a worker thread');
lowerOwnPriority();

port.on('message', (message: { id: number; job: Job }) => {
  try {
    const result = runJob(message.job);
    port.postMessage({ id: message.id, result });
  } catch (err) {
    port.postMessage({ id: message.id, error: toJobError(err) });
  }
});
