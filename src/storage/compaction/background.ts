/**
 * The event loop's handle on a worker thread that runs jobs (jobs.ts).
 * Jobs queue in the worker; results come back in order. A job's buffers are
 * copied by postMessage unless they live in a SharedArrayBuffer (a flush's
 * entries do), which the worker reads in place.
 */
import { Worker } from 'node:worker_threads';
import { RingkvError } from '../../util/errors.js';
import type { TableMeta } from '../sstable/index.js';
import { fromJobError, type Job, type JobError, type JobResult } from './jobs.js';

interface Pending {
  resolve(result: JobResult): void;
  reject(err: Error): void;
}

export class BackgroundWorker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: Error | undefined;

  constructor(name: string) {
    this.#worker = new Worker(new URL('./worker.js', import.meta.url), { name });
    this.#worker.unref();
    this.#worker.on('message', (message: { id: number; result?: JobResult; error?: JobError }) => {
      const pending = this.#pending.get(message.id);
      if (pending === undefined) return;
      this.#pending.delete(message.id);
      if (message.error !== undefined) pending.reject(fromJobError(message.error));
      else pending.resolve(reviveResult(message.result!));
    });
    this.#worker.on('error', (err) => this.#failAll(err));
    this.#worker.on('exit', () =>
      this.#failAll(new RingkvError('RINGKV_CLOSED', 'Background worker exited')),
    );
  }

  run(job: Job): Promise<JobResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, job });
    });
  }

  async terminate(): Promise<void> {
    await this.#worker.terminate();
  }

  #failAll(err: Error): void {
    this.#failure ??= err;
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }
}

/** Structured clone turns Buffers into Uint8Arrays; give keys back their Buffer methods. */
function reviveResult(result: JobResult): JobResult {
  const tables = result.tables.map(
    (t): TableMeta => ({
      ...t,
      smallestKey: Buffer.from(t.smallestKey.buffer, t.smallestKey.byteOffset, t.smallestKey.byteLength),
      largestKey: Buffer.from(t.largestKey.buffer, t.largestKey.byteOffset, t.largestKey.byteLength),
    }),
  );
  return { ...result, tables };
}
