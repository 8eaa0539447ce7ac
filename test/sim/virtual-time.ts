/**
 * Virtual time for the cluster simulation: while installed, every timer and
 * clock the production code reads comes from here, and time moves only when
 * the simulation has nothing left to do at the current instant.
 *
 * Replaced while installed (and restored by uninstall()):
 * - globalThis.setTimeout / clearTimeout / setInterval / clearInterval /
 *   setImmediate / clearImmediate, and setTimeout / setImmediate of
 *   node:timers/promises (ESM imports of it are live bindings, updated with
 *   module.syncBuiltinESMExports());
 * - Date.now() and performance.now() (virtual ms; `new Date()` is not);
 * - Math.random(), by a generator seeded from the simulation's seed (the
 *   anti-entropy schedule's jitter draws from it).
 *
 * run(done) is the event loop: it lets the microtasks run (one real
 * setImmediate drains them, since nothing in the simulated cluster does real
 * I/O), then runs the next task: the oldest immediate, or else the earliest
 * timer (ties in the order they were set), moving the clock to its time.
 * One task at a time, microtasks drained after each, as Node does.
 *
 * What this reproduces: with the same seed and the same code on the same
 * Node version, the same interleaving of every callback, hence the same run
 * (the harness checks it by running a seed twice). What it does not: real
 * I/O, worker threads and `new Date()` (none of which the simulated nodes
 * use: MemoryVfs answers on microtasks, so flushes and compactions run
 * inline), and time spent computing, which is zero here; a request's
 * deadline only passes when the simulation moves time on.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { seededRandom } from '../../src/storage/index.js';

const require = createRequire(import.meta.url);
/** The module object behind ESM imports of node:timers/promises (their live bindings follow it). */
const timersPromises = require('node:timers/promises') as Record<string, unknown>;

type Callback = (...args: unknown[]) => void;

interface _TimerFields {
  readonly atMs: number;
  readonly seq: number;
  readonly callback: Callback;
  readonly args: unknown[];
  /** Set for setInterval: re-armed this long after each run. */
  readonly intervalMs: number | undefined;
  readonly delayMs: number;
}

/** A timer as Node hands one out: the methods callers use (unref, refresh, ...) and a numeric id. */
class VirtualTimer {
  readonly id: number;
  readonly #time: VirtualTime;
  /** When and what it runs. */
  readonly task: _TimerFields;
  cleared = false;

  constructor(time: VirtualTime, id: number, task: _TimerFields) {
    this.#time = time;
    this.id = id;
    this.task = task;
  }

  unref(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  hasRef(): boolean {
    return true;
  }

  refresh(): this {
    this.#time.rearm(this, this.task.delayMs);
    return this;
  }

  close(): this {
    this.#time.clear(this);
    return this;
  }

  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

/** A binary min-heap of timers by (atMs, seq); cleared timers are skipped when they surface. */
class TimerHeap {
  readonly #items: VirtualTimer[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(timer: VirtualTimer): void {
    const items = this.#items;
    items.push(timer);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!_before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  peek(): VirtualTimer | undefined {
    return this.#items[0];
  }

  pop(): VirtualTimer | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    items[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < items.length && _before(items[left]!, items[least]!)) least = left;
      if (right < items.length && _before(items[right]!, items[least]!)) least = right;
      if (least === i) break;
      [items[i], items[least]] = [items[least]!, items[i]!];
      i = least;
    }
    return top;
  }
}

function _before(a: VirtualTimer, b: VirtualTimer): boolean {
  return a.task.atMs < b.task.atMs || (a.task.atMs === b.task.atMs && a.task.seq < b.task.seq);
}

/** A property install() replaces: on what, its name, and the value it had. */
type _Saved = readonly [target: Record<string, unknown>, name: string, original: unknown];

/** Tasks run without the clock moving before the loop counts it as spinning (a bug in the simulation). */
const TASKS_AT_ONE_INSTANT_MAX = 1_000_000;

