/**
 * A one-shot timer with sub-millisecond precision, for the constant-rate
 * generator (loadgen.mjs).
 *
 * Why: setTimeout counts in whole milliseconds (libuv's loop clock, and
 * epoll's timeout rounded up), so a request due in 0.3 ms left 0.5-0.7 ms
 * late at the median and 1.4-1.9 ms late at p99. Latency is measured from
 * when a request was due, so that lateness, the generator's own, was charged
 * to the server: at the cluster bench's rates it was most of a GET's median.
 *
 * How: a worker thread sleeps in Atomics.wait, whose timeout is a fraction of
 * a millisecond, and posts a message when the time comes; the message wakes
 * the main thread's event loop at once. Re-arming bumps a generation counter
 * that cuts the worker's sleep short, and a message from an earlier
 * generation is dropped. The worker costs a futex wake and a message per
 * firing, and sleeps otherwise.
 *
 *   const pacer = await Pacer.start(() => console.log('due'));
 *   pacer.wakeAt(performance.now() + 0.25);
 *   // ...
 *   await pacer.close();
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

/** Slots of the shared Int32Array: the generation, and 1 once the pacer is closing. */
const GENERATION = 0;
const CLOSING = 1;

// The worker compares absolute times (timeOrigin + now()): each thread has its own origin.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const state = new Int32Array(workerData, 0, 2);
const at = new Float64Array(workerData, 8, 1);
while (Atomics.load(state, ${CLOSING}) === 0) {
  const generation = Atomics.load(state, ${GENERATION});
  const left = at[0] - (performance.timeOrigin + performance.now());
  if (Number.isNaN(left)) {
    Atomics.wait(state, ${GENERATION}, generation);
  } else if (left > 0) {
    Atomics.wait(state, ${GENERATION}, generation, left);
  } else {
    parentPort.postMessage(generation);
    Atomics.wait(state, ${GENERATION}, generation);
  }
}
`;

export class Pacer {
  #state;
  #at;
  #worker;

  /** A pacer whose worker is running; `onDue` is called on the main thread when a wakeAt time comes. */
  static async start(onDue) {
    const pacer = new Pacer(onDue);
    await new Promise((resolve, reject) => {
      pacer.#worker.once('online', resolve);
      pacer.#worker.once('error', reject);
    });
    return pacer;
  }

  constructor(onDue) {
    const shared = new SharedArrayBuffer(16);
    this.#state = new Int32Array(shared, 0, 2);
    this.#at = new Float64Array(shared, 8, 1);
    this.#at[0] = Number.NaN;
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: shared });
    this.#worker.on('message', (generation) => {
      if (generation === Atomics.load(this.#state, GENERATION)) onDue();
    });
  }

  /** Calls onDue once at `atMs` (this thread's performance.now()), instead of at any earlier wakeAt time. */
  wakeAt(atMs) {
    this.#at[0] = performance.timeOrigin + atMs;
    this.#bump();
  }

  /** Forgets the pending wakeAt, if any. */
  cancel() {
    this.#at[0] = Number.NaN;
    this.#bump();
  }

  async close() {
    Atomics.store(this.#state, CLOSING, 1);
    this.cancel();
    await this.#worker.terminate();
  }

  #bump() {
    Atomics.add(this.#state, GENERATION, 1);
    Atomics.notify(this.#state, GENERATION);
  }
}
