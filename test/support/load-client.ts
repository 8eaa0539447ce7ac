/**
 * A steady load for tests that stop, kill or hang nodes while clients keep
 * working: a client that knows a list of nodes, in the manner of a client
 * library configured with every node's URL.
 *
 * - `concurrency` workers, each with at most one request in flight, together
 *   paced to `ratePerSecond`; bounded by `maxRequests` and `maxDurationMs`
 *   (and stop()).
 * - A mix of PUT, GET and DELETE of `/v0/entity` with the given `query`
 *   (e.g. ack=2&from=3). Worker w owns the keys i with i % concurrency === w,
 *   so two requests for one key are never in flight together and the value
 *   each key must have is known (see below).
 * - Request n of a worker goes first to node (w + n) % urls.length, over that
 *   worker's keep-alive connection to it (one per worker and node).
 * - Failover: when a node refuses the connection, answers 503 with
 *   `Connection: close` (a node that is leaving), or closes a connection just
 *   opened before answering its first request (`reset`: the kernel accepted it
 *   into the backlog of a listener that was closing; RingkvClient fails over
 *   on it too), the request goes to the next
 *   node of the list, and so on once round the list. Those are *failovers*:
 *   counted, not answers, not failures. A node that refused a connection is
 *   passed over for AVOID_MS before it is tried again.
 * - *Failures*, every other outcome that is not the expected answer: another
 *   status (504, 500, a 503 without `Connection: close`, 404 where the key
 *   must exist), a GET whose value is not one the key can have, a connection
 *   closed or reset before the answer (`no-answer`: a request that may or may
 *   not have been applied), no answer within `timeoutMs`, every node refusing.
 *
 * Expected values: every PUT writes a value of its own. A write answered
 * 201/202 settles its key; a write that failed without an answer leaves the
 * key *ambiguous*: the value before it and the value it carried are both
 * acceptable, until a later write is answered. A GET may answer any
 * acceptable value (404 standing for "absent"); so must a read at the end.
 *
 * Every event carries the *phase* set by the test at the time (setPhase), e.g.
 * which node is being restarted, so a test can check that failovers and
 * failures fall where it expects them.
 *
 *   const load = startLoad({ urls, concurrency: 6, ratePerSecond: 300, keys: 60, query: { ack: 2, from: 3 } });
 *   load.setPhase('restart node 0');
 *   ...
 *   const report = await load.stop();
 *   assert.deepEqual(report.failures, []);
 */
import { RawConnection } from './http-client.js';
import { sleep } from './node-process.js';

/** A node that refused a connection is passed over this long before it is tried again. */
const AVOID_MS = 100;
const CONNECT_TIMEOUT_MS = 2000;

export type Method = 'PUT' | 'GET' | 'DELETE';

export interface LoadOptions {
  /** Every node the client knows, in failover order. */
  readonly urls: readonly string[];
  readonly concurrency: number;
  /** All workers together; each worker waits for its answer before its next request. */
  readonly ratePerSecond: number;
  /** Key space: keys `${keyPrefix}000` .. */
  readonly keys: number;
  readonly keyPrefix?: string;
  /** Query parameters of every entity request, e.g. { ack: 2, from: 3 }. */
  readonly query?: Readonly<Record<string, string | number>>;
  /** A request unanswered this long is a failure (`timeout`). Default 5000. */
  readonly timeoutMs?: number;
  /** Bounds: the load stops after this many requests or this long, whichever comes first. */
  readonly maxRequests?: number;
  readonly maxDurationMs?: number;
  /** Relative weights of the three methods. Default PUT 5, GET 4, DELETE 1. */
  readonly mix?: Readonly<Record<Method, number>>;
  readonly seed?: number;
  /** Called once per request when it ends, for a caller that keeps its own record (times included). */
  readonly onResult?: (result: LoadResult) => void;
}

export type FailoverKind = 'refused' | 'leaving' | 'reset';
export type FailureKind = 'status' | 'value' | 'no-answer' | 'timeout' | 'unavailable';

export interface LoadEvent {
  readonly phase: string;
  /** The node the attempt went to ('' for `unavailable`). */
  readonly node: string;
  readonly method: Method;
  readonly key: string;
  readonly kind: FailoverKind | FailureKind;
  readonly detail: string;
}

