/**
 * A stand-in for the background worker (storage/compaction/worker.ts): a job
 * whose `dir` is 'die' ends the thread, as running out of memory would; one
 * whose `dir` is 'hang' is never answered (a job still under way); any other
 * is answered with an empty result.
 */
import { parentPort } from 'node:worker_threads';

const port = parentPort;
if (port === null) throw new Error('dying-worker.ts must run in a worker thread');
port.on('message', (message: { id: number; job: { dir: string } }) => {
  if (message.job.dir === 'die') process.exit(3);
  if (message.job.dir === 'hang') return;
  port.postMessage({ id: message.id, result: { tables: [], entriesIn: 0, entriesDropped: 0 } });
});
