/**
 * A histogram with fixed bucket bounds, for a value observed on a hot path
 * (a request's latency): observe() is a short scan of the bounds and three
 * additions into memory allocated once, no object per call. The counts are
 * per bucket (not cumulative); the Prometheus writer (prometheus-text.ts)
 * adds them up when it writes the `_bucket` lines.
 *
 * Why not prom-client's Histogram: its labelled child validates and hashes
 * its label values into a string on every observe(): about 15 times the
 * cost of this one (bench/micro, "observe a request's latency").
 *
 *   const latency = new Histogram(LATENCY_BOUNDS_SECONDS);
 *   latency.observe(0.0007);
 */
import { assert } from './assert.js';

/** Request latencies, seconds: 100 µs (a cached read on loopback) to 10 s (far past any deadline). */
export const LATENCY_BOUNDS_SECONDS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

export class Histogram {
  /** Upper bounds, ascending; an observation v falls in the first bucket with v <= bound. */
  readonly bounds: readonly number[];
  /** Observations per bucket; the last slot holds those above every bound (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    assert(bounds.length > 0, 'a histogram needs at least one bucket bound');
    for (let i = 1; i < bounds.length; i++) {
      assert(bounds[i]! > bounds[i - 1]!, 'histogram bounds must ascend');
    }
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}
