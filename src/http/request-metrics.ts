/**
 * The HTTP requests a node answered, by operation and status code, with
 * their latency: for /metrics (`ringkv_http_requests_total`,
 * `ringkv_http_request_duration_seconds`).
 *
 * observe() runs once per answered request, on the fast path too, so it
 * allocates nothing: each (operation, status) pair has its Histogram,
 * created on its first request and found again by two array indexes (an
 * operation's row is indexed by status code). The count per pair is the
 * histogram's own count, so one observation serves both series.
 *
 * Latency runs from the request's head having been read to its answer
 * having been handed to the socket (a range: to its last chunk). Requests
 * whose connection went away before an answer are not counted. Those
 * refused before any route (a malformed head, one cut short, CONNECT, an
 * Upgrade refused) are `other`, observed as 0 s: there is no head read to
 * time from. An internode handshake answered 101 is `internode`, also 0 s.
 *
 *   metrics.observe(RequestOp.Get, 200, (performance.now() - startMs) / 1000);
 */
import { Histogram, LATENCY_BOUNDS_SECONDS } from '../util/histogram.js';
import type { PrometheusText } from '../util/prometheus-text.js';
import { isDashboardPath } from './routes/dashboard.js';

/** Operations, the `op` label: an index into OP_NAMES. */
export const RequestOp = {
  Get: 0,
  Put: 1,
  Delete: 2,
  Range: 3,
  Status: 4,
  Health: 5,
  Metrics: 6,
  Dashboard: 7,
  Internode: 8,
  /** Unknown paths, methods a route does not take, malformed requests. */
  Other: 9,
} as const;
export type RequestOp = (typeof RequestOp)[keyof typeof RequestOp];

const OP_NAMES = [
  'get',
  'put',
  'delete',
  'range',
  'status',
  'health',
  'metrics',
  'dashboard',
  'internode',
  'other',
] as const;

/** The operation of a request node:http answers, from its path and method (the fast path knows its own). */
export function requestOp(path: string, method: string | undefined): RequestOp {
  switch (path) {
    case '/v0/entity':
      return method === 'GET'
        ? RequestOp.Get
        : method === 'PUT'
          ? RequestOp.Put
          : method === 'DELETE'
            ? RequestOp.Delete
            : RequestOp.Other;
    case '/v0/entities':
      return RequestOp.Range;
    case '/v0/status':
      return RequestOp.Status;
    case '/v0/health':
      return RequestOp.Health;
    case '/metrics':
      return RequestOp.Metrics;
    default:
      if (isDashboardPath(path)) return RequestOp.Dashboard;
      return path.startsWith('/v0/internode') ? RequestOp.Internode : RequestOp.Other;
  }
}

/** Status codes are 100-599 (node:http refuses others). */
const STATUS_SLOTS = 600;

/** What is told of a client request (get, put, delete) slower than the threshold. */
export type SlowRequestReport = (op: string, status: number, ms: number) => void;

/** The operations whose slowness is reported: ranges are long by nature, the rest is not a client's data. */
const SLOW_REPORTED: readonly boolean[] = OP_NAMES.map(
  (name) => name === 'get' || name === 'put' || name === 'delete',
);

export class RequestMetrics {
  /** Per operation, per status code: the histogram, once a request of that pair was answered. */
  readonly #series: (Histogram | undefined)[][] = OP_NAMES.map(() => new Array(STATUS_SLOTS));
  readonly #slowSeconds: number;
  readonly #onSlow: SlowRequestReport | undefined;

  /** `slowMs` 0 or no `onSlow`: nothing is reported. */
  constructor(slow: { readonly slowMs: number; readonly onSlow: SlowRequestReport } | undefined = undefined) {
    this.#slowSeconds =
      slow === undefined || slow.slowMs <= 0 ? Number.POSITIVE_INFINITY : slow.slowMs / 1000;
    this.#onSlow = slow?.onSlow;
  }

  observe(op: RequestOp, status: number, seconds: number): void {
    if (seconds > this.#slowSeconds && SLOW_REPORTED[op])
      this.#onSlow!(OP_NAMES[op]!, status, seconds * 1000);
    const row = this.#series[op]!;
    let histogram = row[status];
    if (histogram === undefined) {
      if (!(status >= 0 && status < STATUS_SLOTS)) return;
      histogram = new Histogram(LATENCY_BOUNDS_SECONDS);
      row[status] = histogram;
    }
    histogram.observe(seconds);
  }

  /** Requests answered with `op` (every status), for tests. */
  count(op: RequestOp, status?: number): number {
    let total = 0;
    this.#series[op]!.forEach((histogram, code) => {
      if (histogram !== undefined && (status === undefined || status === code)) total += histogram.count;
    });
    return total;
  }

  /** Writes the two families. */
  write(text: PrometheusText): void {
    const series: { labels: { op: string; code: string }; histogram: Histogram }[] = [];
    this.#series.forEach((row, op) => {
      row.forEach((histogram, code) => {
        if (histogram !== undefined)
          series.push({ labels: { op: OP_NAMES[op]!, code: String(code) }, histogram });
      });
    });
    text.counter(
      'ringkv_http_requests_total',
      'HTTP requests answered, by operation (get, put, delete, range, status, health, metrics, dashboard, internode, other) and status code',
      series.map(({ labels, histogram }) => ({ labels, value: histogram.count })),
    );
    text.histogram(
      'ringkv_http_request_duration_seconds',
      'Time from a request head read to its answer written, by operation and status code',
      series,
    );
  }
}
