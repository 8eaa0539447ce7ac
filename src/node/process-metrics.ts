/**
 * The process's own metrics. From prom-client's default collectors, named
 * `ringkv_process_*` and `ringkv_nodejs_*`: CPU time, resident memory,
 * heap (per V8 space), open file descriptors, start time, GC pauses by kind
 * (a PerformanceObserver on 'gc', as a histogram), active handles and
 * requests, the Node.js version, and the event loop's lag at the scrape.
 * Beside them, `ringkv_event_loop_delay_seconds`, a histogram of how late a
 * 10 ms timer fires: the event-loop delay over any window, from its rate.
 * The timer slows to 250 ms while the loop is idle (under 2% busy since its
 * last run), where there is no delay to see: a 10 ms timer woke an idle node
 * 100 times a second, most of its CPU then.
 *
 * prom-client's own event-loop delay gauges (`..._lag_p99_seconds` and the
 * like) are left out: they read perf_hooks' monitorEventLoopDelay, whose
 * samples in Node 20 are the whole interval between its timer's runs, so an
 * idle loop reads as 10 ms (its resolution); and they reset at every scrape,
 * so two scrapers (Prometheus and the dashboard) each see only part of it.
 * The same goes for three gauges it names `_total`, a suffix the format
 * keeps for counters (promtool check metrics refuses them); each is the sum
 * of its grouped twin (`ringkv_nodejs_active_handles{type}`, ...).
 *
 * All of this describes the process, not a node, so it is collected once
 * per process (every node of a process shares it, as in tests that run
 * several), starts with the first node, and lasts as long as the process.
 */
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { Histogram } from '../util/histogram.js';
import type { PrometheusText } from '../util/prometheus-text.js';

const LEFT_OUT = [
  'ringkv_nodejs_eventloop_lag_min_seconds',
  'ringkv_nodejs_eventloop_lag_max_seconds',
  'ringkv_nodejs_eventloop_lag_mean_seconds',
  'ringkv_nodejs_eventloop_lag_stddev_seconds',
  'ringkv_nodejs_eventloop_lag_p50_seconds',
  'ringkv_nodejs_eventloop_lag_p90_seconds',
  'ringkv_nodejs_eventloop_lag_p99_seconds',
  'ringkv_nodejs_active_handles_total',
  'ringkv_nodejs_active_requests_total',
  'ringkv_nodejs_active_resources_total',
];

/**
 * Bounds of the pause histograms (event-loop delay, GC): finer than the
 * request latencies' between 1 and 50 ms, where a pause that shows in a
 * request's p99 falls, so that a p99 read off them is within a few ms.
 * prom-client's own GC bounds (1 ms, 10 ms, 100 ms, ...) put every pause
 * that matters in one bucket.
 */
const PAUSE_BOUNDS_SECONDS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5,
  1, 2.5, 5, 10,
]);

/** The delay timer's period: 100 runs a second, a few microseconds each. */
const DELAY_TIMER_MS = 10;
/** ...and while the loop is idle (its utilization since the last run under IDLE_UTILIZATION). */
const IDLE_DELAY_TIMER_MS = 250;
const IDLE_UTILIZATION = 0.02;
/**
 * prom-client's event-loop monitor (a perf_hooks timer) cannot be turned off, and its gauges are
 * left out (above): its period is set long, so that it wakes the process once a minute, not 100 times a second.
 */
const UNUSED_MONITOR_PERIOD_MS = 60_000;

let registry: Registry | undefined;
const eventLoopDelay = new Histogram(PAUSE_BOUNDS_SECONDS);

/** Starts the collectors (once per process). */
export function startProcessMetrics(): void {
  if (registry !== undefined) return;
  registry = new Registry();
  collectDefaultMetrics({
    register: registry,
    prefix: 'ringkv_',
    gcDurationBuckets: [...PAUSE_BOUNDS_SECONDS],
    eventLoopMonitoringPrecision: UNUSED_MONITOR_PERIOD_MS,
  });
  for (const name of LEFT_OUT) registry.removeSingleMetric(name);
  let periodMs = DELAY_TIMER_MS;
  let lastMs = performance.now();
  let lastUtilization = performance.eventLoopUtilization();
  const run = (): void => {
    const nowMs = performance.now();
    eventLoopDelay.observe(Math.max(0, nowMs - lastMs - periodMs) / 1000);
    const utilization = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(utilization, lastUtilization).utilization;
    lastUtilization = utilization;
    periodMs = busy < IDLE_UTILIZATION ? IDLE_DELAY_TIMER_MS : DELAY_TIMER_MS;
    lastMs = nowMs;
    setTimeout(run, periodMs).unref();
  };
  setTimeout(run, periodMs).unref();
}

/** Writes the process metrics. */
export async function writeProcessMetrics(text: PrometheusText): Promise<void> {
  startProcessMetrics();
  text.histogram(
    'ringkv_event_loop_delay_seconds',
    'How late a 10 ms timer ran: time the event loop was busy beyond its period',
    [{ labels: {}, histogram: eventLoopDelay }],
  );
  text.append(await registry!.metrics());
}