export class VirtualTime {
  readonly #startMs: number;
  readonly #random: () => number;
  #nowMs: number;
  #seq = 0;
  #nextId = 1;
  readonly #timers = new TimerHeap();
  readonly #byId = new Map<number, VirtualTimer>();
  #immediates: VirtualTimer[] = [];
  /** While installed: what to put back, and the real setImmediate the loop turns with. */
  #installed:
    | { readonly saved: readonly _Saved[]; readonly realSetImmediate: typeof setImmediate }
    | undefined;
  /** The first error a task threw: in a real process, an uncaught exception. */
  #failure: unknown;
  #tasks = 0;

  /** `startMs`: the virtual Date.now() at the start; `seed` seeds Math.random. */
  constructor(options: { startMs: number; seed: number }) {
    this.#startMs = options.startMs;
    this.#nowMs = options.startMs;
    this.#random = seededRandom(options.seed ^ 0x5eed);
  }

  /** Virtual Date.now(). */
  get nowMs(): number {
    return this.#nowMs;
  }

  /** Virtual ms since the start. */
  get elapsedMs(): number {
    return this.#nowMs - this.#startMs;
  }

  /** Callbacks run so far. */
  get tasks(): number {
    return this.#tasks;
  }

  /** A promise that resolves `ms` virtual ms from now (the simulation's own waits). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#add(resolve as Callback, [], ms, undefined));
  }

  install(): void {
    if (this.#installed !== undefined) return;
    const g = globalThis as unknown as Record<string, unknown>;
    const clear = (timer: unknown) => this.#clearAny(timer);
    const fakes: [Record<string, unknown>, string, unknown][] = [
      [
        g,
        'setTimeout',
        (callback: Callback, ms?: number, ...args: unknown[]) =>
          this.#add(callback, args, ms ?? 0, undefined),
      ],
      [
        g,
        'setInterval',
        (callback: Callback, ms?: number, ...args: unknown[]) =>
          this.#add(callback, args, ms ?? 0, Math.max(1, ms ?? 0)),
      ],
      [g, 'setImmediate', (callback: Callback, ...args: unknown[]) => this.#addImmediate(callback, args)],
      [g, 'clearTimeout', clear],
      [g, 'clearInterval', clear],
      [g, 'clearImmediate', clear],
      [Date as unknown as Record<string, unknown>, 'now', () => this.#nowMs],
      [performance as unknown as Record<string, unknown>, 'now', () => this.#nowMs - this.#startMs],
      [Math as unknown as Record<string, unknown>, 'random', this.#random],
      [
        timersPromises,
        'setTimeout',
        (ms = 0, value?: unknown, options?: { signal?: AbortSignal }) =>
          this.#promised((resolve) => this.#add(resolve, [value], ms, undefined), options?.signal),
      ],
      [
        timersPromises,
        'setImmediate',
        (value?: unknown, options?: { signal?: AbortSignal }) =>
          this.#promised((resolve) => this.#addImmediate(resolve, [value]), options?.signal),
      ],
    ];
    this.#installed = {
      saved: fakes.map(([target, name]) => [target, name, target[name]] as const),
      realSetImmediate: globalThis.setImmediate,
    };
    for (const [target, name, fake] of fakes) target[name] = fake;
    syncBuiltinESMExports();
  }

  uninstall(): void {
    const installed = this.#installed;
    if (installed === undefined) return;
    this.#installed = undefined;
    for (const [target, name, original] of installed.saved) target[name] = original;
    syncBuiltinESMExports();
  }

  /**
   * Runs the loop until `done` settles and returns its outcome. Rejects if
   * a callback threw, if nothing is left to run while `done` is pending (a
   * deadlock), or once virtual time passes `untilMs` (a run that never ends).
   */
  async run<T>(done: Promise<T>, untilMs: number): Promise<T> {
    const installed = this.#installed;
    if (installed === undefined) throw new Error('VirtualTime.run() needs install() first');
    let settled = false;
    const outcome = done.then(
      (value) => {
        settled = true;
        return value;
      },
      (err: unknown) => {
        settled = true;
        throw err;
      },
    );
    // The caller awaits `outcome`; this keeps a rejection from counting as unhandled meanwhile.
    outcome.catch(() => undefined);
    let atOneInstant = 0;
    for (;;) {
      // One real turn: every microtask queued so far runs, and those they queue.
      await new Promise<void>((resolve) => installed.realSetImmediate(resolve));
      if (this.#failure !== undefined) throw this.#failure;
      if (settled) return outcome;
      const timer = this.#immediates.shift() ?? this.#nextTimer();
      if (timer === undefined)
        throw new Error('Simulation deadlock: nothing is scheduled, yet the run is not over');
      if (timer.task.atMs > this.#nowMs) {
        this.#nowMs = timer.task.atMs;
        atOneInstant = 0;
      } else if (++atOneInstant > TASKS_AT_ONE_INSTANT_MAX) {
        throw new Error(
          `Simulation spins: ${atOneInstant} tasks at ${this.elapsedMs} ms without time moving`,
        );
      }
      if (this.#nowMs > untilMs) throw new Error(`Simulation ran past its time limit (${this.elapsedMs} ms)`);
      this.#run(timer);
    }
  }

  /** Re-arms a timer `ms` from now (Timeout.refresh(), and each run of an interval). */
  rearm(timer: VirtualTimer, ms: number): void {
    const current = this.#byId.get(timer.id);
    if (current !== undefined) current.cleared = true;
    const fresh = new VirtualTimer(this, timer.id, {
      ...timer.task,
      atMs: this.#nowMs + ms,
      seq: this.#seq++,
    });
    this.#byId.set(timer.id, fresh);
    this.#timers.push(fresh);
  }

  clear(timer: VirtualTimer): void {
    const current = this.#byId.get(timer.id);
    if (current !== undefined) current.cleared = true;
    timer.cleared = true;
    this.#byId.delete(timer.id);
  }

  #clearAny(timer: unknown): void {
    if (timer instanceof VirtualTimer) this.clear(timer);
    else if (typeof timer === 'number') {
      const found = this.#byId.get(timer);
      if (found !== undefined) this.clear(found);
    }
  }

  #add(callback: Callback, args: unknown[], ms: number, intervalMs: number | undefined): VirtualTimer {
    // Node runs a timer of 0 (or less, or NaN) after 1 ms.
    const delayMs = Number.isFinite(ms) && ms >= 1 ? Math.floor(ms) : 1;
    const timer = new VirtualTimer(this, this.#nextId++, {
      atMs: this.#nowMs + delayMs,
      seq: this.#seq++,
      callback,
      args,
      intervalMs,
      delayMs,
    });
    this.#byId.set(timer.id, timer);
    this.#timers.push(timer);
    return timer;
  }

  #addImmediate(callback: Callback, args: unknown[]): VirtualTimer {
    const timer = new VirtualTimer(this, this.#nextId++, {
      atMs: this.#nowMs,
      seq: this.#seq++,
      callback,
      args,
      intervalMs: undefined,
      delayMs: 0,
    });
    this.#byId.set(timer.id, timer);
    this.#immediates.push(timer);
    return timer;
  }

  #promised(arm: (resolve: Callback) => VirtualTimer, signal: AbortSignal | undefined): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const abortError = () => Object.assign(new Error('The operation was aborted'), { name: 'AbortError' });
      if (signal?.aborted === true) {
        reject(abortError());
        return;
      }
      const timer = arm((value) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      });
      const onAbort = (): void => {
        this.clear(timer);
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #nextTimer(): VirtualTimer | undefined {
    for (let timer = this.#timers.pop(); timer !== undefined; timer = this.#timers.pop()) {
      if (!timer.cleared) return timer;
    }
    return undefined;
  }

  #run(timer: VirtualTimer): void {
    if (timer.cleared) return;
    this.#tasks++;
    const { intervalMs, callback, args } = timer.task;
    if (intervalMs === undefined) this.#byId.delete(timer.id);
    else this.rearm(timer, intervalMs);
    try {
      callback(...args);
    } catch (err) {
      this.#failure ??= err;
    }
  }
}