/** How one request ended (LoadOptions.onResult). */
export interface LoadResult {
  readonly method: Method;
  readonly key: string;
  /** The value a PUT carried; null for DELETE and GET. */
  readonly value: string | null;
  readonly sentAtMs: number;
  readonly doneAtMs: number;
  /** The node that gave the last answer ('' when every node failed over). */
  readonly node: string;
  /** 'answered': the expected answer (a GET: an acceptable value); 'failed': see `kind`. */
  readonly outcome: 'answered' | 'failed';
  readonly kind: FailureKind | undefined;
  /** The status answered, if an answer came. */
  readonly status: number | undefined;
  /** What a GET answered 200 or 404 read (null: absent). */
  readonly read: string | null | undefined;
}

export interface PhaseCounts {
  /** Requests that got their expected answer. */
  answered: number;
  failovers: number;
  failures: number;
}

export interface LoadReport {
  readonly requests: number;
  readonly answered: number;
  readonly durationMs: number;
  /** Answers by status code, e.g. { 200: 120, 201: 150, 202: 30, 404: 12 }. */
  readonly statuses: Record<number, number>;
  /** Answers by the node that gave them. */
  readonly answeredBy: Record<string, number>;
  readonly failovers: readonly LoadEvent[];
  readonly failures: readonly LoadEvent[];
  readonly phases: Record<string, PhaseCounts>;
}

/** What a key may hold: null is "absent" (never written, or deleted). */
type Value = string | null;

class KeyModel {
  settled: Value = null;
  readonly ambiguous = new Set<Value>();

  acceptable(): Value[] {
    return [this.settled, ...[...this.ambiguous].filter((v) => v !== this.settled)];
  }

  answered(value: Value): void {
    this.settled = value;
    this.ambiguous.clear();
  }

  unanswered(value: Value): void {
    this.ambiguous.add(value);
  }
}

