/**
 * The event-loop delay histogram: the sampler slows down while the loop is
 * idle, and a pause must still show once the loop is busy.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseSamples, sampleValue } from '../../test/support/prometheus.js';
import { PrometheusText } from '../util/prometheus-text.js';
import { startProcessMetrics, writeProcessMetrics } from './process-metrics.js';

async function delaySamples(): Promise<{ count: number; over100ms: number }> {
  const text = new PrometheusText();
  await writeProcessMetrics(text);
  const samples = parseSamples(text.toString());
  const count = sampleValue(samples, 'ringkv_event_loop_delay_seconds_count') ?? 0;
  const upTo100ms = sampleValue(samples, 'ringkv_event_loop_delay_seconds_bucket', { le: '0.1' }) ?? 0;
  return { count, over100ms: count - upTo100ms };
}

function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Busy on purpose: the pause the histogram has to see.
  }
}

it('an idle loop is sampled slowly, and a 400 ms pause after idling is seen', async () => {
  startProcessMetrics();
  await sleep(1000);
  const idle = await delaySamples();
  await sleep(1000);
  const afterIdle = await delaySamples();
  // A 10 ms timer runs ~100 times in that second; idle, every 250 ms (4), with room for the
  // moments a busy machine makes this process's loop look busy.
  assert.ok(afterIdle.count - idle.count <= 50, `${afterIdle.count - idle.count} samples in an idle second`);
  // Longer than the idle period, so the timer comes due during it, whenever it was set.
  blockLoop(400);
  await sleep(300);
  const after = await delaySamples();
  assert.ok(after.over100ms > afterIdle.over100ms, `no sample over 100 ms: ${JSON.stringify(after)}`);
});
