/**
 * Where the engine's background jobs (jobs.ts) run.
 *
 * BackgroundWorker: a worker thread. Jobs queue in the worker; results come
 * back in order. A job's buffers are copied by postMessage unless they live
 * in a SharedArrayBuffer (a flush's entries do), which the worker reads in
 * place. The worker reaches files by path through its own nodeVfs.
 *
 * InlineJobRunner: the same jobs in this thread, one at a time, each after
 * a turn of the event loop, on the given vfs. An in-memory or
 * fault-injecting vfs lives in this thread's memory and cannot cross to a
 * worker, so an engine on one runs its jobs here (jobRunner()); the jobs'
 * blocking work then holds the event loop, which only tests do.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { RingkvError } from '../../util/errors.js';
import type { TableMeta } from '../sstable/index.js';
import type { Vfs } from '../vfs/index.js';
import { fromJobError, type Job, type JobError, type JobResult, runJob } from './jobs.js';

export interface JobRunner {
  run(job: Job): Promise<JobResult>;
  /** Stops taking jobs; a job already running finishes or is cut short, and its caller is rejected. */
  terminate(): Promise<void>;
}

/** A worker thread when `vfs` can be reached from one, in-process otherwise. */
export function jobRunner(name: string, vfs: Vfs): JobRunner {
  return vfs.sharedAcrossThreads ? new BackgroundWorker(name) : new InlineJobRunner(vfs);
}

export class InlineJobRunner implements JobRunner {
  readonly #vfs: Vfs;
  #queue: Promise<unknown> = Promise.resolve();
  #terminated = false;

  constructor(vfs: Vfs) {
    this.#vfs = vfs;
  }

  run(job: Job): Promise<JobResult> {
    const result = this.#queue.then(async () => {
      // A turn first, as a worker's answer takes one: callers never see a job done synchronously.
      await nextTurn();
      if (this.#terminated) throw new RingkvError('RINGKV_CLOSED', 'Background jobs stopped');
      return runJob(job, this.#vfs);
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async terminate(): Promise<void> {
    this.#terminated = true;
  }
}

interface Pending {
  resolve(result: JobResult): void;
  reject(err: Error): void;
}

export class BackgroundWorker implements JobRunner {
  readonly #name: string;
  readonly #script: URL;
  /** Undefined once it died (out of memory, say) until the next job starts another. */
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #terminated = false;

  /** `script`: the worker's entry (tests give one that can die on request). */
  constructor(name: string, script: URL = new URL('./worker.js', import.meta.url)) {
    this.#name = name;
    this.#script = script;
    this.#worker = this.#start();
  }

  run(job: Job): Promise<JobResult> {
    if (this.#terminated) return Promise.reject(new RingkvError('RINGKV_CLOSED', 'Background jobs stopped'));
    // A worker that died failed its own jobs (the engine retries them); later jobs get a new one, or
    // every flush and compaction would fail until the process restarts.
    this.#worker ??= this.#start();
    const worker = this.#worker;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, job });
    });
  }

  async terminate(): Promise<void> {
    this.#terminated = true;
    await this.#worker?.terminate();
  }

  #start(): Worker {
    const worker = new Worker(this.#script, { name: this.#name });
    worker.unref();
    worker.on('message', (message: { id: number; result?: JobResult; error?: JobError }) => {
      const pending = this.#pending.get(message.id);
      if (pending === undefined) return;
      this.#pending.delete(message.id);
      if (message.error !== undefined) pending.reject(fromJobError(message.error));
      else pending.resolve(reviveResult(message.result!));
    });
    worker.on('error', (err) => this.#lost(worker, err));
    worker.on('exit', () => this.#lost(worker, new RingkvError('RINGKV_CLOSED', 'Background worker exited')));
    return worker;
  }

  /** The worker died or was terminated: its jobs fail ('error' comes before 'exit'; the first tells why). */
  #lost(worker: Worker, err: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
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