/** xorshift32, seeded: the same mix of requests on every run. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

type Attempt =
  | { readonly outcome: 'answer'; readonly status: number; readonly body: string }
  | { readonly outcome: 'failover'; readonly kind: FailoverKind; readonly detail: string }
  | { readonly outcome: 'failed'; readonly kind: 'no-answer' | 'timeout'; readonly detail: string };

export class Load {
  readonly #options: LoadOptions;
  /** Where each URL's node listens (loopback, or an address in a test's network namespace). */
  readonly #targets: { readonly host: string; readonly port: number }[];
  readonly #models = new Map<string, KeyModel>();
  readonly #avoidUntil: number[];
  readonly #failovers: LoadEvent[] = [];
  readonly #failures: LoadEvent[] = [];
  readonly #phases: Record<string, PhaseCounts> = {};
  readonly #statuses: Record<number, number> = {};
  readonly #answeredBy: Record<string, number> = {};
  readonly #done: Promise<void>;
  readonly #startedMs = Date.now();
  #phase = 'steady';
  #phaseSinceMs = Date.now();
  /** Per connection: when it was opened, requests it carried, when its last answer came (for failure details). */
  readonly #history = new WeakMap<
    RawConnection,
    { openedMs: number; carried: number; lastAnswerMs: number }
  >();
  #stopped = false;
  #requests = 0;
  #answered = 0;
  #writes = 0;

  constructor(options: LoadOptions) {
    if (options.urls.length === 0 || options.concurrency < 1 || options.ratePerSecond <= 0) {
      throw new Error('startLoad: needs urls, concurrency >= 1 and a rate');
    }
    this.#options = options;
    this.#targets = options.urls.map(targetOf);
    this.#avoidUntil = options.urls.map(() => 0);
    for (let i = 0; i < options.keys; i++) this.#models.set(this.key(i), new KeyModel());
    this.#done = Promise.all(Array.from({ length: options.concurrency }, (_, w) => this.#worker(w))).then(
      () => undefined,
    );
  }

  key(i: number): string {
    return `${this.#options.keyPrefix ?? 'load-'}${String(i).padStart(3, '0')}`;
  }

  /** Labels the events from now on (e.g. 'restart 1'); the answers are counted per phase too. */
  setPhase(phase: string): void {
    this.#phase = phase;
    this.#phaseSinceMs = Date.now();
  }

  get phase(): string {
    return this.#phase;
  }

  /** Requests answered so far (to wait until the load is flowing). */
  get answered(): number {
    return this.#answered;
  }

  /** Whether the load has ended on its own (a bound was reached). */
  get finished(): boolean {
    return this.#stopped;
  }

  /** The values key i may hold now (null: absent). Meaningful once the load has stopped. */
  acceptable(key: string): Value[] {
    const model = this.#models.get(key);
    if (model === undefined) throw new Error(`Unknown key ${key}`);
    return model.acceptable();
  }

  /** Every key of the key space. */
  keys(): string[] {
    return [...this.#models.keys()];
  }

  /** Stops sending, waits for the requests in flight, and reports. */
  async stop(): Promise<LoadReport> {
    this.#stopped = true;
    await this.#done;
    return this.report();
  }

  report(): LoadReport {
    return {
      requests: this.#requests,
      answered: this.#answered,
      durationMs: Date.now() - this.#startedMs,
      statuses: { ...this.#statuses },
      answeredBy: { ...this.#answeredBy },
      failovers: [...this.#failovers],
      failures: [...this.#failures],
      phases: structuredClone(this.#phases),
    };
  }

  #counts(): PhaseCounts {
    this.#phases[this.#phase] ??= { answered: 0, failovers: 0, failures: 0 };
    return this.#phases[this.#phase]!;
  }

  async #worker(w: number): Promise<void> {
    const options = this.#options;
    const next = random((options.seed ?? 0x5eed) + w * 7919);
    const intervalMs = (1000 * options.concurrency) / options.ratePerSecond;
    const maxRequests = options.maxRequests ?? 100_000;
    const deadline = this.#startedMs + (options.maxDurationMs ?? 60_000);
    const owned: string[] = [];
    for (let i = w; i < options.keys; i += options.concurrency) owned.push(this.key(i));
    if (owned.length === 0) return;
    const mix = options.mix ?? { PUT: 5, GET: 4, DELETE: 1 };
    const weights = mix.PUT + mix.GET + mix.DELETE;
    const connections = new Map<number, RawConnection>();
    let due = this.#startedMs + (w / options.concurrency) * intervalMs;
    try {
      for (let n = 0; !this.#stopped; n++) {
        if (this.#requests >= maxRequests || Date.now() >= deadline) {
          this.#stopped = true;
          break;
        }
        if (due > Date.now()) await sleep(due - Date.now());
        // A worker that fell behind (a slow answer) goes on from now rather than catching up in a burst.
        due = Math.max(due + intervalMs, Date.now());
        if (this.#stopped) break;
        this.#requests++;
        const key = owned[Math.floor(next() * owned.length)]!;
        const pick = next() * weights;
        const method: Method = pick < mix.PUT ? 'PUT' : pick < mix.PUT + mix.GET ? 'GET' : 'DELETE';
        await this.#request(connections, (w + n) % options.urls.length, method, key);
      }
    } finally {
      for (const conn of connections.values()) conn.close();
    }
  }

  /** One request, with failover round the list of nodes; updates the key's model and the counts. */
  async #request(
    connections: Map<number, RawConnection>,
    first: number,
    method: Method,
    key: string,
  ): Promise<void> {
    const urls = this.#options.urls;
    const model = this.#models.get(key)!;
    const value = method === 'PUT' ? `${key}@${++this.#writes}` : null;
    const sentAtMs = Date.now();
    const ended = (node: string, end: Pick<LoadResult, 'outcome' | 'kind' | 'status' | 'read'>): void =>
      this.#options.onResult?.({ method, key, value, sentAtMs, doneAtMs: Date.now(), node, ...end });
    let tried = 0;
    for (let step = 0; step < urls.length; step++) {
      const index = (first + step) % urls.length;
      // A node that just refused is passed over, unless it is the last one left to try.
      if (this.#avoidUntil[index]! > Date.now() && tried + (urls.length - step) > 1) continue;
      tried++;
      const node = urls[index]!;
      const attempt = await this.#attempt(connections, index, method, key, value);
      if (attempt.outcome === 'failover') {
        if (attempt.kind === 'refused') this.#avoidUntil[index] = Date.now() + AVOID_MS;
        this.#failovers.push({
          phase: this.#phase,
          node,
          method,
          key,
          kind: attempt.kind,
          detail: attempt.detail,
        });
        this.#counts().failovers++;
        continue;
      }
      if (attempt.outcome === 'failed') {
        if (method !== 'GET') model.unanswered(value);
        this.#fail({ node, method, key, kind: attempt.kind, detail: attempt.detail });
        ended(node, { outcome: 'failed', kind: attempt.kind, status: undefined, read: undefined });
        return;
      }
      this.#statuses[attempt.status] = (this.#statuses[attempt.status] ?? 0) + 1;
      const expected = method === 'PUT' ? 201 : method === 'DELETE' ? 202 : 200;
      const acceptable = model.acceptable();
      if (method === 'GET' && (attempt.status === 200 || attempt.status === 404)) {
        const read = attempt.status === 200 ? attempt.body : null;
        if (!acceptable.includes(read)) {
          this.#fail({
            node,
            method,
            key,
            kind: 'value',
            detail: `read ${JSON.stringify(read)}, acceptable ${JSON.stringify(acceptable)}`,
          });
          ended(node, { outcome: 'failed', kind: 'value', status: attempt.status, read });
          return;
        }
        ended(node, { outcome: 'answered', kind: undefined, status: attempt.status, read });
      } else if (attempt.status !== expected) {
        // A write answered with an error may still have reached some replicas.
        if (method !== 'GET') model.unanswered(value);
        this.#fail({ node, method, key, kind: 'status', detail: `${attempt.status} ${attempt.body}` });
        ended(node, { outcome: 'failed', kind: 'status', status: attempt.status, read: undefined });
        return;
      } else {
        model.answered(value);
        ended(node, { outcome: 'answered', kind: undefined, status: attempt.status, read: undefined });
      }
      this.#answered++;
      this.#answeredBy[node] = (this.#answeredBy[node] ?? 0) + 1;
      this.#counts().answered++;
      return;
    }
    if (method !== 'GET') model.unanswered(value);
    this.#fail({ node: '', method, key, kind: 'unavailable', detail: 'every node failed over' });
    ended('', { outcome: 'failed', kind: 'unavailable', status: undefined, read: undefined });
  }

  #fail(event: Omit<LoadEvent, 'phase'>): void {
    this.#failures.push({ phase: this.#phase, ...event });
    this.#counts().failures++;
  }

  async #attempt(
    connections: Map<number, RawConnection>,
    index: number,
    method: Method,
    key: string,
    value: Value,
  ): Promise<Attempt> {
    let conn = connections.get(index);
    if (conn?.ended) {
      conn.close();
      connections.delete(index);
      conn = undefined;
    }
    if (conn === undefined) {
      try {
        conn = await openWithin(this.#targets[index]!, CONNECT_TIMEOUT_MS);
      } catch (err) {
        return { outcome: 'failover', kind: 'refused', detail: errorText(err) };
      }
      connections.set(index, conn);
      this.#history.set(conn, { openedMs: Date.now(), carried: 0, lastAnswerMs: Number.NaN });
    }
    const history = this.#history.get(conn)!;
    const sentMs = Date.now();
    let path = `/v0/entity?id=${encodeURIComponent(key)}`;
    for (const [name, v] of Object.entries(this.#options.query ?? {})) path += `&${name}=${v}`;
    const body = value ?? '';
    const head =
      `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n` +
      (method === 'PUT' ? `content-length: ${Buffer.byteLength(body)}\r\n` : '') +
      '\r\n';
    try {
      await conn.write(head + body);
      const answer = await conn.readAnswer(this.#options.timeoutMs ?? 5000);
      history.carried++;
      history.lastAnswerMs = Date.now();
      const closing = answer.headers.connection?.toLowerCase() === 'close';
      if (closing) {
        conn.close();
        connections.delete(index);
      }
      if (answer.status === 503 && closing) {
        return { outcome: 'failover', kind: 'leaving', detail: answer.body.toString().slice(0, 100) };
      }
      return { outcome: 'answer', status: answer.status, body: answer.body.toString() };
    } catch (err) {
      conn.close();
      connections.delete(index);
      // Where the connection stood tells a reset of an idle keep-alive connection from one cut mid-request.
      const detail =
        `${errorText(err)} (after ${Date.now() - sentMs} ms; the connection opened ${sentMs - history.openedMs} ms ` +
        `before the request, had carried ${history.carried}` +
        `${history.carried === 0 ? '' : `, idle ${sentMs - history.lastAnswerMs} ms`}; ` +
        (sentMs >= this.#phaseSinceMs
          ? `${sentMs - this.#phaseSinceMs} ms into the phase)`
          : `sent ${this.#phaseSinceMs - sentMs} ms before the phase began)`);
      const timedOut = /timed out/i.test(detail);
      if (!timedOut && history.carried === 0) return { outcome: 'failover', kind: 'reset', detail };
      return { outcome: 'failed', kind: timedOut ? 'timeout' : 'no-answer', detail };
    }
  }
}

export function startLoad(options: LoadOptions): Load {
  return new Load(options);
}

/**
 * Reads every key of the load's key space with `query` (e.g. ack=3&from=3),
 * key i through urls[i % urls.length], and lists each key whose answer is not
 * one of its acceptable values. Call after load.stop().
 */
export async function checkValues(
  load: Load,
  urls: readonly string[],
  query: Readonly<Record<string, string | number>>,
): Promise<string[]> {
  const wrong: string[] = [];
  const keys = load.keys();
  for (const [i, key] of keys.entries()) {
    const { host, port } = targetOf(urls[i % urls.length]!);
    let path = `/v0/entity?id=${encodeURIComponent(key)}`;
    for (const [name, v] of Object.entries(query)) path += `&${name}=${v}`;
    const conn = await RawConnection.open(port, host);
    try {
      await conn.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
      const answer = await conn.readAnswer(5000);
      const acceptable = load.acceptable(key);
      const read = answer.status === 200 ? answer.body.toString() : answer.status === 404 ? null : undefined;
      if (read === undefined || !acceptable.includes(read)) {
        wrong.push(
          `${key} via ${urls[i % urls.length]}: ${answer.status} ${answer.body.toString().slice(0, 100)}, ` +
            `acceptable ${JSON.stringify(acceptable)}`,
        );
      }
    } finally {
      conn.close();
    }
  }
  return wrong;
}

/** One line per phase: answered, failovers (by node and kind) and failures, for t.diagnostic(). */
export function summarize(report: LoadReport): string {
  const lines = [
    `${report.requests} requests in ${report.durationMs} ms, ${report.answered} answered ` +
      `(${JSON.stringify(report.statuses)}), ${report.failovers.length} failovers, ${report.failures.length} failures`,
  ];
  for (const [phase, counts] of Object.entries(report.phases)) {
    const groups = new Map<string, number>();
    for (const e of [...report.failovers, ...report.failures]) {
      if (e.phase !== phase) continue;
      const group = `${e.kind}@${e.node || '-'}`;
      groups.set(group, (groups.get(group) ?? 0) + 1);
    }
    const detail = [...groups].map(([group, n]) => `${group} x${n}`).join(', ');
    lines.push(
      `  ${phase}: ${counts.answered} answered, ${counts.failovers} failovers, ${counts.failures} failures` +
        (detail ? ` (${detail})` : ''),
    );
  }
  return lines.join('\n');
}

/**
 * Events for an assertion message: how many of each kind per phase and node,
 * then the first few in full.
 */
export function describeEvents(events: readonly LoadEvent[], limit = 8): string {
  const counts = new Map<string, number>();
  for (const e of events) {
    const group = `[${e.phase}] ${e.kind} on ${e.node || '(no node)'}`;
    counts.set(group, (counts.get(group) ?? 0) + 1);
  }
  const lines = [...counts].map(([group, n]) => `${n} x ${group}`);
  for (const e of events.slice(0, limit)) {
    lines.push(
      `  [${e.phase}] ${e.method} ${e.key} -> ${e.node || '(no node)'}: ${e.kind} ${e.detail.slice(0, 200)}`,
    );
  }
  if (events.length > limit) lines.push(`  ... and ${events.length - limit} more`);
  return `${events.length} events:\n${lines.join('\n')}`;
}

function targetOf(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

async function openWithin(
  target: { readonly host: string; readonly port: number },
  timeoutMs: number,
): Promise<RawConnection> {
  let timer: NodeJS.Timeout | undefined;
  const opening = RawConnection.open(target.port, target.host);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([opening, timeout]);
  } catch (err) {
    // A connection that opens after the timeout is closed at once.
    opening.then((late) => late.close()).catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
